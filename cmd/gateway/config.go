package main

import (
	"fmt"
	"math"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/lightbus-go/lightbus/gateway"
)

// Config is the gateway's configuration, read from the environment. The
// README's configuration table lists every variable; keep the two in step.
type Config struct {
	// DatabaseURL is the Postgres connection string. Empty starts a private
	// development Postgres (see the README).
	DatabaseURL string `envconfig:"DATABASE_URL"`
	// DatabaseReadURL, when set, is where the inspection reads go: a
	// streaming replica of DATABASE_URL's database (docs/SCALING.md, "Read
	// replica"). Event listings, detail and streams, dead letters, the
	// listener, worker and task listings and the metrics' gauges are read
	// there, as old as its replication delay; everything else stays on
	// DATABASE_URL. Needs DATABASE_URL; never migrated (a replica follows
	// its primary's migrations).
	DatabaseReadURL string `envconfig:"DATABASE_READ_URL"`
	// DBReadMaxConns bounds the pool on DATABASE_READ_URL.
	DBReadMaxConns int32 `envconfig:"LIGHTBUS_DB_READ_MAX_CONNS" default:"10"`
	// DevDataDir is where the development Postgres keeps its data.
	DevDataDir string `envconfig:"LIGHTBUS_DEV_DATA_DIR"`

	Addr      string `envconfig:"LIGHTBUS_ADDR" default:":8080"`
	LogLevel  string `envconfig:"LIGHTBUS_LOG_LEVEL" default:"info"`
	LogFormat string `envconfig:"LIGHTBUS_LOG_FORMAT" default:"text"`

	DBMaxConns int32 `envconfig:"LIGHTBUS_DB_MAX_CONNS" default:"20"`
	// DBPooler says what DATABASE_URL reaches: "none" (Postgres, or a
	// pooler in session mode) or "transaction" (a pooler in transaction
	// mode, such as PgBouncer's pool_mode = transaction): then River polls
	// for jobs rather than LISTEN, unless DBListenURL is set, and migrations
	// run only over DBListenURL. A setting, not a guess: a pooler cannot be
	// told from Postgres reliably.
	DBPooler string `envconfig:"LIGHTBUS_DB_POOLER" default:"none"`
	// DBListenURL is a direct connection to Postgres (bypassing the
	// pooler) for what needs a session: River's LISTEN and the migrations'
	// advisory lock. Only with DBPooler "transaction".
	DBListenURL  string `envconfig:"LIGHTBUS_DB_LISTEN_URL"`
	MaxBodyBytes int64  `envconfig:"LIGHTBUS_MAX_BODY_BYTES" default:"1048576"`
	// MaxBatchBytes bounds the body of a batch fire (POST /v1/events).
	MaxBatchBytes   int64         `envconfig:"LIGHTBUS_MAX_BATCH_BYTES" default:"10485760"`
	ShutdownTimeout time.Duration `envconfig:"LIGHTBUS_SHUTDOWN_TIMEOUT" default:"30s"`
	// MaxHeaderBytes bounds a request's line and header fields; net/http
	// answers a larger one 431 and closes the connection.
	MaxHeaderBytes int `envconfig:"LIGHTBUS_MAX_HEADER_BYTES" default:"65536"`
	// ReadHeaderTimeout bounds reading a request's line and header fields,
	// ReadTimeout the whole request with its body: a client that sends
	// slowly is cut off instead of holding a connection.
	ReadHeaderTimeout time.Duration `envconfig:"LIGHTBUS_READ_HEADER_TIMEOUT" default:"10s"`
	ReadTimeout       time.Duration `envconfig:"LIGHTBUS_READ_TIMEOUT" default:"1m"`
	// WriteTimeout bounds a request from the end of its header to the end
	// of its answer: reading the body, the work and writing the answer. 0
	// derives it as LIGHTBUS_READ_TIMEOUT + LIGHTBUS_DB_TIMEOUT +
	// LIGHTBUS_RPC_MAX_TIMEOUT + 30 s, so that no RPC is cut short; a set
	// value must exceed the sum of those three.
	WriteTimeout time.Duration `envconfig:"LIGHTBUS_WRITE_TIMEOUT"`
	// IdleTimeout is how long a kept-alive connection may wait for its next
	// request.
	IdleTimeout time.Duration `envconfig:"LIGHTBUS_IDLE_TIMEOUT" default:"2m"`

	RPCTimeout    time.Duration `envconfig:"LIGHTBUS_RPC_TIMEOUT" default:"10s"`
	RPCMaxTimeout time.Duration `envconfig:"LIGHTBUS_RPC_MAX_TIMEOUT" default:"5m"`
	// RPCTargetTTL caches each API's live workers this long so that a call
	// costs no database round trip; 0 asks the database on every call. A
	// worker whose lease ended is never called; a new worker is seen at
	// once by calls that find none, else within the TTL.
	RPCTargetTTL time.Duration `envconfig:"LIGHTBUS_RPC_TARGET_TTL" default:"1s"`
	// DeliveryTargetTTL caches each listener group's secret, policy and
	// live endpoints this long so that a delivery reads only its event; 0
	// reads the group for every delivery. Changes through this replica
	// apply at once, through others within the TTL; an endpoint whose
	// worker's lease ended is never used.
	DeliveryTargetTTL time.Duration `envconfig:"LIGHTBUS_DELIVERY_TARGET_TTL" default:"1s"`

	// DeliveryBatchMax is the most events of one delivery batch: a
	// transaction that stores several events for one listener group (a
	// group commit, a batch fire, a replay page) queues one River job per
	// this many of them. 1 queues a job per delivery.
	DeliveryBatchMax int `envconfig:"LIGHTBUS_DELIVERY_BATCH_MAX" default:"100"`

	DeliveryTimeout     time.Duration `envconfig:"LIGHTBUS_DELIVERY_TIMEOUT" default:"30s"`
	DeliveryMaxAttempts int           `envconfig:"LIGHTBUS_DELIVERY_MAX_ATTEMPTS" default:"25"`
	DeliveryWorkers     int           `envconfig:"LIGHTBUS_DELIVERY_WORKERS" default:"100"`
	RetryBase           time.Duration `envconfig:"LIGHTBUS_RETRY_BASE" default:"1s"`
	RetryMax            time.Duration `envconfig:"LIGHTBUS_RETRY_MAX" default:"1h"`
	NoEndpointSnooze    time.Duration `envconfig:"LIGHTBUS_NO_ENDPOINT_SNOOZE" default:"1s"`
	FetchCooldown       time.Duration `envconfig:"LIGHTBUS_FETCH_COOLDOWN" default:"10ms"`
	FetchPollInterval   time.Duration `envconfig:"LIGHTBUS_FETCH_POLL_INTERVAL" default:"200ms"`

	// StrictSchemas rejects (404 not_found) fires and calls for APIs that
	// have no schema, and for events and RPCs their schema does not declare.
	StrictSchemas bool `envconfig:"LIGHTBUS_STRICT_SCHEMAS" default:"false"`
	// ValidateResults checks RPC results against their result schemas; a
	// result that does not match is answered 502 bad_gateway.
	ValidateResults bool `envconfig:"LIGHTBUS_VALIDATE_RESULTS" default:"true"`
	// SchemaCacheTTL is how long a replica trusts the current schema version
	// it looked up before checking the database again: another replica's new
	// schema is enforced here within it.
	SchemaCacheTTL time.Duration `envconfig:"LIGHTBUS_SCHEMA_CACHE_TTL" default:"5s"`
	// IdempotencyWindow is how long a fire's Idempotency-Key is remembered:
	// a repeat within it returns the first event.
	IdempotencyWindow time.Duration `envconfig:"LIGHTBUS_IDEMPOTENCY_WINDOW" default:"24h"`

	// EventRetention is how long events are kept (an event with unfinished
	// or dead deliveries is kept longer, see PruneUndelivered).
	EventRetention time.Duration `envconfig:"LIGHTBUS_EVENT_RETENTION" default:"168h"`
	// DeadRetention is how long dead deliveries (River's discarded jobs)
	// are kept after they die; at least EventRetention.
	DeadRetention time.Duration `envconfig:"LIGHTBUS_DEAD_RETENTION" default:"168h"`
	// PruneUndelivered lets pruning delete events whose deliveries are
	// unfinished or dead.
	PruneUndelivered bool `envconfig:"LIGHTBUS_PRUNE_UNDELIVERED" default:"false"`
	// PruneInterval is how often old events are pruned.
	PruneInterval time.Duration `envconfig:"LIGHTBUS_PRUNE_INTERVAL" default:"10m"`
	// PruneBatch is how many events one pruning transaction deletes.
	PruneBatch int `envconfig:"LIGHTBUS_PRUNE_BATCH" default:"1000"`
	// EventPartition is the span of time of one partition of the event
	// table: retention drops a partition once all of it is older than
	// EventRetention (docs/OPERATING.md).
	EventPartition time.Duration `envconfig:"LIGHTBUS_EVENT_PARTITION" default:"24h"`
	// FireBatch group-commits concurrent single fires: they share one
	// transaction, each answered after that commit. FireBatchWindow is how
	// long a batch waits for more fires while another batch commits (a lone
	// fire never waits); FireBatchMax bounds a batch's events and
	// FireBatchInFlight the batches committing at once.
	FireBatch         bool          `envconfig:"LIGHTBUS_FIRE_BATCH" default:"true"`
	FireBatchWindow   time.Duration `envconfig:"LIGHTBUS_FIRE_BATCH_WINDOW" default:"1ms"`
	FireBatchMax      int           `envconfig:"LIGHTBUS_FIRE_BATCH_MAX" default:"64"`
	FireBatchInFlight int           `envconfig:"LIGHTBUS_FIRE_BATCH_IN_FLIGHT" default:"4"`

	// DebugAddr, when set, serves net/http/pprof there (e.g.
	// 127.0.0.1:6060). Off by default; never expose it publicly.
	DebugAddr string `envconfig:"LIGHTBUS_DEBUG_ADDR"`
	// GroupMaxInFlight caps the deliveries one listener group has running
	// in this process, so that a slow group cannot take every delivery
	// worker; a delivery over the cap waits (snoozes) without using an
	// attempt.
	GroupMaxInFlight int `envconfig:"LIGHTBUS_GROUP_MAX_IN_FLIGHT" default:"10"`
	// RescueAfter is how long a delivery may stay running before River
	// treats it as stuck (its gateway died) and schedules a retry. 0 means
	// a minute more than the longest delivery timeout (the larger of
	// LIGHTBUS_DELIVERY_TIMEOUT and the 2 minute cap on a group's
	// timeout_ms). It must exceed the delivery timeout plus 5 s, or
	// deliveries still running would be retried; a group whose timeout_ms
	// is longer than it may see a slow delivery sent twice.
	RescueAfter time.Duration `envconfig:"LIGHTBUS_RESCUE_AFTER"`
	// DBConnectTimeout bounds opening one database connection, so that
	// requests fail with 503 instead of hanging while the database is
	// unreachable.
	DBConnectTimeout time.Duration `envconfig:"LIGHTBUS_DB_CONNECT_TIMEOUT" default:"2s"`
	// DBTimeout bounds each database call an HTTP request makes (and the
	// first look-up of an RPC's workers), so that a database that stops
	// answering without closing connections gives 503 unavailable instead
	// of hanging requests.
	DBTimeout time.Duration `envconfig:"LIGHTBUS_DB_TIMEOUT" default:"5s"`
	// DebugVars serves GET /debug/vars (expvar: memory statistics and the
	// goroutine count). Off by default.
	DebugVars bool `envconfig:"LIGHTBUS_DEBUG_VARS"`
	// MetricsCacheTTL is how long the gauges that need queries (listener
	// groups, live workers, River queues) are reused, however many
	// scrapers ask GET /metrics.
	MetricsCacheTTL time.Duration `envconfig:"LIGHTBUS_METRICS_CACHE_TTL" default:"5s"`
	// MetricsMaxSeries bounds the label sets of each metric family; past
	// it, new names are counted under "_other".
	MetricsMaxSeries int `envconfig:"LIGHTBUS_METRICS_MAX_SERIES" default:"1000"`
	// WorkerNetworks is where the gateway may send RPCs and deliveries: a
	// comma-separated list of CIDRs and host names (gateway.WorkerNetworks)
	// checked on a registration's base URL and on every connection's
	// resolved address. Empty: anywhere but link-local and cloud metadata
	// addresses.
	WorkerNetworks string `envconfig:"LIGHTBUS_WORKER_NETWORKS"`
	// WorkerSecretOverlap is how long a worker's previous RPC secret still
	// signs requests after a new registration of the worker (a new
	// process with the same id) replaced it; 0 stops it at once.
	WorkerSecretOverlap time.Duration `envconfig:"LIGHTBUS_WORKER_SECRET_OVERLAP" default:"5m"`

	// Auth is "required" (every request but /healthz, /readyz and
	// /openapi.yaml needs an API key with the scope it asks for) or "off"
	// (anyone who can reach the gateway may do anything). Empty means
	// required with DATABASE_URL, off with the development Postgres; see
	// authRequired.
	Auth string `envconfig:"LIGHTBUS_AUTH"`
	// BootstrapToken, when set, makes sure an admin key named "bootstrap"
	// with this token exists at start: the first key, to make the others
	// with.
	BootstrapToken string `envconfig:"LIGHTBUS_BOOTSTRAP_TOKEN"`
	// RateLimit is how many requests a second each API key may make to one
	// replica (0: no limit); RateBurst how many at once (0: a second's
	// worth). Requests without a key (authentication off) are not limited.
	RateLimit float64 `envconfig:"LIGHTBUS_RATE_LIMIT" default:"0"`
	RateBurst int     `envconfig:"LIGHTBUS_RATE_BURST" default:"0"`
	// RiverUI serves the River UI at /admin/river, to API keys with admin
	// (anyone when authentication is off).
	RiverUI bool `envconfig:"LIGHTBUS_RIVER_UI" default:"true"`

	// Traces: OpenTelemetry's standard variables (tracing.go). Spans are
	// exported over OTLP/HTTP when an OTLP endpoint is set or
	// OTEL_TRACES_EXPORTER is otlp, unless OTEL_TRACES_EXPORTER is none or
	// OTEL_SDK_DISABLED is true. The exporter reads its other variables
	// (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION, ...) itself, the
	// SDK the sampler's (OTEL_TRACES_SAMPLER, _ARG) and the resource's
	// (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES).
	OTelSDKDisabled    string `envconfig:"OTEL_SDK_DISABLED"`
	OTelTracesExporter string `envconfig:"OTEL_TRACES_EXPORTER"`
	OTelEndpoint       string `envconfig:"OTEL_EXPORTER_OTLP_ENDPOINT"`
	OTelTracesEndpoint string `envconfig:"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"`
	OTelProtocol       string `envconfig:"OTEL_EXPORTER_OTLP_PROTOCOL"`
	OTelTracesProtocol string `envconfig:"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"`

	// StreamMax bounds the event streams (GET /v1/events/stream) open on
	// one replica at once; more are answered 503 with Retry-After.
	StreamMax int `envconfig:"LIGHTBUS_STREAM_MAX" default:"100"`
	// StreamHeartbeat is how often a stream with nothing to send sends a
	// comment, so that clients and proxies know it is alive.
	StreamHeartbeat time.Duration `envconfig:"LIGHTBUS_STREAM_HEARTBEAT" default:"15s"`
	// StreamPollInterval is how often a replica with open streams reads the
	// head of the stream: the most a committed event waits before streams
	// send it (one query per interval per replica, however many streams).
	StreamPollInterval time.Duration `envconfig:"LIGHTBUS_STREAM_POLL_INTERVAL" default:"250ms"`
	// StreamMaxResume is how far back a stream may resume (Last-Event-ID);
	// an older position is answered 410 Gone, as is one older than
	// LIGHTBUS_EVENT_RETENTION.
	StreamMaxResume time.Duration `envconfig:"LIGHTBUS_STREAM_MAX_RESUME" default:"24h"`
}

// workerNetworks parses WorkerNetworks.
func (c *Config) workerNetworks() (*gateway.WorkerNetworks, error) {
	networks, err := gateway.ParseWorkerNetworks(c.WorkerNetworks)
	if err != nil {
		return nil, fmt.Errorf("LIGHTBUS_WORKER_NETWORKS: %w", err)
	}
	return networks, nil
}

// Authentication modes (LIGHTBUS_AUTH).
const (
	authRequired = "required"
	authOff      = "off"
)

// authRequired reports whether requests need API keys: LIGHTBUS_AUTH, or
// by default whenever DATABASE_URL is set (production), not with the
// development Postgres.
func (c *Config) authRequired() bool {
	if c.Auth == "" {
		return c.DatabaseURL != ""
	}
	return c.Auth == authRequired
}

// rescueAfter returns the effective RescueAfter: by default a minute more
// than the longest delivery timeout a group may have.
func (c *Config) rescueAfter() time.Duration {
	if c.RescueAfter > 0 {
		return c.RescueAfter
	}
	return max(c.DeliveryTimeout, gateway.MaxDeliveryTimeout) + time.Minute
}

// writeTimeoutMargin is what the derived write timeout allows beyond the
// longest request an RPC can make: writing the answer, a slow scheduler.
const writeTimeoutMargin = 30 * time.Second

// longestRPC is the longest an RPC's request can take from the end of its
// header to its result: its body arrives within the read timeout, its
// schema look-up within the database timeout, its worker answers within
// the RPC maximum.
func (c *Config) longestRPC() time.Duration {
	return c.ReadTimeout + c.DBTimeout + c.RPCMaxTimeout
}

// writeTimeout returns the effective WriteTimeout: by default the longest
// RPC plus a margin.
func (c *Config) writeTimeout() time.Duration {
	if c.WriteTimeout > 0 {
		return c.WriteTimeout
	}
	return c.longestRPC() + writeTimeoutMargin
}

// loadConfig reads the configuration from the environment and validates it.
func loadConfig() (Config, error) {
	var cfg Config
	if err := envconfig.Process("", &cfg); err != nil {
		return cfg, fmt.Errorf("invalid configuration: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, nil
}

// Validate checks values that parse but make no sense, naming the variable.
func (c *Config) Validate() error {
	positive := []struct {
		name string
		ok   bool
	}{
		{"LIGHTBUS_MAX_BODY_BYTES", c.MaxBodyBytes > 0},
		{"LIGHTBUS_MAX_BATCH_BYTES", c.MaxBatchBytes > 0},
		{"LIGHTBUS_SHUTDOWN_TIMEOUT", c.ShutdownTimeout > 0},
		{"LIGHTBUS_READ_HEADER_TIMEOUT", c.ReadHeaderTimeout > 0},
		{"LIGHTBUS_READ_TIMEOUT", c.ReadTimeout > 0},
		{"LIGHTBUS_IDLE_TIMEOUT", c.IdleTimeout > 0},
		{"LIGHTBUS_RPC_TIMEOUT", c.RPCTimeout > 0},
		{"LIGHTBUS_RPC_MAX_TIMEOUT", c.RPCMaxTimeout > 0},
		{"LIGHTBUS_DELIVERY_TIMEOUT", c.DeliveryTimeout > 0},
		{"LIGHTBUS_DELIVERY_MAX_ATTEMPTS", c.DeliveryMaxAttempts > 0},
		{"LIGHTBUS_DELIVERY_WORKERS", c.DeliveryWorkers > 0},
		{"LIGHTBUS_RETRY_BASE", c.RetryBase > 0},
		{"LIGHTBUS_RETRY_MAX", c.RetryMax > 0},
		{"LIGHTBUS_NO_ENDPOINT_SNOOZE", c.NoEndpointSnooze > 0},
		{"LIGHTBUS_FETCH_COOLDOWN", c.FetchCooldown > 0},
		{"LIGHTBUS_FETCH_POLL_INTERVAL", c.FetchPollInterval > 0},
		{"LIGHTBUS_SCHEMA_CACHE_TTL", c.SchemaCacheTTL > 0},
		{"LIGHTBUS_IDEMPOTENCY_WINDOW", c.IdempotencyWindow > 0},
		{"LIGHTBUS_EVENT_RETENTION", c.EventRetention > 0},
		{"LIGHTBUS_DEAD_RETENTION", c.DeadRetention > 0},
		{"LIGHTBUS_PRUNE_INTERVAL", c.PruneInterval > 0},
		{"LIGHTBUS_PRUNE_BATCH", c.PruneBatch > 0},
		{"LIGHTBUS_FIRE_BATCH_MAX", c.FireBatchMax > 0},
		{"LIGHTBUS_FIRE_BATCH_IN_FLIGHT", c.FireBatchInFlight > 0},
		{"LIGHTBUS_GROUP_MAX_IN_FLIGHT", c.GroupMaxInFlight > 0},
		{"LIGHTBUS_DB_CONNECT_TIMEOUT", c.DBConnectTimeout > 0},
		{"LIGHTBUS_DB_TIMEOUT", c.DBTimeout > 0},
		{"LIGHTBUS_METRICS_CACHE_TTL", c.MetricsCacheTTL > 0},
		{"LIGHTBUS_METRICS_MAX_SERIES", c.MetricsMaxSeries > 0},
		{"LIGHTBUS_STREAM_MAX", c.StreamMax > 0},
		{"LIGHTBUS_STREAM_HEARTBEAT", c.StreamHeartbeat > 0},
		{"LIGHTBUS_STREAM_POLL_INTERVAL", c.StreamPollInterval > 0},
		{"LIGHTBUS_STREAM_MAX_RESUME", c.StreamMaxResume > 0},
	}
	for _, p := range positive {
		if !p.ok {
			return fmt.Errorf("%s must be positive", p.name)
		}
	}
	switch {
	case c.DBMaxConns < 4:
		// Migrations hold one connection for their lock while using others,
		// and River keeps one for notifications.
		return fmt.Errorf("LIGHTBUS_DB_MAX_CONNS must be at least 4")
	case c.DatabaseReadURL != "" && c.DatabaseURL == "":
		return fmt.Errorf("DATABASE_READ_URL needs DATABASE_URL: a read database is a replica of the primary, and the development Postgres has none")
	case c.DatabaseReadURL != "" && c.DBReadMaxConns < 1:
		return fmt.Errorf("LIGHTBUS_DB_READ_MAX_CONNS must be positive")
	case c.DBPooler != poolerNone && c.DBPooler != poolerTransaction:
		return fmt.Errorf("LIGHTBUS_DB_POOLER must be none or transaction, not %q", c.DBPooler)
	case c.DBListenURL != "" && c.DBPooler != poolerTransaction:
		return fmt.Errorf("LIGHTBUS_DB_LISTEN_URL is for a transaction pooler: set LIGHTBUS_DB_POOLER=transaction too, or leave it empty")
	case c.RPCTargetTTL < 0:
		return fmt.Errorf("LIGHTBUS_RPC_TARGET_TTL must not be negative")
	case c.DeliveryTargetTTL < 0:
		return fmt.Errorf("LIGHTBUS_DELIVERY_TARGET_TTL must not be negative")
	case c.DeliveryBatchMax < 1 || c.DeliveryBatchMax > 1000:
		return fmt.Errorf("LIGHTBUS_DELIVERY_BATCH_MAX (%d) must be between 1 and 1000", c.DeliveryBatchMax)
	case c.FireBatchWindow < 0:
		return fmt.Errorf("LIGHTBUS_FIRE_BATCH_WINDOW must not be negative")
	case c.FireBatchInFlight >= int(c.DBMaxConns):
		return fmt.Errorf("LIGHTBUS_FIRE_BATCH_IN_FLIGHT (%d) must be below LIGHTBUS_DB_MAX_CONNS (%d)", c.FireBatchInFlight, c.DBMaxConns)
	case c.Addr == "":
		return fmt.Errorf("LIGHTBUS_ADDR must not be empty")
	case c.MaxHeaderBytes < 4096:
		return fmt.Errorf("LIGHTBUS_MAX_HEADER_BYTES must be at least 4096")
	case c.ReadHeaderTimeout > c.ReadTimeout:
		return fmt.Errorf("LIGHTBUS_READ_HEADER_TIMEOUT (%s) exceeds LIGHTBUS_READ_TIMEOUT (%s)", c.ReadHeaderTimeout, c.ReadTimeout)
	case c.WriteTimeout < 0:
		return fmt.Errorf("LIGHTBUS_WRITE_TIMEOUT must not be negative")
	case c.WriteTimeout > 0 && c.WriteTimeout <= c.longestRPC():
		// The write deadline starts when the header is read: it covers the
		// body, the call and the answer. A shorter one cuts RPCs short.
		return fmt.Errorf("LIGHTBUS_WRITE_TIMEOUT (%s) must exceed LIGHTBUS_READ_TIMEOUT + LIGHTBUS_DB_TIMEOUT + LIGHTBUS_RPC_MAX_TIMEOUT (%s)", c.WriteTimeout, c.longestRPC())
	case c.RPCTimeout > c.RPCMaxTimeout:
		return fmt.Errorf("LIGHTBUS_RPC_TIMEOUT (%s) exceeds LIGHTBUS_RPC_MAX_TIMEOUT (%s)", c.RPCTimeout, c.RPCMaxTimeout)
	case c.RetryBase > c.RetryMax:
		return fmt.Errorf("LIGHTBUS_RETRY_BASE (%s) exceeds LIGHTBUS_RETRY_MAX (%s)", c.RetryBase, c.RetryMax)
	case c.EventPartition < time.Hour:
		return fmt.Errorf("LIGHTBUS_EVENT_PARTITION (%s) must be at least 1h", c.EventPartition)
	case c.DeadRetention < c.EventRetention:
		return fmt.Errorf("LIGHTBUS_DEAD_RETENTION (%s) is shorter than LIGHTBUS_EVENT_RETENTION (%s): dead deliveries must outlive events", c.DeadRetention, c.EventRetention)
	case c.RescueAfter < 0:
		return fmt.Errorf("LIGHTBUS_RESCUE_AFTER must not be negative")
	case c.RescueAfter > 0 && c.RescueAfter <= c.DeliveryTimeout+5*time.Second:
		return fmt.Errorf("LIGHTBUS_RESCUE_AFTER (%s) must exceed LIGHTBUS_DELIVERY_TIMEOUT (%s) plus 5s", c.RescueAfter, c.DeliveryTimeout)
	case c.FetchCooldown > c.FetchPollInterval:
		return fmt.Errorf("LIGHTBUS_FETCH_COOLDOWN (%s) exceeds LIGHTBUS_FETCH_POLL_INTERVAL (%s)", c.FetchCooldown, c.FetchPollInterval)
	case c.WorkerSecretOverlap < 0:
		return fmt.Errorf("LIGHTBUS_WORKER_SECRET_OVERLAP must not be negative")
	case c.Auth != "" && c.Auth != authRequired && c.Auth != authOff:
		return fmt.Errorf("LIGHTBUS_AUTH %q: want required or off", c.Auth)
	case c.BootstrapToken != "" && gateway.ValidateToken(c.BootstrapToken) != nil:
		return fmt.Errorf("LIGHTBUS_BOOTSTRAP_TOKEN: %s", gateway.ErrorMessage(gateway.ValidateToken(c.BootstrapToken)))
	case !(c.RateLimit >= 0) || math.IsInf(c.RateLimit, 0):
		return fmt.Errorf("LIGHTBUS_RATE_LIMIT must be a number of requests a second, 0 for no limit")
	case c.RateBurst < 0:
		return fmt.Errorf("LIGHTBUS_RATE_BURST must not be negative")
	case c.StreamPollInterval > c.StreamHeartbeat:
		return fmt.Errorf("LIGHTBUS_STREAM_POLL_INTERVAL (%s) exceeds LIGHTBUS_STREAM_HEARTBEAT (%s)", c.StreamPollInterval, c.StreamHeartbeat)
	}
	if _, err := c.workerNetworks(); err != nil {
		return err
	}
	if err := c.validateTracing(); err != nil {
		return err
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("LIGHTBUS_LOG_LEVEL %q: want debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("LIGHTBUS_LOG_FORMAT %q: want text or json", c.LogFormat)
	}
	return nil
}
