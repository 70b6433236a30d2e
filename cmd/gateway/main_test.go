package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/internal/testhttp"
	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

func TestMain(m *testing.M) {
	if os.Getenv(taskWorkerEnv) != "" {
		os.Exit(taskWorkerMain()) // a worker process of task_test.go
	}
	pgtest.Main(m)
}

// testConfig is the default configuration with retries and polling made
// fast enough for tests. Authentication is off (the auth tests turn it on):
// the tests' gateways get their database URL directly, not through
// DATABASE_URL, so the mode is set here rather than left to the default.
func testConfig() Config {
	return Config{
		Auth:                authOff,
		Addr:                "127.0.0.1:0",
		LogLevel:            "debug",
		LogFormat:           "text",
		DBMaxConns:          10,
		DBReadMaxConns:      4,
		DBPooler:            poolerNone,
		MaxBodyBytes:        64 << 10,
		MaxBatchBytes:       1 << 20,
		ShutdownTimeout:     5 * time.Second,
		MaxHeaderBytes:      64 << 10,
		ReadHeaderTimeout:   10 * time.Second,
		ReadTimeout:         time.Minute,
		IdleTimeout:         2 * time.Minute,
		RPCTimeout:          5 * time.Second,
		RPCMaxTimeout:       time.Minute,
		DeliveryTimeout:     5 * time.Second,
		DeliveryMaxAttempts: 25,
		DeliveryWorkers:     20,
		RetryBase:           20 * time.Millisecond,
		RetryMax:            200 * time.Millisecond,
		NoEndpointSnooze:    100 * time.Millisecond,
		FetchCooldown:       5 * time.Millisecond,
		FetchPollInterval:   50 * time.Millisecond,
		ValidateResults:     true,
		SchemaCacheTTL:      5 * time.Second,
		IdempotencyWindow:   24 * time.Hour,
		EventRetention:      168 * time.Hour,
		DeadRetention:       168 * time.Hour,
		PruneInterval:       10 * time.Minute,
		PruneBatch:          1000,
		EventPartition:      24 * time.Hour,
		RPCTargetTTL:        time.Second,
		DeliveryTargetTTL:   time.Second,
		DeliveryBatchMax:    100,
		FireBatch:           true,
		FireBatchWindow:     time.Millisecond,
		FireBatchMax:        64,
		FireBatchInFlight:   4,
		GroupMaxInFlight:    10,
		DBConnectTimeout:    2 * time.Second,
		DBTimeout:           30 * time.Second, // generous: a loaded machine runs the suite
		WorkerSecretOverlap: 5 * time.Minute,
		MetricsCacheTTL:     5 * time.Second,
		MetricsMaxSeries:    1000,
		StreamMax:           10,
		StreamHeartbeat:     time.Second,
		StreamPollInterval:  20 * time.Millisecond,
		StreamMaxResume:     24 * time.Hour,
	}
}

// testGateway is a gateway serving on loopback against a fresh database.
type testGateway struct {
	URL string
	app *app
}

func startGateway(t *testing.T, mutate func(*Config)) *testGateway {
	t.Helper()
	return startGatewayOn(t, pgtest.NewURL(t), mutate)
}

// startGatewayOn starts a gateway on the database at dbURL, which other
// gateways (replicas) may share.
func startGatewayOn(t *testing.T, dbURL string, mutate func(*Config)) *testGateway {
	t.Helper()
	cfg := testConfig()
	if mutate != nil {
		mutate(&cfg)
	}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	gw, stop := launchGateway(t, cfg, dbURL, logger)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("gateway stopped with %v", err)
		}
	})
	return gw
}

// launchGateway starts a gateway with cfg against the database at dbURL,
// serving at cfg.Addr. stop shuts it down and returns how serving ended.
func launchGateway(t *testing.T, cfg Config, dbURL string, logger *slog.Logger) (gw *testGateway, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := newApp(ctx, cfg, dbURL, logger)
	if err != nil {
		cancel()
		t.Fatalf("start gateway: %v", err)
	}
	a.handler = specChecked(t, a.handler)
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.serve(ctx, ln) }()
	stop = sync.OnceValue(func() error {
		cancel()
		return <-done
	})
	return &testGateway{URL: "http://" + ln.Addr().String(), app: a}, stop
}

// testWriter sends log lines to t.Log, and drops them once the test is over.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	defer func() { _ = recover() }() // logging after the test ended panics
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// do sends a request to the gateway and decodes a JSON answer into out
// (when not nil).
func (g *testGateway) do(t *testing.T, method, path string, body string, header map[string]string, out any) *http.Response {
	t.Helper()
	return testhttp.Do(t, method, g.URL+path, body, header, out)
}

// problem is a problem document as the gateway writes it.
type problem = testhttp.Problem

// expectProblem checks that resp is a problem document with status and code.
func expectProblem(t *testing.T, resp *http.Response, status int, code string) problem {
	t.Helper()
	return testhttp.ExpectProblem(t, resp, status, code)
}

func TestOpenAPICopy(t *testing.T) {
	t.Parallel()

	want, err := os.ReadFile("../../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(openAPI, want) {
		t.Fatal("cmd/gateway/openapi.yaml differs from the repository's openapi.yaml: run go generate ./cmd/gateway")
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()

	cfg := testConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	for variable, mutate := range map[string]func(*Config){
		"LIGHTBUS_ADDR":          func(c *Config) { c.Addr = "" },
		"LIGHTBUS_DB_POOLER":     func(c *Config) { c.DBPooler = "statement" },
		"LIGHTBUS_DB_LISTEN_URL": func(c *Config) { c.DBListenURL = "postgres://db/lightbus" },
		"DATABASE_READ_URL":      func(c *Config) { c.DatabaseReadURL = "postgres://replica/lightbus" },
		"LIGHTBUS_DB_READ_MAX_CONNS": func(c *Config) {
			c.DatabaseURL, c.DatabaseReadURL, c.DBReadMaxConns = "postgres://db/lightbus", "postgres://replica/lightbus", 0
		},
		"LIGHTBUS_DB_MAX_CONNS":          func(c *Config) { c.DBMaxConns = 2 },
		"LIGHTBUS_RPC_TIMEOUT":           func(c *Config) { c.RPCTimeout = 0 },
		"LIGHTBUS_RPC_MAX_TIMEOUT":       func(c *Config) { c.RPCTimeout = 2 * c.RPCMaxTimeout },
		"LIGHTBUS_DELIVERY_WORKERS":      func(c *Config) { c.DeliveryWorkers = -1 },
		"LIGHTBUS_LOG_LEVEL":             func(c *Config) { c.LogLevel = "loud" },
		"LIGHTBUS_LOG_FORMAT":            func(c *Config) { c.LogFormat = "xml" },
		"LIGHTBUS_RETRY_BASE":            func(c *Config) { c.RetryBase = 2 * c.RetryMax },
		"LIGHTBUS_FETCH_POLL_INTERVAL":   func(c *Config) { c.FetchCooldown = 2 * c.FetchPollInterval },
		"LIGHTBUS_DEAD_RETENTION":        func(c *Config) { c.DeadRetention = c.EventRetention / 2 },
		"LIGHTBUS_PRUNE_BATCH":           func(c *Config) { c.PruneBatch = 0 },
		"LIGHTBUS_EVENT_PARTITION":       func(c *Config) { c.EventPartition = time.Minute },
		"LIGHTBUS_METRICS_CACHE_TTL":     func(c *Config) { c.MetricsCacheTTL = 0 },
		"LIGHTBUS_METRICS_MAX_SERIES":    func(c *Config) { c.MetricsMaxSeries = -1 },
		"LIGHTBUS_IDEMPOTENCY_WINDOW":    func(c *Config) { c.IdempotencyWindow = 0 },
		"LIGHTBUS_RPC_TARGET_TTL":        func(c *Config) { c.RPCTargetTTL = -time.Second },
		"LIGHTBUS_DELIVERY_TARGET_TTL":   func(c *Config) { c.DeliveryTargetTTL = -time.Second },
		"LIGHTBUS_DELIVERY_BATCH_MAX":    func(c *Config) { c.DeliveryBatchMax = 0 },
		"LIGHTBUS_FIRE_BATCH_WINDOW":     func(c *Config) { c.FireBatchWindow = -time.Millisecond },
		"LIGHTBUS_FIRE_BATCH_MAX":        func(c *Config) { c.FireBatchMax = 0 },
		"LIGHTBUS_FIRE_BATCH_IN_FLIGHT":  func(c *Config) { c.FireBatchInFlight = int(c.DBMaxConns) },
		"LIGHTBUS_GROUP_MAX_IN_FLIGHT":   func(c *Config) { c.GroupMaxInFlight = 0 },
		"LIGHTBUS_DB_CONNECT_TIMEOUT":    func(c *Config) { c.DBConnectTimeout = 0 },
		"LIGHTBUS_DB_TIMEOUT":            func(c *Config) { c.DBTimeout = -1 },
		"LIGHTBUS_RESCUE_AFTER":          func(c *Config) { c.RescueAfter = c.DeliveryTimeout + time.Second },
		"LIGHTBUS_WORKER_NETWORKS":       func(c *Config) { c.WorkerNetworks = "10.0.0.0/33" },
		"LIGHTBUS_WORKER_SECRET_OVERLAP": func(c *Config) { c.WorkerSecretOverlap = -time.Second },
		"LIGHTBUS_AUTH":                  func(c *Config) { c.Auth = "sometimes" },
		"LIGHTBUS_BOOTSTRAP_TOKEN":       func(c *Config) { c.BootstrapToken = "lb_too-short" },
		"LIGHTBUS_RATE_LIMIT":            func(c *Config) { c.RateLimit = -1 },
		"LIGHTBUS_RATE_BURST":            func(c *Config) { c.RateBurst = -1 },
		"LIGHTBUS_MAX_HEADER_BYTES":      func(c *Config) { c.MaxHeaderBytes = 100 },
		"LIGHTBUS_READ_HEADER_TIMEOUT":   func(c *Config) { c.ReadHeaderTimeout = 2 * c.ReadTimeout },
		"LIGHTBUS_READ_TIMEOUT":          func(c *Config) { c.ReadTimeout = 0 },
		"LIGHTBUS_IDLE_TIMEOUT":          func(c *Config) { c.IdleTimeout = 0 },
		"LIGHTBUS_WRITE_TIMEOUT":         func(c *Config) { c.WriteTimeout = c.RPCMaxTimeout },
		"OTEL_TRACES_EXPORTER":           func(c *Config) { c.OTelTracesExporter = "zipkin" },
		"OTEL_EXPORTER_OTLP_PROTOCOL":    func(c *Config) { c.OTelEndpoint, c.OTelProtocol = "http://collector:4318", "grpc" },
		"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": func(c *Config) {
			c.OTelTracesExporter, c.OTelProtocol, c.OTelTracesProtocol = "otlp", "http/protobuf", "http/json"
		},
		"OTEL_EXPORTER_OTLP_ENDPOINT":        func(c *Config) { c.OTelEndpoint = "collector:4318" },
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": func(c *Config) { c.OTelTracesEndpoint = "http://" },
	} {
		c := testConfig()
		mutate(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), variable) {
			t.Errorf("%s: got %v, want an error naming it", variable, err)
		}
	}
}

// TestLoadConfig sets environment variables, so it cannot run in parallel.
func TestLoadConfig(t *testing.T) {
	t.Setenv("LIGHTBUS_RPC_TIMEOUT", "soon")
	_, err := loadConfig()
	if err == nil || !strings.Contains(err.Error(), "LIGHTBUS_RPC_TIMEOUT") {
		t.Fatalf("got %v, want an error naming LIGHTBUS_RPC_TIMEOUT", err)
	}
	t.Setenv("LIGHTBUS_RPC_TIMEOUT", "3s")
	t.Setenv("LIGHTBUS_ADDR", "127.0.0.1:9999")
	cfg, err := loadConfig()
	if err != nil || cfg.RPCTimeout != 3*time.Second || cfg.Addr != "127.0.0.1:9999" || cfg.DeliveryMaxAttempts != 25 || !cfg.RiverUI {
		t.Fatalf("loadConfig = %+v, %v", cfg, err)
	}
}

// TestRunBadConfig sets environment variables, so it cannot run in parallel.
func TestRunBadConfig(t *testing.T) {
	t.Setenv("LIGHTBUS_DELIVERY_WORKERS", "0")
	err := run(context.Background(), nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "LIGHTBUS_DELIVERY_WORKERS") {
		t.Fatalf("run with a bad config: %v", err)
	}
	if err := run(context.Background(), []string{"frobnicate"}, io.Discard, io.Discard); err == nil {
		t.Fatal("run with an unknown command: want an error")
	}
}

// TestRunBadDatabaseURL sets environment variables, so it cannot run in
// parallel. A URL that cannot work is reported at once, not retried.
func TestRunBadDatabaseURL(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://%zz")
	start := time.Now()
	err := run(context.Background(), nil, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "invalid DATABASE_URL") {
		t.Fatalf("run with a malformed DATABASE_URL: %v", err)
	}
	if d := time.Since(start); d > startupRetry/2 {
		t.Fatalf("a malformed DATABASE_URL took %s to report: it must not be retried", d)
	}
}

type fireResult struct {
	ID         string `json:"id"`
	API        string `json:"api"`
	Event      string `json:"event"`
	CreatedAt  string `json:"created_at"`
	Deliveries int    `json:"deliveries"`
}

type eventPage struct {
	Events []struct {
		ID     string         `json:"id"`
		API    string         `json:"api"`
		Event  string         `json:"event"`
		Params map[string]any `json:"params"`
	} `json:"events"`
	NextCursor string `json:"next_cursor"`
}
