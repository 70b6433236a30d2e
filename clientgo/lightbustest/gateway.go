package lightbustest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/internal/gatewayproc"
	"github.com/lightbus-go/lightbus/internal/testwait"
	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

// EnvGatewayBin names the environment variable holding the path of a
// gateway binary for [StartGateway] to run instead of building one.
const EnvGatewayBin = "LIGHTBUS_GATEWAY_BIN"

var (
	buildDir  string // set by Main
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// Main runs a package's tests with what [StartGateway] needs: a Postgres
// server to make each gateway's database on (found as the project's own
// tests find one: TEST_DATABASE_URL, else a private server from local
// PostgreSQL binaries, else Docker; with none it exits 1, it never
// skips), and a directory for the gateway binary, built at most once per
// test process and removed after the run. Call it from TestMain:
//
//	func TestMain(m *testing.M) { lightbustest.Main(m) }
func Main(m *testing.M) {
	dir, err := os.MkdirTemp("", "lightbustest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "lightbustest:", err)
		os.Exit(1)
	}
	buildDir = dir
	code := pgtest.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// gatewayBinary returns the gateway binary: $LIGHTBUS_GATEWAY_BIN, or
// cmd/gateway built once per process.
func gatewayBinary() (string, error) {
	if bin := os.Getenv(EnvGatewayBin); bin != "" {
		return bin, nil
	}
	if buildDir == "" {
		return "", errors.New("lightbustest: StartGateway needs the package's TestMain to call lightbustest.Main")
	}
	buildOnce.Do(func() {
		buildBin = filepath.Join(buildDir, "gateway")
		buildErr = gatewayproc.Build(buildBin)
		if buildErr != nil {
			buildErr = fmt.Errorf("lightbustest: %w (set %s to a gateway binary to skip the build)", buildErr, EnvGatewayBin)
		}
	})
	return buildBin, buildErr
}

// Gateway is a private gateway for one test: its own process and its own
// database, so that the test's fires and calls reach only the workers the
// test runs. Start one with [StartGateway].
type Gateway struct {
	// URL is the gateway's base URL, e.g. http://127.0.0.1:41234.
	URL string
	// Token is the gateway's admin API key (authentication is required).
	Token string
}

// StartGateway starts a private gateway for t: the real gateway
// (cmd/gateway) as a process of its own, on a fresh database copied from
// the migrated template, with authentication required, short delivery
// retries (50ms doubling to 500ms) and env (NAME=value, e.g.
// "LIGHTBUS_RPC_DEFAULT_TIMEOUT=2s") added to its environment. It returns
// once the gateway listens and stops it when t ends; its log goes to
// t.Log. The package's TestMain must call [Main].
func StartGateway(t testing.TB, env ...string) *Gateway {
	t.Helper()
	bin, err := gatewayBinary()
	if err != nil {
		t.Fatal(err)
	}
	token := gatewayproc.NewToken(t)
	return &Gateway{URL: gatewayproc.StartBinary(t, bin, token, env...), Token: token}
}

// Options returns the options that point a Bus at g: its URL and admin
// token.
func (g *Gateway) Options() []lightbus.Option {
	return []lightbus.Option{lightbus.WithURL(g.URL), lightbus.WithToken(g.Token)}
}

// Client returns a Bus that fires and calls through g, logging to t.
func (g *Gateway) Client(t testing.TB) *lightbus.Bus {
	t.Helper()
	bus, err := lightbus.Create(append(g.Options(), lightbus.WithLogger(testLogger(t)))...)
	if err != nil {
		t.Fatal(err)
	}
	return bus
}

// Run runs bus's worker against g until t ends, as `lightbus run` would
// (the bus must have been created with g's options, see [Gateway.Options]),
// and returns once the gateway lists the worker as live: from then on its
// RPCs are routed to it and its listener groups receive the events fired.
// When t ends the worker stops and deregisters; an error from its Run
// fails t.
func (g *Gateway) Run(t testing.TB, bus *lightbus.Bus) {
	t.Helper()
	if bus.URL() != g.URL {
		t.Fatalf("lightbustest: Run: the bus talks to %s, not to this gateway (%s): create it with the gateway's Options", bus.URL(), g.URL)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bus.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("lightbustest: the %s worker: %v", bus.Service(), err)
		}
	})
	client := g.Client(t)
	testwait.For(t, time.Minute, "the "+bus.Service()+" worker registered", func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("lightbustest: the %s worker stopped: %v", bus.Service(), err)
		default:
		}
		workers, err := client.Workers(ctx)
		return err == nil && slices.ContainsFunc(workers, func(w lightbus.Worker) bool { return w.ID == bus.WorkerID() })
	})
}

// testLogger logs to t, and drops lines once t is over.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(&testWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w *testWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // a log line after the test ended
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}
