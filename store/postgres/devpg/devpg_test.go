package devpg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// dataDir returns a fresh data directory that the unprivileged user running
// the cluster (when the tests run as root) can reach.
func dataDir(t *testing.T) string {
	return filepath.Join(reachableTempDir(t), "pgdata")
}

// reachableTempDir returns t.TempDir() with it and its parents up to
// os.TempDir() made traversable by every user.
func reachableTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != filepath.Dir(d); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// start starts a server and stops it at cleanup.
func start(t *testing.T, opts Options) *Server {
	t.Helper()
	srv, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(context.Background()); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	return srv
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestStartLocalPersistsAcrossRestarts(t *testing.T) {
	t.Parallel()

	dir := dataDir(t)
	opts := Options{DataDir: dir, Logger: testLogger(t), Database: "lightbus_dev"}

	srv := start(t, opts)
	if srv.Method != MethodLocal || srv.Reused {
		t.Fatalf("Method = %q, Reused = %v; want local, false", srv.Method, srv.Reused)
	}
	if srv.DataDir != dir {
		t.Errorf("DataDir = %q, want %q", srv.DataDir, dir)
	}
	if !strings.HasPrefix(srv.URL, "postgres://postgres@127.0.0.1:") || !strings.HasSuffix(srv.URL, "/lightbus_dev?sslmode=disable") {
		t.Errorf("URL = %q", srv.URL)
	}
	if strings.Contains(srv.URL, ":5432/") {
		t.Errorf("URL %q uses the system server's port", srv.URL)
	}
	if !fileExists(filepath.Join(dir, logFileName)) {
		t.Errorf("no server log in the data dir")
	}

	conn := connect(t, srv.URL)
	var fsync, syncCommit string
	if err := conn.QueryRow(t.Context(), "SELECT current_setting('fsync'), current_setting('synchronous_commit')").Scan(&fsync, &syncCommit); err != nil {
		t.Fatal(err)
	}
	if fsync != "on" || syncCommit != "on" {
		t.Errorf("fsync = %s, synchronous_commit = %s; want durable defaults", fsync, syncCommit)
	}
	if _, err := conn.Exec(t.Context(), "CREATE TABLE kept (id int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(t.Context())

	if err := srv.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if fileExists(filepath.Join(dir, "postmaster.pid")) {
		t.Fatalf("postmaster.pid still present after Stop")
	}
	if err := ping(t.Context(), srv.URL); err == nil {
		t.Fatalf("server still answers after Stop")
	}

	again := start(t, opts)
	if again.Reused {
		t.Errorf("second Start reused a stopped server")
	}
	var n int
	if err := connect(t, again.URL).QueryRow(t.Context(), "SELECT id FROM kept").Scan(&n); err != nil {
		t.Fatalf("table lost across restart: %v", err)
	}
	if n != 42 {
		t.Errorf("id = %d, want 42", n)
	}
}

func TestStartReusesRunningCluster(t *testing.T) {
	t.Parallel()

	opts := Options{DataDir: dataDir(t), Logger: testLogger(t)}
	first := start(t, opts)

	second, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if !second.Reused {
		t.Errorf("second Start did not reuse the running cluster")
	}
	if second.URL != first.URL {
		t.Errorf("URL = %q, want %q", second.URL, first.URL)
	}
	if !strings.HasSuffix(second.URL, "/"+DefaultDatabase+"?sslmode=disable") {
		t.Errorf("URL = %q, want database %s", second.URL, DefaultDatabase)
	}

	// Stopping the reusing server leaves the cluster running.
	if err := second.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := ping(t.Context(), first.URL); err != nil {
		t.Fatalf("cluster stopped by a server that did not start it: %v", err)
	}

	if err := first.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := ping(t.Context(), first.URL); err == nil {
		t.Fatalf("cluster still answers after its starter stopped it")
	}
	if err := first.Stop(t.Context()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// unreachableDocker returns a Docker endpoint with nothing behind it.
func unreachableDocker(t *testing.T) string {
	return "unix://" + filepath.Join(t.TempDir(), "missing", "docker.sock")
}

func TestStartNoPostgres(t *testing.T) {
	t.Parallel()

	empty := t.TempDir()
	tests := []struct {
		name string
		opts Options
	}{
		{"BinDirsEmptyDocker", Options{BinDirs: []string{empty}, Docker: true, DockerEndpoint: unreachableDocker(t)}},
		{"BinDirsEmptyNoDocker", Options{BinDirs: []string{empty}}},
		{"PathWithoutPostgres", Options{
			pathList:       empty + string(filepath.ListSeparator) + filepath.Join(empty, "missing"),
			globs:          []string{filepath.Join(empty, "*", "bin")},
			Docker:         true,
			DockerEndpoint: unreachableDocker(t),
		}},
		{"PartialInstall", Options{BinDirs: []string{partialInstall(t)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.opts.DataDir = filepath.Join(t.TempDir(), "pgdata")
			srv, err := Start(t.Context(), tt.opts)
			if err == nil {
				srv.Stop(context.Background())
				t.Fatalf("Start succeeded with %s", srv.Method)
			}
			if !errors.Is(err, ErrNoPostgres) {
				t.Fatalf("err = %v, want ErrNoPostgres", err)
			}
			for _, want := range []string{"DATABASE_URL", "apt-get install postgresql", "Docker"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if fileExists(filepath.Join(tt.opts.DataDir, "PG_VERSION")) {
				t.Errorf("a cluster was initialised")
			}
		})
	}
}

// partialInstall returns a directory holding an initdb but no pg_ctl or
// postgres.
func partialInstall(t *testing.T) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "initdb"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestStartDockerUnreachableDoesNotHang(t *testing.T) {
	t.Parallel()

	// An engine that accepts connections and never answers.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()

	begin := time.Now()
	_, err = Start(t.Context(), Options{
		DataDir:        filepath.Join(t.TempDir(), "pgdata"),
		BinDirs:        []string{t.TempDir()},
		Docker:         true,
		DockerEndpoint: "tcp://" + l.Addr().String(),
	})
	if !errors.Is(err, ErrNoPostgres) {
		t.Fatalf("err = %v, want ErrNoPostgres", err)
	}
	if !strings.Contains(err.Error(), "DATABASE_URL") || !strings.Contains(err.Error(), l.Addr().String()) {
		t.Errorf("error %q does not mention DATABASE_URL and the engine address", err)
	}
	if elapsed := time.Since(begin); elapsed > 15*time.Second {
		t.Errorf("Start took %s with a silent engine", elapsed)
	}
}

func TestStartVersionMismatch(t *testing.T) {
	t.Parallel()

	dir := filepath.Join(t.TempDir(), "pgdata")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Start(t.Context(), Options{DataDir: dir})
	if err == nil || errors.Is(err, ErrNoPostgres) || !strings.Contains(err.Error(), "PostgreSQL 7 cluster") {
		t.Fatalf("err = %v, want a version mismatch", err)
	}
}

func TestSearchDirs(t *testing.T) {
	t.Parallel()

	root := t.TempDir()
	for _, v := range []string{"9.6", "15", "17", "16"} {
		if err := os.MkdirAll(filepath.Join(root, v, "bin"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := Options{pathList: "/a" + string(filepath.ListSeparator) + "/b", globs: []string{filepath.Join(root, "*", "bin")}}
	got := opts.searchDirs()
	want := []string{"/a", "/b"}
	for _, v := range []string{"17", "16", "15", "9.6"} {
		want = append(want, filepath.Join(root, v, "bin"))
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("searchDirs() = %v, want %v", got, want)
	}

	opts.BinDirs = []string{"/only"}
	if got := opts.searchDirs(); len(got) != 1 || got[0] != "/only" {
		t.Errorf("searchDirs() with BinDirs = %v", got)
	}
}

func TestParseMajorVersion(t *testing.T) {
	t.Parallel()

	for out, want := range map[string]string{
		"pg_ctl (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)\n": "15",
		"pg_ctl (PostgreSQL) 17.2\n":                           "17",
		"pg_ctl (PostgreSQL) 18beta1\n":                        "18",
		"pg_ctl (PostgreSQL) 9.6.24\n":                         "9.6",
	} {
		got, err := parseMajorVersion(out)
		if err != nil || got != want {
			t.Errorf("parseMajorVersion(%q) = %q, %v; want %q", out, got, err, want)
		}
	}
	if _, err := parseMajorVersion("nonsense"); err == nil {
		t.Errorf("parseMajorVersion(nonsense) succeeded")
	}
}

func TestDefaultDataDir(t *testing.T) {
	t.Parallel()

	env := func(kv map[string]string) func(string) string {
		return func(k string) string { return kv[k] }
	}
	home := func() (string, error) { return "/home/ann", nil }
	tests := []struct {
		name string
		env  map[string]string
		euid int
		want string
	}{
		{"Override", map[string]string{"LIGHTBUS_DEV_DATA_DIR": "/srv/pg", "XDG_DATA_HOME": "/x"}, 0, "/srv/pg"},
		{"Root", map[string]string{"XDG_DATA_HOME": "/x"}, 0, "/var/lib/lightbus/postgres"},
		{"XDG", map[string]string{"XDG_DATA_HOME": "/x"}, 1000, "/x/lightbus/postgres"},
		{"RelativeXDGIgnored", map[string]string{"XDG_DATA_HOME": "x"}, 1000, "/home/ann/.local/share/lightbus/postgres"},
		{"Home", nil, 1000, "/home/ann/.local/share/lightbus/postgres"},
	}
	for _, tt := range tests {
		if got := defaultDataDir(env(tt.env), tt.euid, home); got != tt.want {
			t.Errorf("%s: defaultDataDir() = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestSplitImage(t *testing.T) {
	t.Parallel()

	for image, want := range map[string][2]string{
		"postgres:17-alpine":                {"postgres", "17-alpine"},
		"postgres":                          {"postgres", "latest"},
		"localhost:5000/postgres":           {"localhost:5000/postgres", "latest"},
		"localhost:5000/postgres:16":        {"localhost:5000/postgres", "16"},
		"ghcr.io/acme/postgres:17-bookworm": {"ghcr.io/acme/postgres", "17-bookworm"},
	} {
		repo, tag := splitImage(image)
		if repo != want[0] || tag != want[1] {
			t.Errorf("splitImage(%q) = %q, %q; want %q, %q", image, repo, tag, want[0], want[1])
		}
	}
}

func TestStartFixedPortRestartsAtSameURL(t *testing.T) {
	t.Parallel()

	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{DataDir: dataDir(t), Logger: testLogger(t), Port: port,
		Settings: map[string]string{"max_connections": "123", "log_min_messages": "warning"}}
	srv := start(t, opts)
	if !strings.Contains(srv.URL, net.JoinHostPort("127.0.0.1", fmt.Sprint(port))) {
		t.Fatalf("URL = %q, want port %d", srv.URL, port)
	}
	if err := srv.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := ping(t.Context(), srv.URL); err == nil {
		t.Fatal("server still answers after Stop")
	}
	again := start(t, opts)
	if again.URL != srv.URL {
		t.Fatalf("restarted at %q, want the same URL %q", again.URL, srv.URL)
	}
	if err := ping(t.Context(), again.URL); err != nil {
		t.Fatalf("restarted server does not answer: %v", err)
	}
	var maxConns string
	if err := connect(t, again.URL).QueryRow(t.Context(), "SHOW max_connections").Scan(&maxConns); err != nil {
		t.Fatal(err)
	}
	if maxConns != "123" {
		t.Fatalf("max_connections = %s after a restart, want the setting 123", maxConns)
	}
}

func TestStartRejectsUnsafeSettings(t *testing.T) {
	t.Parallel()
	for _, settings := range []map[string]string{
		{"max_connections": "100; touch /tmp/x"},
		{"work_mem": "4MB'"},
		{"a b": "1"},
		{"shared_buffers": ""},
	} {
		err := pgctlStart(t.Context(), binaries{dir: "/nonexistent"}, nil, t.TempDir(), 1, settings)
		if err == nil || !strings.Contains(err.Error(), "only letters, digits") {
			t.Errorf("settings %q: err = %v, want a refusal before anything runs", settings, err)
		}
	}
}
