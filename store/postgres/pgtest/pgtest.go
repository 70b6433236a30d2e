// Package pgtest gives tests a fresh, fully migrated Postgres database each.
//
// A test package that needs a database runs its tests through Main and asks
// for a database per test:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		pool := pgtest.New(t)   // *pgxpool.Pool, closed and dropped at cleanup
//		url := pgtest.NewURL(t) // or only the URL, for code that opens its own pool
//		...
//	}
//
// Main finds a server: TEST_DATABASE_URL when set, for example
//
//	TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable go test ./...
//
// and otherwise a private server started with devpg (local PostgreSQL binaries,
// or Docker) in a temporary directory that is removed after the run. The role
// in TEST_DATABASE_URL must be allowed to create databases. When no server can
// be found Main prints why and exits with status 1: tests fail loudly, they
// never skip. The server must be PostgreSQL 13 or later (DROP DATABASE ...
// WITH (FORCE)).
//
// A private server lives in $TMPDIR/lightbus-pgtest-*, one per test process.
// When a test process dies without cleaning up (a crash, a -timeout panic),
// the next run deletes its directory and PostgreSQL, noticing, shuts down.
// With Docker, the container lightbus-dev-postgres is shared by every test
// process and the gateway's development mode, so it is left running.
//
// The first database a process asks for builds a template database,
// lightbus_tmpl_<hash>, holding the migrated schema (River's tables and the
// gateway's); the hash covers the migration files and the River version, so a
// changed migration gets a new template. Test processes sharing a server build
// it once, under an advisory lock. Each New then copies the template with
// CREATE DATABASE ... TEMPLATE, which takes milliseconds, and drops the copy
// at cleanup. Templates are left on the server for later runs; nothing ever
// connects to one after it is built.
package pgtest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/lightbus-go/lightbus/migrations"
	"github.com/lightbus-go/lightbus/store/postgres/devpg"
)

// EnvURL names the environment variable holding the URL of the server to
// test against. Its database is used only to create and drop test databases.
const EnvURL = "TEST_DATABASE_URL"

// riverVersionFallback is used in the template hash when the build carries no
// module information.
const riverVersionFallback = "v0.51.2"

// EnvExecMode names the environment variable choosing the pgx query exec
// mode of New's pools and NewURL's URLs: cache_statement (pgx's default),
// cache_describe, describe_exec, exec or simple_protocol, the modes a
// connection pooler in transaction mode may require. Empty leaves pgx's
// default.
const EnvExecMode = "LIGHTBUS_TEST_EXEC_MODE"

// ExecModes lists the names of pgx's query exec modes, as the
// default_query_exec_mode connection parameter spells them.
var ExecModes = []string{"cache_statement", "cache_describe", "describe_exec", "exec", "simple_protocol"}

// templateLockKey is the advisory lock held while a template is built
// ("lbpgtest" in ASCII).
const templateLockKey int64 = 0x6c62_7067_7465_7374

// tempDirPrefix names the temporary directories of private servers.
const tempDirPrefix = "lightbus-pgtest-"

var (
	mu        sync.Mutex
	serverURL string // set by Main
	env       *environment
	envErr    error
)

// environment is what New needs, set up on first use.
type environment struct {
	admin    *pgxpool.Pool // connections to the server's maintenance database
	template string
}

// Main runs the tests of a package against a Postgres server and exits. It
// uses TEST_DATABASE_URL when set, otherwise a private server started with
// devpg that is stopped and deleted after the run. When it can get no server
// it prints the reason to stderr and exits with status 1.
func Main(m *testing.M) {
	os.Exit(Run(m))
}

// Run is Main without the exit: it returns the tests' exit code, for a
// TestMain with more to do after the tests (clientgo/lightbustest's Main).
func Run(m *testing.M) int {
	return run(m)
}

func run(m *testing.M) int {
	url, stop, err := resolveServer()
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: no PostgreSQL server for the tests: %v\n"+
			"pgtest: set %s (e.g. %s=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable), "+
			"install the PostgreSQL server binaries, or start a Docker engine.\n", err, EnvURL, EnvURL)
		return 1
	}
	defer stop()

	if os.Getenv(EnvURL) == "" {
		// Stop the private server on Ctrl-C too; a crash or a test timeout
		// leaves it for the next run to clean up (see removeStale).
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(sig)
		go func() {
			<-sig
			stop()
			os.Exit(130)
		}()
	}

	mu.Lock()
	serverURL = url
	mu.Unlock()
	defer closeEnvironment()
	return m.Run()
}

// resolveServer returns the URL of the server's maintenance database and a
// function releasing the server.
func resolveServer() (string, func(), error) {
	if u := os.Getenv(EnvURL); u != "" {
		return u, func() {}, nil
	}
	removeStale()

	dir, err := os.MkdirTemp("", tempDirPrefix)
	if err != nil {
		return "", nil, err
	}
	// When root, the cluster runs as an unprivileged user that must enter dir.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv, err := devpg.Start(ctx, devpg.Options{
		DataDir:  filepath.Join(dir, "data"),
		Docker:   true,
		Database: "postgres",
	})
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}

	var once sync.Once
	stop := func() {
		once.Do(func() {
			// The Docker container is shared by every test process on this
			// machine, so it stays up; a private cluster is this process's.
			if srv.Method == devpg.MethodLocal {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := srv.Stop(ctx); err != nil {
					fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
				}
			}
			os.RemoveAll(dir)
		})
	}
	return srv.URL, stop, nil
}

// removeStale deletes the directories of private servers whose test process
// is gone. PostgreSQL notices that its data directory vanished and shuts down
// within a minute.
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tempDirPrefix+"*"))
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		os.RemoveAll(dir)
	}
}

func closeEnvironment() {
	mu.Lock()
	defer mu.Unlock()
	if env != nil {
		env.admin.Close()
	}
	env, envErr = nil, nil
}

// New returns a pool on a fresh database holding the migrated schema. The
// pool is closed and the database dropped when the test ends. Its query exec
// mode is LIGHTBUS_TEST_EXEC_MODE's when set.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return NewWithExecMode(t, "")
}

// NewWithExecMode is New with the pool's default query exec mode named by
// mode (one of ExecModes); an empty mode is LIGHTBUS_TEST_EXEC_MODE's, or
// pgx's default.
func NewWithExecMode(t testing.TB, mode string) *pgxpool.Pool {
	t.Helper()
	dbURL := NewURL(t)
	if mode != "" {
		var err error
		if dbURL, err = WithExecMode(dbURL, mode); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	pool, err := pgxpool.New(t.Context(), dbURL)
	if err != nil {
		t.Fatalf("pgtest: open pool: %v", err)
	}
	t.Cleanup(pool.Close) // runs before the drop registered by NewURL
	return pool
}

// NewURL creates a fresh database holding the migrated schema and returns its
// URL. The database is dropped (its connections ended) when the test ends.
// The URL names LIGHTBUS_TEST_EXEC_MODE's query exec mode when that is set.
func NewURL(t testing.TB) string {
	t.Helper()
	e, base, err := environmentOf()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}

	name := "lb_test_" + randomHex(8)
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize() + " TEMPLATE " + pgx.Identifier{e.template}.Sanitize()
	if err := execRetry(t.Context(), e.admin, sql); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := e.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	dbURL, err := withDatabase(base, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if mode := os.Getenv(EnvExecMode); mode != "" {
		if dbURL, err = WithExecMode(dbURL, mode); err != nil {
			t.Fatalf("pgtest: %s: %v", EnvExecMode, err)
		}
	}
	return dbURL
}

// WithExecMode returns dbURL (a URL or a keyword/value string) with its
// default_query_exec_mode parameter set to mode, one of ExecModes.
func WithExecMode(dbURL, mode string) (string, error) {
	if !slices.Contains(ExecModes, mode) {
		return "", fmt.Errorf("unknown query exec mode %q (want one of %s)", mode, strings.Join(ExecModes, ", "))
	}
	if strings.HasPrefix(dbURL, "postgres://") || strings.HasPrefix(dbURL, "postgresql://") {
		u, err := url.Parse(dbURL)
		if err != nil {
			return "", err
		}
		q := u.Query()
		q.Set("default_query_exec_mode", mode)
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	return dbURL + " default_query_exec_mode=" + mode, nil
}

// environmentOf returns the environment, setting it up on first use, and the
// server URL.
func environmentOf() (*environment, string, error) {
	mu.Lock()
	defer mu.Unlock()
	base := serverURL
	if base == "" {
		base = os.Getenv(EnvURL)
	}
	if base == "" {
		return nil, "", errors.New("no server: run the tests through pgtest.Main (func TestMain(m *testing.M) { pgtest.Main(m) }) or set " + EnvURL)
	}
	if env == nil && envErr == nil {
		env, envErr = setUp(base)
		if envErr != nil {
			envErr = fmt.Errorf("set up test databases on %s: %w", redact(base), envErr)
		}
	}
	return env, base, envErr
}

// setUp connects to the server and makes sure the template exists.
func setUp(base string) (*environment, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	cfg, err := pgxpool.ParseConfig(base)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = 4
	admin, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	e := &environment{admin: admin, template: templateName()}
	if err := ensureTemplate(ctx, admin, base, e.template); err != nil {
		admin.Close()
		return nil, err
	}
	return e, nil
}

// ensureTemplate builds the template database name unless it exists. The
// schema is migrated in a database with a temporary name that is renamed
// once complete, so a template that exists is always whole.
func ensureTemplate(ctx context.Context, admin *pgxpool.Pool, base, name string) error {
	exists := func(conn interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}) (bool, error) {
		var ok bool
		err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&ok)
		return ok, err
	}
	if ok, err := exists(admin); err != nil || ok {
		return err
	}

	conn, err := admin.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLockKey); err != nil {
		return fmt.Errorf("take template lock: %w", err)
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", templateLockKey); err != nil {
			conn.Conn().Close(context.WithoutCancel(ctx)) // closing the session releases the lock
		}
	}()
	if ok, err := exists(conn); err != nil || ok {
		return err // built by another process meanwhile
	}

	building := name + "_new"
	ident := pgx.Identifier{building}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop unfinished template: %w", err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return fmt.Errorf("create template: %w", err)
	}
	if err := migrate(ctx, base, building); err != nil {
		return err
	}
	// Nothing may connect to a template while it is copied.
	if err := execRetry(ctx, conn, "ALTER DATABASE "+ident+" WITH ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("close template to connections: %w", err)
	}
	if err := execRetry(ctx, conn, "ALTER DATABASE "+ident+" RENAME TO "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("publish template: %w", err)
	}
	return nil
}

// migrate applies every migration to database db.
func migrate(ctx context.Context, base, db string) error {
	dbURL, err := withDatabase(base, db)
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := migrations.Up(ctx, pool, slog.New(slog.DiscardHandler)); err != nil {
		return fmt.Errorf("migrate template: %w", err)
	}
	return nil
}

// templateName returns lightbus_tmpl_ and 12 hex digits of a SHA-256 over the
// migration files and the River version. River's own migration files are
// hashed too, because test binaries carry no dependency versions and
// riverVersion then falls back to a constant.
func templateName() string {
	h := sha256.New()
	hashFS(h, "lightbus", migrations.FS)
	driver := riverpgxv5.New(nil)
	for _, line := range driver.GetMigrationLines() {
		hashFS(h, "river/"+line, driver.GetMigrationFS(line))
	}
	fmt.Fprintf(h, "river\x00%s", riverVersion())
	return "lightbus_tmpl_" + hex.EncodeToString(h.Sum(nil))[:12]
}

// hashFS writes the name and content of every file in fsys to h, in lexical
// order.
func hashFS(h io.Writer, prefix string, fsys fs.FS) {
	_ = fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s/%s\x00%d\x00", prefix, path, len(data))
		h.Write(data)
		return nil
	})
}

// riverVersion returns the versions of the River modules whose migrations
// make part of the schema.
func riverVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return riverVersionFallback
	}
	var versions []string
	for _, dep := range info.Deps {
		if dep.Path != "github.com/riverqueue/river" && dep.Path != "github.com/riverqueue/river/riverdriver/riverpgxv5" {
			continue
		}
		if dep.Replace != nil {
			dep = dep.Replace
		}
		versions = append(versions, dep.Path+"@"+dep.Version)
	}
	if len(versions) == 0 {
		return riverVersionFallback
	}
	return strings.Join(versions, " ")
}

// execer is a pool or a connection.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// execRetry runs sql, retrying for a while when the database it works on is
// in use (SQLSTATE 55006), as a template copied by another CREATE DATABASE or
// a database whose last connections are still closing is.
func execRetry(ctx context.Context, db execer, sql string) error {
	deadline := time.Now().Add(15 * time.Second)
	for delay := 20 * time.Millisecond; ; delay = min(2*delay, 500*time.Millisecond) {
		_, err := db.Exec(ctx, sql)
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(delay):
		}
	}
}

// withDatabase returns base (a URL or a keyword/value string) naming database
// db instead.
func withDatabase(base, db string) (string, error) {
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", EnvURL, err)
		}
		u.Path = "/" + db
		u.RawPath = ""
		return u.String(), nil
	}
	return base + " dbname=" + db, nil
}

// redact hides a password in a URL for messages.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		return u.Redacted()
	}
	return "the server"
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
