// Package httpapi is the gateway's HTTP API: the chi router with its route
// table, the handlers (decode the request, call the service once, encode
// the answer), problem+json errors and middleware. The rules live in the
// service (package gateway); nothing here decides more than how a request
// reads and an answer is written.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/tracing"
)

// Config holds what the HTTP API needs.
type Config struct {
	Service *gateway.Service
	Logger  *slog.Logger
	// MaxBodyBytes bounds request bodies (fires, calls, registrations).
	MaxBodyBytes int64
	// MaxBatchBytes bounds the body of a batch fire.
	MaxBatchBytes int64
	// OpenAPI is served at GET /openapi.yaml.
	OpenAPI []byte
	// RateLimit is the requests a second each API key may make to this
	// replica, with bursts of RateBurst (0: a second's worth); 0 is no
	// limit. Requests without a key (authentication off) are not limited.
	RateLimit float64
	RateBurst int
	// Recorder is told what fires and calls came to; nil tells no one.
	Recorder Recorder
	// Metrics serves GET /metrics (to callers with read); nil answers 404.
	Metrics http.Handler
	// RiverUI serves the River UI under RiverUIPath (to callers with
	// admin); it gets the whole path, prefix included. nil answers 404.
	RiverUI http.Handler
	// TracerProvider makes the spans of fires and calls; nil makes none.
	// Either way, the W3C trace context (traceparent, tracestate) a fire or
	// a call carries is stored with its events or forwarded with the call.
	TracerProvider trace.TracerProvider
	// StreamHeartbeat is how often an event stream with nothing to send
	// sends a comment, so that clients and proxies see it alive. 0 means
	// 15 s.
	StreamHeartbeat time.Duration
	// StreamRetry is the reconnection delay an event stream asks clients
	// for (the SSE retry field). 0 means 1 s.
	StreamRetry time.Duration
}

// Handler is the gateway's HTTP API.
type Handler struct {
	cfg    Config
	svc    *gateway.Service
	logger *slog.Logger
	routes chi.Router
	limits *limiter // nil: no rate limit
	rec    Recorder
	ui     http.Handler // nil: no River UI
	// tracer makes fire and call spans; tracing is false when it is a
	// no-op, which lets requests without trace context skip it.
	tracer  trace.Tracer
	tracing bool
	// closing ends every open event stream when done (CloseStreams).
	closing      context.Context
	closeStreams context.CancelFunc
}

// New returns the HTTP API for cfg.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 10 << 20
	}
	if cfg.Recorder == nil {
		cfg.Recorder = nopRecorder{}
	}
	if cfg.StreamHeartbeat <= 0 {
		cfg.StreamHeartbeat = 15 * time.Second
	}
	if cfg.StreamRetry <= 0 {
		cfg.StreamRetry = time.Second
	}
	h := &Handler{cfg: cfg, svc: cfg.Service, logger: cfg.Logger, limits: newLimiter(cfg.RateLimit, cfg.RateBurst), rec: cfg.Recorder}
	h.ui = h.riverUIHandler(cfg.RiverUI)
	h.tracing = cfg.TracerProvider != nil
	if !h.tracing {
		cfg.TracerProvider = noop.NewTracerProvider()
	}
	h.tracer = cfg.TracerProvider.Tracer(tracing.TracerName)
	h.closing, h.closeStreams = context.WithCancel(context.Background())
	h.routes = h.newRoutes()
	return h
}

// CloseStreams ends every open event stream (and any opened later): a
// server shutting down calls it, since http.Server.Shutdown waits for
// requests to end and a stream does not end by itself.
func (h *Handler) CloseStreams() { h.closeStreams() }

// Routes returns the router, for serving and for enumerating routes.
func (h *Handler) Routes() chi.Router { return h.routes }

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.routes.ServeHTTP(w, r) }

func (h *Handler) newRoutes() chi.Router {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	if h.svc != nil && h.svc.AuthRequired() {
		r.Use(h.authenticate)
	}
	r.NotFound(h.handle(notFound))
	r.MethodNotAllowed(h.handle(methodNotAllowed))

	r.Post("/v1/events/{api}/{event}", h.handle(h.fireEvent))                       // fire an event
	r.Post("/v1/events", h.handle(h.fireBatch))                                     // fire a batch of events in one transaction
	r.Get("/v1/events", h.handle(h.listEvents))                                     // list stored events, newest first
	r.Get("/v1/events/stream", h.handle(h.streamEvents))                            // follow events as they commit (Server-Sent Events)
	r.Get("/v1/events/{id}", h.handle(h.getEvent))                                  // one event with its deliveries
	r.Post("/v1/rpc/{api}/{method}", h.handle(h.callRPC))                           // call a procedure on a live worker
	r.Get("/v1/workers", h.handle(h.listWorkers))                                   // list live workers
	r.Put("/v1/workers/{worker_id}", h.handle(h.putWorker))                         // register or heartbeat a worker
	r.Delete("/v1/workers/{worker_id}", h.handle(h.deleteWorker))                   // deregister a worker
	r.Delete("/v1/apis/{api}/owner", h.handle(h.releaseAPI))                        // release an API's owner (admin)
	r.Get("/v1/tasks", h.handle(h.listTasks))                                       // scheduled tasks: leader, last run, last error
	r.Post("/v1/tasks/{service}/{task}/runs", h.handle(h.reportTaskRun))            // a task's leader reports a run
	r.Get("/v1/listeners", h.handle(h.listListeners))                               // listener groups with delivery counts and lag
	r.Delete("/v1/listeners/{service}/{listener}", h.handle(h.deleteListener))      // remove a listener group
	r.Get("/v1/listeners/{service}/{listener}/dead", h.handle(h.listDead))          // a group's dead deliveries
	r.Post("/v1/listeners/{service}/{listener}/redrive", h.handle(h.redriveDead))   // redrive a group's matching dead deliveries
	r.Post("/v1/listeners/{service}/{listener}/replay", h.handle(h.replayListener)) // re-deliver retained events from a point
	r.Get("/v1/deliveries/{delivery_id}", h.handle(h.getDelivery))                  // one delivery with its attempts
	r.Post("/v1/deliveries/{delivery_id}/redrive", h.handle(h.redriveDelivery))     // give a dead delivery fresh attempts
	r.Get("/v1/schema", h.handle(h.listSchemas))                                    // every API's current schema
	r.Get("/v1/schema/{api}", h.handle(h.getSchema))                                // an API's current (or ?version=N) schema
	r.Put("/v1/schema/{api}", h.handle(h.putSchema))                                // publish an API's schema without a worker
	r.Get("/v1/schema/{api}/versions", h.handle(h.schemaVersions))                  // an API's schema versions, newest first
	r.Get("/v1/keys", h.handle(h.listKeys))                                         // list API keys, never their tokens
	r.Post("/v1/keys", h.handle(h.createKey))                                       // create an API key; its token is shown once
	r.Delete("/v1/keys/{name}", h.handle(h.revokeKey))                              // revoke an API key
	r.Get("/v1/version", h.handle(h.version))                                       // the gateway's version (any key)
	r.Get("/healthz", h.handle(healthz))                                            // the process is up
	r.Get("/readyz", h.handle(h.readyz))                                            // the database answers and the schema is current; the read database's state
	r.Get("/openapi.yaml", h.handle(h.openAPI))                                     // this API's OpenAPI document
	r.Get("/metrics", h.handle(h.metrics))                                          // Prometheus metrics (read)
	r.Handle(RiverUIPath, h.handle(h.riverUI))                                      // the River UI (admin): redirects to its page
	r.Handle(RiverUIPath+"/*", h.handle(h.riverUI))                                 // the River UI's pages and JSON API (admin; not in openapi.yaml)
	return r
}

// handlerFunc is a handler that writes its answer, or returns the error to
// answer with instead.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle adapts fn to http.HandlerFunc: an error it returns is written as
// problem+json (writeError), the one place errors become answers.
func (h *Handler) handle(fn handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			writeError(w, r, h.logger, err)
		}
	}
}

func notFound(w http.ResponseWriter, r *http.Request) error {
	return gateway.Errorf(gateway.ENotFound, "no route for %s %s", r.Method, r.URL.Path)
}

func methodNotAllowed(w http.ResponseWriter, r *http.Request) error {
	return gateway.Errorf(gateway.EInvalid, "method %s is not allowed on %s", r.Method, r.URL.Path)
}

func healthz(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	return nil
}

func (h *Handler) readyz(w http.ResponseWriter, r *http.Request) error {
	ready, err := h.svc.Readiness(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ready)
	return nil
}

func (h *Handler) version(w http.ResponseWriter, r *http.Request) error {
	v, err := h.svc.Version(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (h *Handler) openAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(h.cfg.OpenAPI)
	return nil
}
