package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"
)

// ServerConfig holds what the HTTP server needs.
type ServerConfig struct {
	Events    EventStore
	Workers   WorkerStore
	Listeners ListenerStore
	Replays   ReplayStore
	Router    *Router
	Logger    *slog.Logger
	// MaxBodyBytes bounds request bodies (fires, calls, registrations).
	MaxBodyBytes int64
	// MaxBatchBytes bounds the body of a batch fire.
	MaxBatchBytes int64
	// MaxAttempts is the delivery attempt limit given to new listener groups.
	MaxAttempts int
	// IdempotencyWindow is how long a fire's Idempotency-Key is remembered.
	IdempotencyWindow time.Duration
	// OpenAPI is served at GET /openapi.yaml.
	OpenAPI []byte
	// Ready reports whether the gateway can serve (database up, schema current).
	Ready func(ctx context.Context) error
	// Schemas stores API schema versions; SchemaCache (over the same store)
	// validates parameters and results with them. With no cache, nothing
	// is validated.
	Schemas     SchemaStore
	SchemaCache *SchemaCache
	// StrictSchemas rejects fires and calls for APIs without a schema, and
	// for events and RPCs their schema does not declare (404 not_found).
	StrictSchemas bool
	// ValidateResults checks RPC results against their result schemas.
	ValidateResults bool
	// StoreTimeout bounds each store call a request makes, so that a
	// database that stops answering costs a request at most this long (then
	// 503 unavailable). 0 means 5 s.
	StoreTimeout time.Duration
}

// Server is the gateway's HTTP API.
type Server struct {
	cfg    ServerConfig
	logger *slog.Logger
	routes chi.Router
}

// NewServer returns the HTTP server for cfg.
func NewServer(cfg ServerConfig) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 10 << 20
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 25
	}
	if cfg.IdempotencyWindow <= 0 {
		cfg.IdempotencyWindow = DefaultIdempotencyWindow
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = 5 * time.Second
	}
	s := &Server{cfg: cfg, logger: cfg.Logger}
	s.routes = s.newRoutes()
	return s
}

// Routes returns the router, for serving and for enumerating routes.
func (s *Server) Routes() chi.Router { return s.routes }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.routes.ServeHTTP(w, r) }

func (s *Server) newRoutes() chi.Router {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, s.logger, Errorf(ENotFound, "no route for %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, r, s.logger, Errorf(EInvalid, "method %s is not allowed on %s", r.Method, r.URL.Path))
	})

	r.Post("/v1/events/{api}/{event}", s.fireEvent)                                   // fire an event
	r.Post("/v1/events", s.fireBatch)                                                 // fire a batch of events in one transaction
	r.Get("/v1/events", s.listEvents)                                                 // list stored events, newest first
	r.Get("/v1/events/{id}", s.getEvent)                                              // one event with its deliveries
	r.With(s.bounded).Get("/v1/listeners", s.listListeners)                           // listener groups with delivery counts and lag
	r.With(s.bounded).Delete("/v1/listeners/{service}/{listener}", s.deleteListener)  // remove a listener group
	r.With(s.bounded).Get("/v1/listeners/{service}/{listener}/dead", s.listDead)      // a group's dead deliveries
	r.Post("/v1/listeners/{service}/{listener}/redrive", s.redriveDead)               // redrive a group's matching dead deliveries
	r.Post("/v1/listeners/{service}/{listener}/replay", s.replayListener)             // re-deliver retained events from a point
	r.With(s.bounded).Get("/v1/deliveries/{delivery_id}", s.getDelivery)              // one delivery with its attempts
	r.With(s.bounded).Post("/v1/deliveries/{delivery_id}/redrive", s.redriveDelivery) // give a dead delivery fresh attempts
	r.Post("/v1/rpc/{api}/{method}", s.callRPC)                                       // call a procedure on a live worker
	r.Get("/v1/workers", s.listWorkers)                                               // list live workers
	r.Put("/v1/workers/{worker_id}", s.putWorker)                                     // register or heartbeat a worker
	r.Delete("/v1/workers/{worker_id}", s.deleteWorker)                               // deregister a worker
	r.Get("/healthz", s.healthz)                                                      // the process is up
	r.Get("/readyz", s.readyz)                                                        // the database answers and the schema is current
	r.Get("/openapi.yaml", s.openAPI)                                                 // this API's OpenAPI document

	r.With(s.bounded).Get("/v1/schema", s.listSchemas)                   // every API's current schema
	r.With(s.bounded).Get("/v1/schema/{api}", s.getSchema)               // an API's current (or ?version=N) schema
	r.With(s.bounded).Put("/v1/schema/{api}", s.putSchema)               // publish an API's schema without a worker
	r.With(s.bounded).Get("/v1/schema/{api}/versions", s.schemaVersions) // an API's schema versions, newest first
	return r
}

// store runs one store call for r, bounded by StoreTimeout. A call cut
// short by that bound is a 503 unavailable: the database did not answer.
func (s *Server) store(r *http.Request, call func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StoreTimeout)
	defer cancel()
	err := call(ctx)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && r.Context().Err() == nil {
		var e *Error
		if !errors.As(err, &e) || e.Code != EUnavailable {
			err = WrapError(EUnavailable, err, fmt.Sprintf("the database did not answer within %s", s.cfg.StoreTimeout))
		}
	}
	return err
}

// bounded limits a request made of a few short database calls to
// StoreTimeout, so that a database that stops answering costs it at most
// that long (then 503 unavailable). Requests whose own work may be long
// (RPCs, bulk redrives, replays) are not bounded this way.
func (s *Server) bounded(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), s.cfg.StoreTimeout)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// readBody reads a request body of at most MaxBodyBytes.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, Errorf(ETooLarge, "the body is larger than %d bytes", s.cfg.MaxBodyBytes)
		}
		return nil, Errorf(EInvalid, "could not read the body")
	}
	return body, nil
}

func (s *Server) fireEvent(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(w, r)
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	ev, err := NewEvent(chi.URLParam(r, "api"), chi.URLParam(r, "event"), body)
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	if keys := r.Header.Values("Idempotency-Key"); len(keys) > 0 {
		if len(keys) > 1 {
			writeError(w, r, s.logger, Errorf(EInvalid, "more than one Idempotency-Key header"))
			return
		}
		if err := ValidateIdempotencyKey(keys[0]); err != nil {
			writeError(w, r, s.logger, err)
			return
		}
		ev.IdempotencyKey = keys[0]
	}
	if err := s.validateEvent(r.Context(), ev); err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	var res *FireResult
	err = s.store(r, func(ctx context.Context) (err error) {
		res, err = s.cfg.Events.FireEvent(ctx, ev, s.cfg.IdempotencyWindow)
		return err
	})
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	if res.Repeat {
		w.Header().Set("Idempotency-Replayed", "true")
		writeJSON(w, http.StatusOK, res)
		return
	}
	writeJSON(w, http.StatusAccepted, res)
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	q, err := parseEventQuery(r)
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	var events []Event
	err = s.store(r, func(ctx context.Context) (err error) {
		events, err = s.cfg.Events.ListEvents(ctx, q)
		return err
	})
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	next := ""
	if len(events) == q.Limit {
		next = events[len(events)-1].ID
	}
	if events == nil {
		events = []Event{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": events, "next_cursor": next})
}

func parseEventQuery(r *http.Request) (EventQuery, error) {
	v := r.URL.Query()
	q := EventQuery{API: v.Get("api"), Event: v.Get("event"), Before: v.Get("before"), Limit: 100}
	if q.API != "" {
		if err := ValidateAPIName(q.API); err != nil {
			return q, err
		}
	}
	if q.Event != "" {
		if err := ValidateIdent("event", q.Event); err != nil {
			return q, err
		}
	}
	if q.Before != "" {
		if _, err := uuid.Parse(q.Before); err != nil {
			return q, Errorf(EInvalid, "before %q is not an event id", q.Before)
		}
	}
	for name, dst := range map[string]*time.Time{"since": &q.Since, "until": &q.Until} {
		if s := v.Get(name); s != "" {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return q, Errorf(EInvalid, "%s %q is not an RFC 3339 time", name, s)
			}
			*dst = t
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return q, Errorf(EInvalid, "limit %q: want 1 to 1000", s)
		}
		q.Limit = n
	}
	return q, nil
}

func (s *Server) getEvent(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if _, err := uuid.Parse(id); err != nil {
		writeError(w, r, s.logger, Errorf(EInvalid, "%q is not an event id", id))
		return
	}
	var ev *EventDetail
	err := s.store(r, func(ctx context.Context) (err error) {
		ev, err = s.cfg.Events.GetEvent(ctx, id)
		return err
	})
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	writeJSON(w, http.StatusOK, ev)
}

func (s *Server) callRPC(w http.ResponseWriter, r *http.Request) {
	call := &Call{API: chi.URLParam(r, "api"), Method: chi.URLParam(r, "method")}
	if err := ValidateAPIName(call.API); err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	if err := ValidateIdent("rpc", call.Method); err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	timeout, err := parseTimeout(r.Header.Get("Lightbus-Timeout"))
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	call.Timeout = timeout
	body, err := s.readBody(w, r)
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	if err := ValidateParams(body); err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	call.Params = body
	api, err := s.validateCall(r.Context(), call)
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	result, err := s.cfg.Router.Call(r.Context(), call)
	if err == nil {
		err = s.validateResult(api, call, result)
	}
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	writeResult(w, result)
}

// writeResult answers an RPC with {"result": result}. The result is valid
// JSON already (decodeWorkerAnswer decoded it), so it is written as it is,
// with its length, rather than scanned again by an encoder.
func writeResult(w http.ResponseWriter, result json.RawMessage) {
	const head, tail = `{"result":`, "}\n"
	h := w.Header()
	h["Content-Type"] = []string{"application/json"}
	h["Content-Length"] = []string{strconv.Itoa(len(head) + len(result) + len(tail))}
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, head)
	_, _ = w.Write(result)
	_, _ = io.WriteString(w, tail)
}

// parseTimeout reads a Lightbus-Timeout header: a Go duration ("2s",
// "500ms") or a number of seconds.
func parseTimeout(h string) (time.Duration, error) {
	if h == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(h)
	if err != nil {
		secs, ferr := strconv.ParseFloat(h, 64)
		if ferr != nil {
			return 0, Errorf(EInvalid, "Lightbus-Timeout %q: want a duration such as 2s or 500ms", h)
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d <= 0 {
		return 0, Errorf(EInvalid, "Lightbus-Timeout %q must be positive", h)
	}
	return d, nil
}

func (s *Server) listWorkers(w http.ResponseWriter, r *http.Request) {
	var workers []Worker
	err := s.store(r, func(ctx context.Context) (err error) {
		workers, err = s.cfg.Workers.ListWorkers(ctx)
		return err
	})
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	if workers == nil {
		workers = []Worker{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"workers": workers})
}

func (s *Server) putWorker(w http.ResponseWriter, r *http.Request) {
	body, err := s.readBody(w, r)
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	var reg Registration
	if err := json.Unmarshal(body, &reg); err != nil {
		writeError(w, r, s.logger, Errorf(EInvalid, "the registration is not valid JSON: %s", strings.TrimPrefix(err.Error(), "json: ")))
		return
	}
	reg.WorkerID = chi.URLParam(r, "worker_id")
	if err := reg.Validate(); err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	if err := s.compileDeclared(&reg); err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	var res *RegistrationResult
	err = s.store(r, func(ctx context.Context) (err error) {
		res, err = s.cfg.Workers.RegisterWorker(ctx, &reg, NewSecret, s.cfg.MaxAttempts)
		return err
	})
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	res.HeartbeatIntervalMS = reg.LeaseTTL().Milliseconds() / 3
	s.afterRegistration(r.Context(), &reg, res)
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) deleteWorker(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "worker_id")
	if err := ValidateWorkerID(id); err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	if err := s.store(r, func(ctx context.Context) error { return s.cfg.Workers.DeregisterWorker(ctx, id) }); err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != EUnavailable {
				err = WrapError(EUnavailable, err, "not ready")
			}
			writeError(w, r, s.logger, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(s.cfg.OpenAPI)
}
