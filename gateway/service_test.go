package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// These tests run the service's rules without HTTP and without a database:
// the stores are small fakes of the interfaces the service consumes.

// hangingStores is a database that stops answering: every call waits for
// its context.
type hangingStores struct {
	EventStore
	WorkerStore
	ListenerStore
	SchemaStore
}

func (hangingStores) FireEvent(ctx context.Context, ev *Event, window time.Duration) (*FireResult, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (hangingStores) GetEvent(ctx context.Context, id string) (*EventDetail, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (hangingStores) ListWorkers(ctx context.Context) ([]Worker, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (hangingStores) ListListeners(ctx context.Context) ([]ListenerStatus, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (hangingStores) ListDead(ctx context.Context, q DeadQuery) ([]DeliveryRecord, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (hangingStores) GetDelivery(ctx context.Context, id int64) (*DeliveryRecord, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (hangingStores) DeleteListener(ctx context.Context, service, listener string) error {
	<-ctx.Done()
	return ctx.Err()
}

func (hangingStores) CurrentSchemaRef(ctx context.Context, api string) (SchemaRef, error) {
	<-ctx.Done()
	return SchemaRef{}, ctx.Err()
}

func (hangingStores) ListSchemas(ctx context.Context) ([]SchemaVersion, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// Every store call of a request is bounded by StoreTimeout, and a call cut
// short by it is unavailable (503), not an internal error.
func TestServiceBoundsStoreCalls(t *testing.T) {
	t.Parallel()

	st := hangingStores{}
	s := NewService(ServiceConfig{Events: st, Workers: st, Listeners: st, Schemas: st, StoreTimeout: 50 * time.Millisecond})
	validating := NewService(ServiceConfig{Events: st, SchemaCache: NewSchemaCache(SchemaCacheConfig{Store: st}), StoreTimeout: 50 * time.Millisecond})
	ctx := context.Background()
	ev, err := NewEvent("auth", "user_registered", json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"Fire":       func() error { _, err := s.Fire(ctx, ev); return err },
		"FireSchema": func() error { _, err := validating.Fire(ctx, ev); return err },
		"CallSchema": func() error {
			_, err := validating.Call(ctx, &Call{API: "auth", Method: "m", Params: json.RawMessage(`{}`)})
			return err
		},
		"Event":     func() error { _, err := s.Event(ctx, ev.ID); return err },
		"Workers":   func() error { _, err := s.Workers(ctx); return err },
		"Listeners": func() error { _, err := s.Listeners(ctx); return err },
		"Dead": func() error {
			_, _, err := s.Dead(ctx, DeadQuery{Service: "auth", Listener: "l", Limit: 10})
			return err
		},
		"Delivery":       func() error { _, err := s.Delivery(ctx, 7); return err },
		"DeleteListener": func() error { return s.DeleteListener(ctx, "auth", "l") },
		"Schemas":        func() error { _, err := s.Schemas(ctx); return err },
	} {
		done := make(chan error, 1)
		go func() { done <- call() }()
		select {
		case err := <-done:
			if ErrorCode(err) != EUnavailable {
				t.Errorf("%s with a hanging database: %v, want unavailable", name, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s hangs with a hanging database", name)
		}
	}
}

// schemaStore holds one API's schema document, as current version 1.
type schemaStore struct {
	SchemaStore
	sv *SchemaVersion
}

func newSchemaStore(t *testing.T, doc *SchemaDocument) *schemaStore {
	t.Helper()
	canon, hash, err := doc.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return &schemaStore{sv: &SchemaVersion{API: doc.API, Version: 1, Hash: hash, Schema: canon}}
}

func (s *schemaStore) CurrentSchemaRef(ctx context.Context, api string) (SchemaRef, error) {
	if api != s.sv.API {
		return SchemaRef{}, ErrNotFound
	}
	return SchemaRef{Version: s.sv.Version, Hash: s.sv.Hash}, nil
}

func (s *schemaStore) SchemaVersion(ctx context.Context, api string, version int) (*SchemaVersion, error) {
	if api != s.sv.API {
		return nil, ErrNotFound
	}
	return s.sv, nil
}

// eventStore counts the fires that reach it.
type eventStore struct {
	EventStore
	fired atomic.Int32
}

func (s *eventStore) FireEvent(ctx context.Context, ev *Event, window time.Duration) (*FireResult, error) {
	s.fired.Add(1)
	return &FireResult{ID: ev.ID, API: ev.API, Event: ev.Name, CreatedAt: ev.CreatedAt}, nil
}

func (s *eventStore) FireEvents(ctx context.Context, evs []*Event, window time.Duration) ([]*FireResult, error) {
	out := make([]*FireResult, len(evs))
	for i, ev := range evs {
		out[i], _ = s.FireEvent(ctx, ev, window)
	}
	return out, nil
}

var authSchema = &SchemaDocument{API: "auth",
	Events: map[string]EventSchema{"user_registered": {ParamsSchema: json.RawMessage(
		`{"type":"object","required":["email"],"properties":{"email":{"type":"string"}}}`)}},
	RPCs: map[string]RPCSchema{"check_password": {
		ParamsSchema: json.RawMessage(`{"type":"object","required":["username"]}`),
		ResultSchema: json.RawMessage(`{"type":"boolean"}`)}}}

func TestServiceFireValidatesSchemas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	setup := func(strict bool) (*Service, *eventStore) {
		events := &eventStore{}
		cache := NewSchemaCache(SchemaCacheConfig{Store: newSchemaStore(t, authSchema)})
		return NewService(ServiceConfig{Events: events, SchemaCache: cache, StrictSchemas: strict}), events
	}
	fire := func(s *Service, api, name, params string) error {
		ev, err := NewEvent(api, name, json.RawMessage(params))
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Fire(ctx, ev)
		return err
	}

	s, events := setup(false)
	err := fire(s, "auth", "user_registered", `{"email": 7}`)
	var e *Error
	if ErrorCode(err) != EValidation || !asError(err, &e) || !slices.Equal(e.Violations, []Violation{{Pointer: "/email", Message: "got number, want string"}}) {
		t.Fatalf("params against the schema: %v, want validation at /email", err)
	}
	if err := fire(s, "auth", "user_registered", `{"email": "a@b"}`); err != nil {
		t.Fatalf("valid params: %v", err)
	}
	if err := fire(s, "billing", "paid", `{}`); err != nil {
		t.Fatalf("an API without schema, not strict: %v", err)
	}
	if err := fire(s, "auth", "undeclared", `{}`); err != nil {
		t.Fatalf("an undeclared event, not strict: %v", err)
	}
	if n := events.fired.Load(); n != 3 {
		t.Fatalf("%d fires reached the store, want 3 (the invalid one must not)", n)
	}

	strict, events := setup(true)
	for _, ev := range [][2]string{{"billing", "paid"}, {"auth", "undeclared"}} {
		if err := fire(strict, ev[0], ev[1], `{}`); ErrorCode(err) != ENotFound {
			t.Errorf("strict: %s.%s: %v, want not_found", ev[0], ev[1], err)
		}
	}
	if n := events.fired.Load(); n != 0 {
		t.Fatalf("strict: %d refused fires reached the store", n)
	}

	// A batch reports every bad event with a pointer into the batch, and
	// stores none.
	_, err = s.FireBatch(ctx, []BatchItem{
		{API: "auth", Event: "user_registered", Params: json.RawMessage(`{"email": "a@b"}`)},
		{API: "auth", Event: "user_registered", Params: json.RawMessage(`{}`)},
	})
	if !asError(err, &e) || e.Code != EValidation || !slices.Equal(e.Violations, []Violation{{Pointer: "/1/params/email", Message: "missing required property"}}) {
		t.Fatalf("batch with a bad event: %v", err)
	}
	ev, _ := NewEvent("auth", "user_registered", json.RawMessage(`{}`))
	ev.IdempotencyKey = "bad\x01key"
	if _, err := s.Fire(ctx, ev); ErrorCode(err) != EInvalid {
		t.Fatalf("a fire with a non-printable idempotency key: %v, want invalid", err)
	}
}

// forwarder answers every call with result and counts the calls.
type forwarder struct {
	result string
	calls  atomic.Int32
}

func (f *forwarder) Forward(ctx context.Context, call *Call) (json.RawMessage, error) {
	f.calls.Add(1)
	return json.RawMessage(f.result), nil
}

func TestServiceCallValidates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cache := NewSchemaCache(SchemaCacheConfig{Store: newSchemaStore(t, authSchema)})
	fw := &forwarder{result: `"yes"`}
	s := NewService(ServiceConfig{SchemaCache: cache, Forwarder: fw, ValidateResults: true})

	if _, err := s.Call(ctx, &Call{API: "auth", Method: "check_password", Params: json.RawMessage(`{}`)}); ErrorCode(err) != EValidation {
		t.Fatalf("params against the schema: %v, want validation", err)
	}
	if _, err := s.Call(ctx, &Call{API: "auth", Method: "check_password", Params: json.RawMessage(`[]`)}); ErrorCode(err) != EInvalid {
		t.Fatalf("params that are not an object: %v, want invalid", err)
	}
	if n := fw.calls.Load(); n != 0 {
		t.Fatalf("%d invalid calls were forwarded", n)
	}
	if _, err := s.Call(ctx, &Call{API: "auth", Method: "check_password", Params: json.RawMessage(`{"username": "x"}`)}); ErrorCode(err) != EBadGateway {
		t.Fatalf("a result against its schema: %v, want bad_gateway", err)
	}
	fw.result = `true`
	if res, err := s.Call(ctx, &Call{API: "auth", Method: "check_password", Params: json.RawMessage(`{"username": "x"}`)}); err != nil || string(res) != "true" {
		t.Fatalf("a valid call: %s, %v", res, err)
	}
}

// A worker's result beyond the JSON limits is the worker's fault (502),
// and never reaches the validator, which can panic on such numbers.
func TestServiceCallResultBeyondLimits(t *testing.T) {
	t.Parallel()
	doc := &SchemaDocument{API: "stats", RPCs: map[string]RPCSchema{"count": {ResultSchema: json.RawMessage(`{"maximum":10}`)}}}
	cache := NewSchemaCache(SchemaCacheConfig{Store: newSchemaStore(t, doc)})
	for _, result := range []string{`1e10000000`, `[` + strings.Repeat(`[`, MaxJSONDepth) + strings.Repeat(`]`, MaxJSONDepth+1)} {
		s := NewService(ServiceConfig{SchemaCache: cache, Forwarder: &forwarder{result: result}, ValidateResults: true})
		if _, err := s.Call(t.Context(), &Call{API: "stats", Method: "count", Params: json.RawMessage(`{}`)}); ErrorCode(err) != EBadGateway {
			t.Errorf("result %.40s: %v, want bad_gateway", result, err)
		}
	}
}

// workerStore records the registrations that reach it.
type workerStore struct {
	WorkerStore
	registered atomic.Int32
}

func (s *workerStore) RegisterWorker(ctx context.Context, reg *Registration, newSecret func() string, maxAttempts int) (*RegistrationResult, error) {
	s.registered.Add(1)
	return &RegistrationResult{Worker: Worker{ID: reg.WorkerID, Service: reg.Service}}, nil
}

func TestServiceRegister(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	workers := &workerStore{}
	s := NewService(ServiceConfig{Workers: workers, SchemaCache: NewSchemaCache(SchemaCacheConfig{})})

	reg := validRegistration()
	reg.LeaseTTLMS = 9000
	res, err := s.Register(ctx, reg)
	if err != nil {
		t.Fatal(err)
	}
	if res.HeartbeatIntervalMS != 3000 {
		t.Fatalf("heartbeat interval %d ms for a 9 s lease, want a third of it", res.HeartbeatIntervalMS)
	}

	broken := validRegistration()
	broken.APIs = []APIDeclaration{{Name: "auth", Events: []EventDeclaration{{Name: "e", ParamsSchema: json.RawMessage(`{"type": 5}`)}}}}
	if _, err := s.Register(ctx, broken); ErrorCode(err) != EInvalid {
		t.Fatalf("a registration whose schema does not compile: %v, want invalid", err)
	}
	bad := validRegistration()
	bad.BaseURL = "ftp://x"
	if _, err := s.Register(ctx, bad); ErrorCode(err) != EInvalid {
		t.Fatalf("a registration with a bad base URL: %v, want invalid", err)
	}
	if n := workers.registered.Load(); n != 1 {
		t.Fatalf("%d registrations reached the store, want only the valid one", n)
	}
}

func TestServiceReplayNeedsSince(t *testing.T) {
	t.Parallel()
	s := NewService(ServiceConfig{})
	for _, since := range []string{"", "now", "yesterday"} {
		if _, err := s.Replay(context.Background(), "auth", "l", since); ErrorCode(err) != EInvalid {
			t.Errorf("replay since %q: %v, want invalid", since, err)
		}
	}
	if _, err := s.Replay(context.Background(), "auth", "not-a-listener", "earliest"); ErrorCode(err) != EInvalid {
		t.Errorf("replay of a bad group name: %v, want invalid", err)
	}
}

func asError(err error, e **Error) bool { return errors.As(err, e) }

func TestServiceReadiness(t *testing.T) {
	t.Parallel()

	t.Run("NoReadDatabase", func(t *testing.T) {
		t.Parallel()
		s := NewService(ServiceConfig{Ready: func(context.Context) error { return nil }})
		r, err := s.Readiness(t.Context())
		if err != nil || r.Status != "ready" || r.ReadDatabase != "" {
			t.Errorf("Readiness = %+v, %v; want ready without read_database", r, err)
		}
	})

	t.Run("ReadDatabaseUnavailableLeavesTheGatewayReady", func(t *testing.T) {
		t.Parallel()
		readErr := errors.New("read database down")
		var failing atomic.Bool
		failing.Store(true)
		s := NewService(ServiceConfig{
			Ready: func(context.Context) error { return nil },
			ReadReady: func(context.Context) error {
				if failing.Load() {
					return readErr
				}
				return nil
			},
		})
		r, err := s.Readiness(t.Context())
		if err != nil || r.Status != "ready" || r.ReadDatabase != ReadDatabaseUnavailable {
			t.Errorf("Readiness = %+v, %v; want ready with read_database unavailable", r, err)
		}
		failing.Store(false)
		if r, err = s.Readiness(t.Context()); err != nil || r.ReadDatabase != ReadDatabaseReady {
			t.Errorf("Readiness = %+v, %v; want read_database ready", r, err)
		}
	})

	t.Run("PrimaryUnavailableIsNotReady", func(t *testing.T) {
		t.Parallel()
		s := NewService(ServiceConfig{
			Ready:     func(context.Context) error { return ErrUnavailable },
			ReadReady: func(context.Context) error { return nil },
		})
		if r, err := s.Readiness(t.Context()); ErrorCode(err) != EUnavailable {
			t.Errorf("Readiness = %+v, %v; want unavailable", r, err)
		}
	})

	t.Run("BothCheckedAtOnce", func(t *testing.T) {
		t.Parallel()
		// Each check waits until the other has started: checked one after
		// the other, the first would run out of its bound.
		primaryStarted, readStarted := make(chan struct{}), make(chan struct{})
		wait := func(ctx context.Context, started, other chan struct{}) error {
			close(started)
			select {
			case <-other:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		s := NewService(ServiceConfig{
			Ready:     func(ctx context.Context) error { return wait(ctx, primaryStarted, readStarted) },
			ReadReady: func(ctx context.Context) error { return wait(ctx, readStarted, primaryStarted) },
		})
		r, err := s.Readiness(t.Context())
		if err != nil || r.ReadDatabase != ReadDatabaseReady {
			t.Errorf("Readiness = %+v, %v; want both checked at once and ready", r, err)
		}
	})
}
