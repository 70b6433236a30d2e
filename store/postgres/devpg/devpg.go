// Package devpg provisions a PostgreSQL server for development when no
// DATABASE_URL is configured, and backs the test suite through pgtest.
//
// Start first looks for the PostgreSQL server binaries (initdb, pg_ctl and
// postgres) in PATH and then in the usual installation directories
// (/usr/lib/postgresql/*/bin, newest version first). With binaries it keeps a
// private cluster in a data directory: it initialises the cluster if there is
// none, starts it on a free loopback TCP port, and reuses it when it is already
// running. Data persists in the data directory across restarts, and the server
// keeps PostgreSQL's durable defaults (fsync, synchronous_commit).
//
// Without binaries, and when Docker is allowed, Start runs the container
// lightbus-dev-postgres (or reuses it) with the named volume
// lightbus-dev-postgres-data, so data persists there too.
//
// When neither works Start returns an error wrapping ErrNoPostgres whose message
// says how to fix it: set DATABASE_URL, install the PostgreSQL server binaries,
// or start a Docker engine.
//
// PostgreSQL refuses to run as root. When the caller is root, the cluster is
// initialised and run as the unprivileged "postgres" system user (or "nobody"
// if there is no such user); the data directory is owned by that user and every
// directory above it must be traversable by it.
//
// Start is not meant to be called concurrently on the same data directory.
package devpg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Methods reported in Server.Method.
const (
	// MethodLocal means the server is a cluster run from local binaries.
	MethodLocal = "local"
	// MethodDocker means the server runs in a Docker container.
	MethodDocker = "docker"
)

// Defaults used when the corresponding Options field is empty.
const (
	// DefaultDockerImage is the image run by the Docker fallback.
	DefaultDockerImage = "postgres:17-alpine"
	// DefaultDatabase is the database created and returned in Server.URL.
	DefaultDatabase = "lightbus"
)

// ErrNoPostgres is returned (wrapped) by Start when neither local PostgreSQL
// server binaries nor a Docker engine are usable.
var ErrNoPostgres = errors.New("devpg: no PostgreSQL server available")

// Options configures Start. The zero value searches the default locations,
// keeps data in DefaultDataDir, and does not use Docker.
type Options struct {
	// DataDir is the directory holding the local cluster. "" means
	// DefaultDataDir(). It is created if missing.
	DataDir string

	// Logger receives progress messages. nil discards them.
	Logger *slog.Logger

	// BinDirs are the directories searched for initdb, pg_ctl and postgres, in
	// order. nil means the default search: PATH, then
	// /usr/lib/postgresql/*/bin, /usr/pgsql-*/bin and Homebrew's
	// postgresql@* directories, newest version first.
	BinDirs []string

	// Docker allows the Docker fallback when no local binaries are found.
	Docker bool

	// DockerImage is the image to run. "" means DefaultDockerImage.
	DockerImage string

	// DockerEndpoint is the address of the Docker engine, such as
	// unix:///var/run/docker.sock or tcp://127.0.0.1:2375. "" means DOCKER_HOST,
	// or the platform default.
	DockerEndpoint string

	// Database is the database to create if missing and to return in the URL.
	// "" means DefaultDatabase.
	Database string

	// Port is the loopback TCP port a local cluster listens on. 0 picks a
	// free port. A fixed port lets a caller Stop a cluster and Start it again
	// on the same data directory at the same URL (to simulate a database
	// restart). The Docker fallback ignores it.
	Port int

	// Settings are server parameters (postgresql.conf names, such as
	// max_connections) given to a local cluster's server each time it starts.
	// Names and values are limited to letters, digits and "_.:/-". The Docker
	// fallback, whose container is shared and kept, ignores them.
	Settings map[string]string

	// pathList replaces $PATH in the default binary search when non-empty.
	pathList string
	// globs replace the default installation directory patterns when non-nil.
	globs []string
	// dockerTimeout bounds the Docker engine ping; 0 means 5 seconds.
	dockerTimeout time.Duration
}

// Server is a running PostgreSQL server provisioned by Start.
type Server struct {
	// URL is the connection string of Database, for example
	// postgres://postgres@127.0.0.1:54321/lightbus?sslmode=disable.
	URL string

	// Method is how the server runs: MethodLocal or MethodDocker.
	Method string

	// DataDir is the cluster's data directory (MethodLocal), or the name of the
	// Docker volume holding the data (MethodDocker).
	DataDir string

	// Reused reports whether the server was already running before Start. Stop
	// leaves such a server running.
	Reused bool

	logger *slog.Logger
	stop   func(ctx context.Context) error // nil when Stop has nothing to do

	mu      sync.Mutex
	stopped bool
}

// Start returns a running PostgreSQL server, starting one if needed. It
// prefers local binaries, falls back to Docker when opts.Docker is set, and
// otherwise returns an error wrapping ErrNoPostgres.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DataDir == "" {
		opts.DataDir = DefaultDataDir()
	}
	if opts.DockerImage == "" {
		opts.DockerImage = DefaultDockerImage
	}
	if opts.Database == "" {
		opts.Database = DefaultDatabase
	}
	if opts.dockerTimeout == 0 {
		opts.dockerTimeout = 5 * time.Second
	}

	srv, err := startLocal(ctx, opts)
	if err == nil || !errors.Is(err, errNoBinaries) {
		return srv, err
	}
	localErr := err

	if !opts.Docker {
		return nil, noPostgres(localErr, errors.New("the Docker fallback is disabled"))
	}
	opts.Logger.Info("no local PostgreSQL binaries, trying Docker", "docker_image", opts.DockerImage)
	srv, err = startDocker(ctx, opts)
	if err != nil {
		if errors.Is(err, errDockerUnavailable) {
			return nil, noPostgres(localErr, err)
		}
		return nil, err
	}
	return srv, nil
}

// noPostgres builds the error returned when no method works.
func noPostgres(localErr, dockerErr error) error {
	return fmt.Errorf("%w: %v; %v. To fix this, do one of: "+
		"set DATABASE_URL to an existing PostgreSQL server; "+
		"install the PostgreSQL server binaries (e.g. apt-get install postgresql, or brew install postgresql); "+
		"or start a Docker engine", ErrNoPostgres, localErr, dockerErr)
}

// Stop stops the server if Start started it: a local cluster is shut down with
// pg_ctl stop -m fast, a container is stopped (its volume is kept). A server
// that was already running (Reused) is left alone. Stop is safe to call more
// than once.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	if s.stop == nil {
		s.logger.Info("leaving dev postgres running", "method", s.Method, "data_dir", s.DataDir)
		return nil
	}
	if err := s.stop(ctx); err != nil {
		return err
	}
	s.logger.Info("dev postgres stopped", "method", s.Method, "data_dir", s.DataDir)
	return nil
}

// DefaultDataDir returns the default data directory: $LIGHTBUS_DEV_DATA_DIR if
// set; /var/lib/lightbus/postgres for root; otherwise
// $XDG_DATA_HOME/lightbus/postgres, or ~/.local/share/lightbus/postgres.
func DefaultDataDir() string {
	return defaultDataDir(os.Getenv, os.Geteuid(), os.UserHomeDir)
}

func defaultDataDir(getenv func(string) string, euid int, home func() (string, error)) string {
	if dir := getenv("LIGHTBUS_DEV_DATA_DIR"); dir != "" {
		return dir
	}
	if euid == 0 {
		return "/var/lib/lightbus/postgres"
	}
	if dir := getenv("XDG_DATA_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, "lightbus", "postgres")
	}
	h, err := home()
	if err != nil || h == "" {
		return filepath.Join(os.TempDir(), "lightbus", "postgres")
	}
	return filepath.Join(h, ".local", "share", "lightbus", "postgres")
}

// serverURL returns the URL of database db as the postgres superuser.
func serverURL(host string, port int, db string) string {
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable",
		net.JoinHostPort(host, fmt.Sprint(port)), url.PathEscape(db))
}

// ping connects to rawURL and checks that the server answers queries.
func ping(ctx context.Context, rawURL string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.Ping(ctx)
}

// ensureDatabase creates database db on the server at adminURL unless it
// exists.
func ensureDatabase(ctx context.Context, adminURL, db string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("devpg: connect to create database %q: %w", db, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&exists); err != nil {
		return fmt.Errorf("devpg: look up database %q: %w", db, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: created concurrently
		return nil
	}
	if err != nil {
		return fmt.Errorf("devpg: create database %q: %w", db, err)
	}
	return nil
}
