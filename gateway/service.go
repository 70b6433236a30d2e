package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// ServiceConfig holds what the service needs: its stores, the RPC
// forwarder, the schema cache and the rules' settings.
type ServiceConfig struct {
	Events    EventStore
	Workers   WorkerStore
	Listeners ListenerStore
	Replays   ReplayStore
	// Schemas stores API schema versions; SchemaCache (over the same store)
	// validates parameters and results with them. With no cache, nothing
	// is validated.
	Schemas     SchemaStore
	SchemaCache *SchemaCache
	// Forwarder sends RPCs to live workers.
	Forwarder Forwarder
	// Tasks keeps scheduled tasks' runs; nil keeps none (run reports are
	// EUnavailable, the list is empty).
	Tasks TaskStore
	// APIs knows which APIs the gateway has heard of: a call to another
	// one is answered EUnknownAPI at once instead of waiting for a worker.
	// Nil knows every API.
	APIs APIDirectory
	// WorkerNetworks is where workers' base URLs may point; a registration
	// with another is refused (EForbidden). Nil is the default policy.
	WorkerNetworks *WorkerNetworks
	// Keys stores API keys; nil knows none.
	Keys KeyStore
	// RequireAuth makes every operation need a principal in its context
	// (WithPrincipal, from Authenticate) whose scopes allow it; without it
	// every caller may do everything (LIGHTBUS_AUTH=off).
	RequireAuth bool
	// Ready reports whether the gateway can serve (database up, schema
	// current); nil is always ready.
	Ready func(ctx context.Context) error
	// ReadReady reports whether the read database, where inspection reads
	// go (a replica), answers and its schema is current; nil when there is
	// none. Its failure does not make the gateway unready: fires,
	// deliveries and RPCs do not use it.
	ReadReady func(ctx context.Context) error
	Logger    *slog.Logger

	// MaxAttempts is the delivery attempt limit given to new listener groups.
	MaxAttempts int
	// IdempotencyWindow is how long a fire's Idempotency-Key is remembered.
	IdempotencyWindow time.Duration
	// StrictSchemas rejects fires and calls for APIs without a schema, and
	// for events and RPCs their schema does not declare (ENotFound).
	StrictSchemas bool
	// ValidateResults checks RPC results against their result schemas.
	ValidateResults bool
	// StoreTimeout bounds each store call, so that a database that stops
	// answering costs a request at most this long (then EUnavailable).
	// 0 means 5 s.
	StoreTimeout time.Duration
	// Streams serves live event streams (OpenStream).
	Streams StreamConfig
}

// Service holds the gateway's rules: fire, call, register, inspect,
// redrive, replay, schemas and API keys, and who may do each: every method
// checks the caller's principal (WithPrincipal) against the scope it needs
// (auth.go), unless authentication is off. Each method takes and returns
// domain values; its errors are *Error values (or wrap one), never
// transport details.
type Service struct {
	cfg     ServiceConfig
	logger  *slog.Logger
	keys    *keyCache
	streams *streamHub
	known   knownAPIs
	// readDown is whether the last readiness check found the read
	// database unavailable, so that only changes are logged.
	readDown atomic.Bool
}

// NewService returns the service for cfg, filling in defaults.
func NewService(cfg ServiceConfig) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
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
	return &Service{cfg: cfg, logger: cfg.Logger, keys: newKeyCache(), streams: newStreamHub(cfg.Streams, cfg.Logger)}
}

// bounded runs one store call bounded by StoreTimeout. A call cut short by
// that bound is an EUnavailable error: the database did not answer. It is
// the one way the service bounds database time; calls whose own work may be
// long (bulk redrives, replays, RPCs) do not go through it.
func (s *Service) bounded(ctx context.Context, call func(ctx context.Context) error) error {
	bctx, cancel := context.WithTimeout(ctx, s.cfg.StoreTimeout)
	defer cancel()
	err := call(bctx)
	if err != nil && errors.Is(bctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		var e *Error
		if !errors.As(err, &e) || e.Code != EUnavailable {
			err = WrapError(EUnavailable, err, fmt.Sprintf("the database did not answer within %s", s.cfg.StoreTimeout))
		}
	}
	return err
}

// readyTimeout bounds a readiness check.
const readyTimeout = 2 * time.Second

// Ready reports whether the gateway can serve: nil, or an EUnavailable
// error saying why not.
func (s *Service) Ready(ctx context.Context) error {
	if s.cfg.Ready == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	err := s.cfg.Ready(ctx)
	if err == nil {
		return nil
	}
	var e *Error
	if !errors.As(err, &e) || e.Code != EUnavailable {
		err = WrapError(EUnavailable, err, "not ready")
	}
	return err
}

// Readiness is what a ready gateway reports (GET /readyz).
type Readiness struct {
	// Status is "ready"; a gateway that is not ready answers an error.
	Status string `json:"status"`
	// ReadDatabase is the state of the read database, where inspection
	// reads go, when there is one: "ready", or "unavailable" while it does
	// not answer or its schema is behind (inspection then answers
	// EUnavailable; everything else serves).
	ReadDatabase string `json:"read_database,omitempty"`
}

// Read database states (Readiness.ReadDatabase).
const (
	ReadDatabaseReady       = "ready"
	ReadDatabaseUnavailable = "unavailable"
)

// Readiness reports whether the gateway can serve, as Ready does, and the
// state of its read database when it has one, checked at the same time
// (each within its own bound). A read database that is unavailable does
// not make the gateway unready: the change is logged.
func (s *Service) Readiness(ctx context.Context) (*Readiness, error) {
	var readErr chan error
	if s.cfg.ReadReady != nil {
		readErr = make(chan error, 1)
		go func() {
			rctx, cancel := context.WithTimeout(ctx, readyTimeout)
			defer cancel()
			readErr <- s.cfg.ReadReady(rctx)
		}()
	}
	if err := s.Ready(ctx); err != nil {
		return nil, err
	}
	r := &Readiness{Status: "ready"}
	if readErr == nil {
		return r, nil
	}
	err := <-readErr
	r.ReadDatabase = ReadDatabaseReady
	if err != nil {
		r.ReadDatabase = ReadDatabaseUnavailable
	}
	if down := err != nil; s.readDown.Swap(down) != down {
		if down {
			s.logger.WarnContext(ctx, "the read database is unavailable: inspection reads fail until it is back", slog.String("error", err.Error()))
		} else {
			s.logger.InfoContext(ctx, "the read database is available again")
		}
	}
	return r, nil
}

// page runs one listing of at most limit items, bounded like every store
// call, and returns the items (never nil) with the cursor of the next page:
// cursor of the last item when the page is full, "" otherwise.
func page[T any](ctx context.Context, s *Service, limit int, list func(ctx context.Context) ([]T, error), cursor func(T) string) ([]T, string, error) {
	var items []T
	err := s.bounded(ctx, func(ctx context.Context) (err error) {
		items, err = list(ctx)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(items) == limit {
		next = cursor(items[len(items)-1])
	}
	if items == nil {
		items = []T{}
	}
	return items, next, nil
}
