package lightbus

import (
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/propagation"
)

// Environment variables read by [Create] for its defaults. Options override
// them.
const (
	EnvURL         = "LIGHTBUS_URL"          // the gateway's base URL
	EnvServiceName = "LIGHTBUS_SERVICE_NAME" // the service this process belongs to
	EnvWorkerAddr  = "LIGHTBUS_WORKER_ADDR"  // where Run listens
	EnvWorkerURL   = "LIGHTBUS_WORKER_URL"   // the base URL Run advertises to the gateway
	EnvWorkerID    = "LIGHTBUS_WORKER_ID"    // the worker's id
	EnvToken       = "LIGHTBUS_TOKEN"        // the API key sent to the gateway
)

// Defaults used by [Create].
const (
	DefaultURL             = "http://127.0.0.1:8080"
	DefaultWorkerAddr      = "127.0.0.1:0"
	DefaultLeaseTTL        = 15 * time.Second
	DefaultMaxConcurrency  = 64
	DefaultShutdownTimeout = 10 * time.Second
)

// Option configures a [Bus] at [Create].
type Option func(*config)

type config struct {
	url             string
	token           string
	httpClient      *http.Client
	service         string
	logger          *slog.Logger
	callTimeout     time.Duration
	workerAddr      string
	workerURL       string
	workerID        string
	leaseTTL        time.Duration
	maxConcurrency  int
	shutdownTimeout time.Duration
	noValidation    bool
	propagator      propagation.TextMapPropagator
	fireMW          []FireMiddleware
	callMW          []CallMiddleware
	rpcMW           []RPCMiddleware
	listenerMW      []ListenerMiddleware

	// Retry tuning; unexported so tests can shorten it.
	fireAttempts int
	retryBase    time.Duration
	retryMax     time.Duration
}

// WithURL sets the gateway's base URL (default $LIGHTBUS_URL, else
// http://127.0.0.1:8080). A path is kept as a prefix of every route.
func WithURL(url string) Option { return func(c *config) { c.url = url } }

// WithToken sets the API key's token (lb_...) sent to the gateway as
// "Authorization: Bearer <token>" on every request, the worker's
// registrations, heartbeats and deregistration included (default
// $LIGHTBUS_TOKEN). A gateway that requires keys answers requests without
// one with CodeUnauthorized, and those of a key without the scope they need
// with CodeForbidden.
func WithToken(token string) Option { return func(c *config) { c.token = token } }

// WithHTTPClient sets the client used for every request to the gateway
// (default: a client without timeout; calls are bounded by their context).
func WithHTTPClient(hc *http.Client) Option { return func(c *config) { c.httpClient = hc } }

// WithService names the service this process belongs to (default
// $LIGHTBUS_SERVICE_NAME). A worker needs one: it owns the APIs it provides
// and names its listener groups.
func WithService(name string) Option { return func(c *config) { c.service = name } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithCallTimeout sets the default deadline of RPCs made with [Bus.Call],
// sent to the gateway as Lightbus-Timeout. Without it, a call's deadline is
// its context's, or else the API's default at the gateway. See [Timeout] for a
// per-call override.
func WithCallTimeout(d time.Duration) Option { return func(c *config) { c.callTimeout = d } }

// WithWorkerAddr sets the address [Bus.Run] listens on (default
// $LIGHTBUS_WORKER_ADDR, else 127.0.0.1:0, a free port on loopback).
func WithWorkerAddr(addr string) Option { return func(c *config) { c.workerAddr = addr } }

// WithWorkerURL sets the base URL the worker advertises to the gateway
// (default $LIGHTBUS_WORKER_URL, else derived from the listening address; an
// unspecified host such as 0.0.0.0 is advertised as 127.0.0.1, so set this
// when the gateway runs on another machine).
func WithWorkerURL(url string) Option { return func(c *config) { c.workerURL = url } }

// WithWorkerID sets the worker's id, [A-Za-z0-9._-]{1,128} (default
// $LIGHTBUS_WORKER_ID, else service-hostname-pid-random).
func WithWorkerID(id string) Option { return func(c *config) { c.workerID = id } }

// WithLeaseTTL sets how long the gateway keeps the worker live without a
// heartbeat, from 500ms to 10m (default 15s). The worker heartbeats at the
// interval the gateway answers, a third of the TTL.
func WithLeaseTTL(d time.Duration) Option { return func(c *config) { c.leaseTTL = d } }

// WithMaxConcurrency sets how many RPC handlers and listeners run at once
// (default 64). Over the limit a delivery is answered 503 with Retry-After:
// 1, so the gateway retries it later, and an RPC waits for a free slot until
// its deadline.
func WithMaxConcurrency(n int) Option { return func(c *config) { c.maxConcurrency = n } }

// WithShutdownTimeout bounds how long [Bus.Run] waits for in-flight handlers
// when it stops (default 10s), and then again for deregistering.
func WithShutdownTimeout(d time.Duration) Option { return func(c *config) { c.shutdownTimeout = d } }

// WithValidation turns the client-side check of parameters on or off
// (default on). When on, the typed helpers ([Event.Fire], [RPC.Call]) check
// parameters against the schema generated from their Go type before
// sending, and report a mismatch as an *Error with CodeValidation and its
// Violations, as the gateway would, without a round trip. The gateway
// validates either way.
func WithValidation(on bool) Option { return func(c *config) { c.noValidation = !on } }

// WithPropagator sets how trace context goes from a context to the
// gateway on [Bus.Fire], [Bus.FireBatch] and [Bus.Call], and from the
// gateway's deliveries and RPCs into a handler's context. By default the
// Bus uses OpenTelemetry's global propagator when the program set one
// (otel.SetTextMapPropagator), else W3C Trace Context
// (propagation.TraceContext): traceparent and tracestate pass through a
// service whether or not it exports spans.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(c *config) { c.propagator = p }
}

// CallOption adjusts one [Bus.Call] or [Bus.Fire].
type CallOption func(*callConfig)

type callConfig struct {
	timeout        time.Duration
	idempotencyKey string
}

// Timeout sets the deadline of one RPC, sent as Lightbus-Timeout; it
// overrides [WithCallTimeout], and the context's deadline still applies when
// it is sooner. It has no effect on Fire.
func Timeout(d time.Duration) CallOption { return func(c *callConfig) { c.timeout = d } }

// IdempotencyKey sets the Idempotency-Key of one [Bus.Fire], for callers that
// keep their own key across process restarts. By default every Fire makes a
// random key and sends it on each of its retries. It has no effect on Call.
func IdempotencyKey(key string) CallOption { return func(c *callConfig) { c.idempotencyKey = key } }

// HandleOption adjusts the declaration of one RPC in [Bus.Handle].
type HandleOption func(*rpcDecl)

// RPCTimeout declares the RPC's default deadline (timeout_ms), used by the
// gateway when a caller does not send one. The gateway takes up to 24 hours
// (and caps every call at its LIGHTBUS_RPC_MAX_TIMEOUT); a longer one fails
// the registration.
func RPCTimeout(d time.Duration) HandleOption {
	return func(r *rpcDecl) { r.TimeoutMS = max(1, d.Milliseconds()) }
}
