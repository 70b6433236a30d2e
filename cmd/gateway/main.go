// Command gateway runs the Lightbus gateway: the HTTP API that stores fired
// events in Postgres, delivers them to listeners with River, and forwards RPCs
// to live workers.
//
// Usage:
//
//	gateway            serve (applies migrations first)
//	gateway migrate    apply migrations and exit
//	gateway keys ...   create, list and revoke API keys (see keys.go)
//
// Configuration comes from the environment; see the README. With no
// DATABASE_URL the gateway starts a private development Postgres.
package main

import (
	"context"
	_ "embed"
	"errors"
	"expvar"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"riverqueue.com/riverui"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/gateway/dispatch"
	"github.com/lightbus-go/lightbus/gateway/httpapi"
	"github.com/lightbus-go/lightbus/gateway/metrics"
	"github.com/lightbus-go/lightbus/migrations"
	"github.com/lightbus-go/lightbus/store/postgres"
	"github.com/lightbus-go/lightbus/store/postgres/devpg"
)

// openAPI is a copy of the repository's openapi.yaml (go:embed cannot reach
// a parent directory); TestOpenAPICopy keeps the two identical.
//
//go:generate cp ../../openapi.yaml openapi.yaml
//go:embed openapi.yaml
var openAPI []byte

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "gateway: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "serve", "migrate", "keys":
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, "usage: gateway [serve|migrate|keys]\n\n"+keysUsage+"\n\nConfiguration comes from the environment; see the README.")
		return nil
	default:
		return fmt.Errorf("unknown command %q: want serve, migrate or keys", cmd)
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	if cmd == "keys" {
		return runKeys(ctx, args[1:], cfg, logger, stdout)
	}

	dbURL, stopDB, err := database(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer stopDB()

	if cmd == "migrate" {
		pool, err := connect(ctx, dbURL, cfg, logger)
		if err != nil {
			return err
		}
		pool.Close()
		fmt.Fprintln(stdout, "migrations applied")
		return nil
	}

	a, err := newApp(ctx, cfg, dbURL, logger)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		a.close(context.WithoutCancel(ctx))
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	return a.serve(ctx, ln)
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated in Config.Validate
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// database returns the URL to use: DATABASE_URL, or a development Postgres
// started here, with the function that stops it.
func database(ctx context.Context, cfg Config, logger *slog.Logger) (string, func(), error) {
	if cfg.DatabaseURL != "" {
		return cfg.DatabaseURL, func() {}, nil
	}
	logger.InfoContext(ctx, "DATABASE_URL is not set: starting a development Postgres")
	srv, err := devpg.Start(ctx, devpg.Options{DataDir: cfg.DevDataDir, Logger: logger, Docker: true})
	if err != nil {
		return "", nil, err
	}
	logger.InfoContext(ctx, "development Postgres ready",
		slog.String("method", srv.Method), slog.String("data_dir", srv.DataDir), slog.String("database_url", srv.URL))
	return srv.URL, func() {
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := srv.Stop(stopCtx); err != nil {
			logger.Error("stop development Postgres", slog.String("error", err.Error()))
		}
	}, nil
}

// startupRetry is how long start-up keeps trying to reach and migrate the
// database (it may be starting too, or slow to answer) before giving up.
const startupRetry = time.Minute

// errBadURL marks a DATABASE_URL that cannot work however often it is tried.
var errBadURL = errors.New("invalid DATABASE_URL")

// connect opens the pool and applies the migrations, retrying with backoff
// for up to startupRetry while the database cannot be reached.
func connect(ctx context.Context, dbURL string, cfg Config, logger *slog.Logger) (*pgxpool.Pool, error) {
	deadline := time.Now().Add(startupRetry)
	for attempt := 1; ; attempt++ {
		pool, err := openPool(ctx, dbURL, cfg)
		if err == nil {
			if err = migrate(ctx, pool, cfg, logger); err == nil {
				return pool, nil
			}
			pool.Close()
		}
		if errors.Is(err, errBadURL) || ctx.Err() != nil || time.Now().After(deadline) {
			return nil, err
		}
		wait := min(time.Duration(attempt)*500*time.Millisecond, 5*time.Second)
		logger.WarnContext(ctx, "database not ready; retrying", slog.Int("attempt", attempt), slog.Duration("wait", wait), slog.String("error", err.Error()))
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
	}
}

// connectRead opens the pool on DATABASE_READ_URL and checks that its
// schema is current, retrying like connect: a replica may still be
// replaying the migrations the primary has just applied. It never
// migrates (a replica is read-only).
func connectRead(ctx context.Context, cfg Config, logger *slog.Logger) (*pgxpool.Pool, error) {
	c := cfg
	c.DBMaxConns = cfg.DBReadMaxConns
	deadline := time.Now().Add(startupRetry)
	for attempt := 1; ; attempt++ {
		pool, err := openPool(ctx, cfg.DatabaseReadURL, c)
		if err == nil {
			if err = migrations.Check(ctx, pool); err == nil {
				logger.InfoContext(ctx, "inspection reads go to DATABASE_READ_URL")
				return pool, nil
			}
			pool.Close()
		}
		err = fmt.Errorf("DATABASE_READ_URL: %w", err)
		if errors.Is(err, errBadURL) || ctx.Err() != nil || time.Now().After(deadline) {
			return nil, err
		}
		wait := min(time.Duration(attempt)*500*time.Millisecond, 5*time.Second)
		logger.WarnContext(ctx, "read database not ready; retrying", slog.Int("attempt", attempt), slog.Duration("wait", wait), slog.String("error", err.Error()))
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(wait):
		}
	}
}

// readReady is the service's check of the read database: nil (none)
// without a read pool.
func readReady(store *postgres.DB, read *pgxpool.Pool) func(context.Context) error {
	if read == nil {
		return nil
	}
	return store.ReadReady
}

func openPool(ctx context.Context, dbURL string, cfg Config) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadURL, err)
	}
	pcfg.MaxConns = cfg.DBMaxConns
	if pcfg.ConnConfig.ConnectTimeout == 0 || pcfg.ConnConfig.ConnectTimeout > cfg.DBConnectTimeout {
		pcfg.ConnConfig.ConnectTimeout = cfg.DBConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return pool, nil
}

// app is a running gateway: its pool, River client and HTTP handler.
type app struct {
	cfg     Config
	handler http.Handler
	api     *httpapi.Handler // its event streams end on shutdown
	logger  *slog.Logger
	pool    *pgxpool.Pool
	listen  *pgxpool.Pool // LIGHTBUS_DB_LISTEN_URL's, for River's LISTEN; nil when none
	read    *pgxpool.Pool // DATABASE_READ_URL's, for inspection reads; nil when none
	river   *river.Client[pgx.Tx]
	store   *postgres.DB
	// ui is the River UI (nil when LIGHTBUS_RIVER_UI=false); stopUI stops
	// its background queries.
	ui     *riverui.Handler
	stopUI context.CancelFunc
	tracer *sdktrace.TracerProvider // nil: spans are not exported
}

// newApp connects, migrates and wires the gateway, ready to serve.
func newApp(ctx context.Context, cfg Config, dbURL string, logger *slog.Logger) (*app, error) {
	pool, err := connect(ctx, dbURL, cfg, logger)
	if err != nil {
		return nil, err
	}
	networks, err := cfg.workerNetworks()
	if err != nil {
		pool.Close()
		return nil, err
	}
	logger.Info("worker network policy", slog.String("allowed", networks.String()))
	storeOpts := []postgres.Option{postgres.WithInsertNotifyCooldown(cfg.FetchCooldown),
		postgres.WithDeliveryTargetTTL(cfg.DeliveryTargetTTL), postgres.WithRPCSecretOverlap(cfg.WorkerSecretOverlap),
		postgres.WithDeliveryBatchMax(cfg.DeliveryBatchMax)}
	var read *pgxpool.Pool // inspection reads, on DATABASE_READ_URL
	if cfg.DatabaseReadURL != "" {
		if read, err = connectRead(ctx, cfg, logger); err != nil {
			pool.Close()
			return nil, err
		}
		storeOpts = append(storeOpts, postgres.WithReadPool(read))
	}
	store, err := postgres.New(pool, logger, storeOpts...)
	if err != nil {
		pool.Close()
		if read != nil {
			read.Close()
		}
		return nil, err
	}
	// The event partitions of now and the next spans; the prune job keeps
	// creating them. Without them fires still land (in the DEFAULT
	// partition), so a failure here only delays partitioning.
	if n, err := store.EnsurePartitions(ctx, time.Now(), cfg.EventPartition, dispatch.PartitionsAhead); err != nil {
		logger.Warn("create event partitions", slog.Any("error", err))
	} else if n > 0 {
		logger.Info("created event partitions", slog.Int("partitions", n))
	}
	if cfg.FireBatch {
		store.EnableFireBatching(postgres.FireBatchConfig{
			Window:      cfg.FireBatchWindow,
			MaxSize:     cfg.FireBatchMax,
			MaxInFlight: cfg.FireBatchInFlight,
			Timeout:     cfg.DBTimeout,
		})
	}
	sdkTracer, err := newTracerProvider(ctx, cfg, logger)
	if err != nil {
		pool.Close()
		if read != nil {
			read.Close()
		}
		return nil, err
	}
	var tracer trace.TracerProvider // nil: no spans, trace context still passed on
	if sdkTracer != nil {
		tracer = sdkTracer
	}
	var listen *pgxpool.Pool // River's LISTEN behind a transaction pooler
	// failed undoes what newApp started when a later step fails.
	failed := func() {
		if sdkTracer != nil {
			_ = sdkTracer.Shutdown(context.WithoutCancel(ctx))
		}
		pool.Close()
		if listen != nil {
			listen.Close()
		}
		if read != nil {
			read.Close()
		}
	}
	if cfg.DBPooler == poolerTransaction && cfg.DBListenURL != "" {
		if listen, err = openDirectPool(ctx, cfg); err != nil {
			failed()
			return nil, err
		}
	}
	mets := metrics.New(metrics.Config{
		Source:       store,
		Pool:         func() metrics.PoolStats { return poolStats(pool.Stat()) },
		ReadPool:     readPoolStats(read),
		CacheTTL:     cfg.MetricsCacheTTL,
		QueryTimeout: cfg.DBTimeout,
		MaxSeries:    cfg.MetricsMaxSeries,
		Logger:       logger,
	})
	workers := river.NewWorkers()
	retry := gateway.RetryPolicy{Base: cfg.RetryBase, Max: cfg.RetryMax, Jitter: 0.2}
	deliverer := dispatch.NewDeliverer(dispatch.DelivererConfig{
		GroupLimit: cfg.GroupMaxInFlight,
		Logger:     logger,
		Observer:   mets,
		Retry:      retry,
		Snooze:     cfg.NoEndpointSnooze,
		Store:      store,
		Timeout:    cfg.DeliveryTimeout,
		Networks:   networks,

		TracerProvider: tracer,
	})
	river.AddWorker(workers, deliverer)
	river.AddWorker(workers, dispatch.NewBatchDeliverer(deliverer, store))
	river.AddWorker(workers, dispatch.NewOrderedDeliverer(deliverer, store))
	river.AddWorker(workers, dispatch.NewPruner(dispatch.PrunerConfig{
		Batch:       cfg.PruneBatch,
		Logger:      logger,
		Partition:   cfg.EventPartition,
		Retention:   cfg.EventRetention,
		Store:       store,
		Undelivered: cfg.PruneUndelivered,
	}))
	river.AddWorker(workers, dispatch.NewReplayer(store, 0))
	rc, err := river.NewClient(riverDriver(pool, listen), &river.Config{
		// Dead deliveries live at least as long as events; an event is not
		// pruned while it has one, so a dead letter never loses its event.
		DiscardedJobRetentionPeriod: cfg.DeadRetention,
		FetchCooldown:               cfg.FetchCooldown,
		FetchPollInterval:           cfg.FetchPollInterval,
		Logger:                      logger.With(slog.String("component", "river")),
		// Behind a transaction pooler River cannot LISTEN: it polls,
		// unless its LISTEN has a direct connection.
		PollOnly: cfg.DBPooler == poolerTransaction && listen == nil,
		PeriodicJobs: []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(cfg.PruneInterval),
			func() (river.JobArgs, *river.InsertOpts) { return dispatch.PruneArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true})},
		Queues: map[string]river.QueueConfig{
			dispatch.QueueDelivery:    {MaxWorkers: cfg.DeliveryWorkers},
			dispatch.QueueMaintenance: {MaxWorkers: 2},
		},
		JobTimeout:           cfg.DeliveryTimeout + 5*time.Second,
		RescueStuckJobsAfter: cfg.rescueAfter(),
		RetryPolicy:          &dispatch.ClientRetryPolicy{Policy: retry},
		Workers:              workers,
	})
	if err != nil {
		failed()
		return nil, fmt.Errorf("river client: %w", err)
	}
	service := gateway.NewService(gateway.ServiceConfig{
		Events:            store,
		Workers:           store,
		Tasks:             store,
		Listeners:         store,
		Replays:           store,
		Schemas:           store,
		APIs:              store,
		Ready:             store.Ready,
		ReadReady:         readReady(store, read),
		Logger:            logger,
		MaxAttempts:       cfg.DeliveryMaxAttempts,
		IdempotencyWindow: cfg.IdempotencyWindow,
		SchemaCache: gateway.NewSchemaCache(gateway.SchemaCacheConfig{
			Store:  store,
			Logger: logger,
			TTL:    cfg.SchemaCacheTTL,
		}),
		StrictSchemas:   cfg.StrictSchemas,
		ValidateResults: cfg.ValidateResults,
		StoreTimeout:    cfg.DBTimeout,
		WorkerNetworks:  networks,
		Keys:            store,
		RequireAuth:     cfg.authRequired(),
		Streams: gateway.StreamConfig{
			Store:        store,
			MaxStreams:   cfg.StreamMax,
			PollInterval: cfg.StreamPollInterval,
			MaxResume:    cfg.StreamMaxResume,
			Retention:    cfg.EventRetention,
		},
		Forwarder: dispatch.NewForwarder(dispatch.ForwarderConfig{
			DefaultTimeout: cfg.RPCTimeout,
			Logger:         logger,
			MaxTimeout:     cfg.RPCMaxTimeout,
			Store:          store,
			TargetTTL:      cfg.RPCTargetTTL,
			StoreTimeout:   cfg.DBTimeout,
			Networks:       networks,
			TracerProvider: tracer,
		}),
	})
	var ui *riverui.Handler
	if cfg.RiverUI {
		ui, err = riverui.NewHandler(&riverui.HandlerOpts{
			Endpoints: riverui.NewEndpoints(rc, nil),
			Logger:    logger.With(slog.String("component", "riverui")),
			Prefix:    httpapi.RiverUIPath,
		})
		if err != nil {
			failed()
			return nil, fmt.Errorf("river UI: %w", err)
		}
	}
	server := httpapi.New(httpapi.Config{
		Service:       service,
		Logger:        logger,
		MaxBodyBytes:  cfg.MaxBodyBytes,
		MaxBatchBytes: cfg.MaxBatchBytes,
		OpenAPI:       openAPI,
		RateLimit:     cfg.RateLimit,
		RateBurst:     cfg.RateBurst,
		Recorder:      mets,
		Metrics:       mets.Handler(),
		RiverUI:       riverUIHandler(ui),

		TracerProvider: tracer,

		StreamHeartbeat: cfg.StreamHeartbeat,
	})
	if cfg.BootstrapToken != "" {
		if err := service.Bootstrap(ctx, cfg.BootstrapToken); err != nil {
			failed()
			return nil, fmt.Errorf("bootstrap key: %w", err)
		}
	}
	if !cfg.authRequired() {
		reason := "LIGHTBUS_AUTH=off"
		if cfg.Auth == "" {
			reason = "no DATABASE_URL: the development Postgres (set LIGHTBUS_AUTH=required to require keys)"
		}
		logger.WarnContext(ctx, "authentication is off: the bus is open to anyone who can reach it", slog.String("reason", reason))
	}
	var handler http.Handler = server
	if cfg.DebugVars {
		handler = withDebugVars(server)
	}
	return &app{cfg: cfg, handler: handler, logger: logger, pool: pool, listen: listen, read: read, river: rc, store: store, api: server, ui: ui, stopUI: func() {}, tracer: sdkTracer}, nil
}

// riverUIHandler returns ui as the http.Handler httpapi serves, nil (no
// UI) when ui is nil.
func riverUIHandler(ui *riverui.Handler) http.Handler {
	if ui == nil {
		return nil
	}
	return ui
}

// poolStats converts the pool's statistics for the metrics.
func poolStats(s *pgxpool.Stat) metrics.PoolStats {
	return metrics.PoolStats{
		Acquired: s.AcquiredConns(), Idle: s.IdleConns(), Constructing: s.ConstructingConns(), Max: s.MaxConns(),
		Acquires: s.AcquireCount(), EmptyAcquires: s.EmptyAcquireCount(), CanceledAcquires: s.CanceledAcquireCount(),
		AcquireWait: s.AcquireDuration(),
	}
}

// readPoolStats returns the read pool's statistics for the metrics, nil
// without a read pool.
func readPoolStats(read *pgxpool.Pool) func() metrics.PoolStats {
	if read == nil {
		return nil
	}
	return func() metrics.PoolStats { return poolStats(read.Stat()) }
}

// serve runs River and the HTTP server on ln until ctx is done, then shuts
// down gracefully: HTTP first (in-flight requests finish), then River
// (running deliveries finish), each bounded by the shutdown timeout.
func (a *app) serve(ctx context.Context, ln net.Listener) error {
	if a.cfg.DebugAddr != "" {
		_, stopDebug, err := serveDebug(a.cfg.DebugAddr, a.logger)
		if err != nil {
			ln.Close()
			a.close(context.WithoutCancel(ctx))
			return err
		}
		defer stopDebug()
	}
	// River cancels running jobs when its start context ends: shutdown
	// stops it with Stop instead, so running deliveries finish.
	if err := a.river.Start(context.WithoutCancel(ctx)); err != nil {
		ln.Close()
		a.close(context.WithoutCancel(ctx))
		return fmt.Errorf("start river: %w", err)
	}
	if a.ui != nil {
		// The UI's background queries run until close stops them.
		uiCtx, stopUI := context.WithCancel(context.WithoutCancel(ctx))
		a.stopUI = stopUI
		if err := a.ui.Start(uiCtx); err != nil {
			ln.Close()
			a.close(context.WithoutCancel(ctx))
			return fmt.Errorf("start river UI: %w", err)
		}
	}
	srv := &http.Server{
		Handler:           a.handler,
		MaxHeaderBytes:    a.cfg.MaxHeaderBytes,
		ReadHeaderTimeout: a.cfg.ReadHeaderTimeout,
		ReadTimeout:       a.cfg.ReadTimeout,
		WriteTimeout:      a.cfg.writeTimeout(),
		IdleTimeout:       a.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn),
	}
	// Shutdown waits for requests to end: event streams end when it starts.
	srv.RegisterOnShutdown(a.api.CloseStreams)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	a.logger.InfoContext(ctx, "gateway listening", slog.String("addr", ln.Addr().String()))

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("serve: %w", err)
	}
	a.logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(shutdownCtx); serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		a.logger.Warn("HTTP shutdown incomplete", slog.String("error", serr.Error()))
	}
	a.close(shutdownCtx)
	return err
}

// close stops the River UI and fire batching (batches in flight commit),
// stops River (letting running deliveries finish until ctx is done, then
// cancelling them), closes the pool, and flushes the spans not exported
// yet.
func (a *app) close(ctx context.Context) {
	a.stopUI()
	a.store.Close()
	if err := a.river.Stop(ctx); err != nil {
		a.logger.Warn("River did not stop in time; cancelling running deliveries", slog.String("error", err.Error()))
		cancelCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = a.river.StopAndCancel(cancelCtx)
		cancel()
	}
	a.pool.Close()
	if a.listen != nil {
		a.listen.Close()
	}
	if a.read != nil {
		a.read.Close()
	}
	if a.tracer != nil {
		// Shutdown exports what is left; a collector that cannot take it
		// within the shutdown timeout loses those spans.
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := a.tracer.Shutdown(flushCtx); err != nil {
			a.logger.Warn("trace exporter shutdown incomplete", slog.String("error", err.Error()))
		}
		cancel()
	}
}

// withDebugVars serves GET /debug/vars (expvar: memstats, cmdline and the
// goroutine count) in front of h. Enabled by LIGHTBUS_DEBUG_VARS only: it is
// an operator's tool, not part of the API.
func withDebugVars(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /debug/vars", expvar.Handler())
	mux.Handle("/", h)
	return mux
}

func init() {
	expvar.Publish("goroutines", expvar.Func(func() any { return runtime.NumGoroutine() }))
}
