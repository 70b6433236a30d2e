// Package fault is the gateway's fault-injection suite. It builds the gateway
// binary once, runs it as real processes against a private Postgres, and
// injects faults (SIGKILL, SIGTERM, a database restart, listeners and workers
// going away, slow listeners, several replicas) while a load generator fires
// events and calls RPCs. Every scenario ends with an audit: each event the
// gateway acknowledged with 2xx must be stored and delivered to every
// subscribed listener group at least once. See docs/RELIABILITY.md.
package fault

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lightbus-go/lightbus/store/postgres/devpg"
)

// roleEnv makes the test binary run as a helper process instead of the tests.
const roleEnv = "LIGHTBUS_FAULT_ROLE"

var (
	// gatewayBin is the gateway binary built by TestMain.
	gatewayBin string
	// adminURL is the shared test cluster's postgres database.
	adminURL string
	// workDir holds the binary and the shared cluster.
	workDir string
	// raceBuild builds the gateway with the race detector
	// (LIGHTBUS_FAULT_RACE=1); a data race in a gateway's log then fails
	// its scenario. Off by default: a race-built gateway is several times
	// slower, which thins the load on a small machine.
	raceBuild = os.Getenv("LIGHTBUS_FAULT_RACE") != ""
	// sharedLog is the shared cluster's server log.
	sharedLog string
)

// clusterSettings are the suite's server parameters. Every scenario runs its
// gateways (each with a pool of LIGHTBUS_DB_MAX_CONNS), workers and audits at
// once on the shared cluster, which would exhaust the default 100
// connections; the log says who connects when a start-up stalls.
var clusterSettings = map[string]string{
	"max_connections": "400",
	"log_connections": "on",
}

func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == "worker" {
		os.Exit(workerMain())
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	workDir, err = reachableTempDir("lightbus-fault-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "fault:", err)
		return 1
	}
	defer os.RemoveAll(workDir)

	gatewayBin = filepath.Join(workDir, "gateway")
	args := []string{"build", "-o", gatewayBin}
	if raceBuild {
		args = append(args, "-race")
	}
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), append(args, "..")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "fault: build the gateway:", err)
		return 1
	}

	ctx := context.Background()
	srv, err := devpg.Start(ctx, devpg.Options{DataDir: filepath.Join(workDir, "pgdata"), Database: "postgres",
		Logger: slog.New(slog.DiscardHandler), Settings: clusterSettings})
	if err != nil {
		fmt.Fprintln(os.Stderr, "fault: start Postgres:", err)
		return 1
	}
	defer func() { _ = srv.Stop(context.Background()) }()
	adminURL = srv.URL
	sharedLog = filepath.Join(srv.DataDir, "lightbus-postgres.log")

	// The scenarios spend their time waiting on processes (River's rescue
	// of a dead gateway's deliveries, a 10 s database outage), not on the
	// CPU: run them all at once unless -parallel was given.
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", "16")
	}
	return m.Run()
}

// reachableTempDir makes a temporary directory that the unprivileged user
// running Postgres (when the tests run as root) can traverse.
func reachableTempDir(pattern string) (string, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", err
	}
	return dir, os.Chmod(dir, 0o755)
}

// privateCluster starts a cluster of the scenario's own, for faults that
// would disturb the other scenarios on the shared one (a database restart, a
// frozen network). It returns the server, already running, and the options
// that start it again at the same URL.
func privateCluster(t *testing.T) (*devpg.Server, devpg.Options) {
	t.Helper()
	dir, err := reachableTempDir("lightbus-fault-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	opts := devpg.Options{DataDir: filepath.Join(dir, "pgdata"), Port: freePort(t), Database: "lightbus",
		Logger: slog.New(slog.DiscardHandler), Settings: clusterSettings}
	pg, err := devpg.Start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Stop(context.Background()) })
	return pg, opts
}

// newDatabase creates an empty database on the shared cluster and returns
// its URL; the gateway migrates it on start.
func newDatabase(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	name := fmt.Sprintf("fault_%d", time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, adminURL); err == nil {
			_, _ = conn.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)")
			conn.Close(ctx)
		}
	})
	return withDatabase(adminURL, name)
}

// withDatabase replaces the database in a postgres:// URL.
func withDatabase(rawURL, db string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(fmt.Sprintf("devpg gave a bad URL %q: %v", rawURL, err))
	}
	u.Path = "/" + db
	return u.String()
}

// freePort returns a loopback port that is free right now and that the
// kernel does not hand out by itself. Gateways, listeners and Postgres are
// restarted on the port they had; one of the ephemeral range could have
// become, in between, the local end of some connection (a gateway's to
// Postgres), and the restart would fail with "address already in use".
func freePort(t *testing.T) int {
	t.Helper()
	ports.once.Do(ports.init)
	for range ports.span {
		p := ports.low + int(ports.next.Add(1))%ports.span
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue // in use
		}
		l.Close()
		return p
	}
	t.Fatalf("no free port in [%d, %d)", ports.low, ports.low+ports.span)
	return 0
}

// ports hands out the ports of freePort: from 10000 up to the start of the
// kernel's ephemeral range, in turn from a random start, so that two test
// processes rarely try the same ones.
var ports portRange

type portRange struct {
	once      sync.Once
	low, span int
	next      atomic.Int64
}

func (r *portRange) init() {
	r.low, r.span = 10000, 32768-10000
	// "32768	60999": the ports the kernel picks for connections and :0.
	if data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(data)); len(f) == 2 {
			if first, err := strconv.Atoi(f[0]); err == nil && first > r.low+1000 {
				r.span = first - r.low
			}
		}
	}
	r.next.Store(rand.Int64N(int64(r.span)))
}
