package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
)

// memStore is the database in memory: just enough of the event, worker
// and schema stores for handler tests and fuzz targets that need no
// Postgres. Methods they do not reach are the embedded nil interfaces': a
// call panics, the recoverer answers 500, and the test fails.
type memStore struct {
	gateway.EventStore
	gateway.WorkerStore
	gateway.SchemaStore

	mu sync.Mutex
	// fired counts the events stored; lastFired holds the latest fire's.
	fired     int
	lastFired []*gateway.Event
	// registered counts the registrations stored; lastReg is the latest.
	registered int
	lastReg    *gateway.Registration
	// schemas holds each API's versions, oldest first.
	schemas map[string][]gateway.SchemaVersion
}

func newMemStore() *memStore { return &memStore{schemas: map[string][]gateway.SchemaVersion{}} }

func (m *memStore) FireEvent(ctx context.Context, ev *gateway.Event, window time.Duration) (*gateway.FireResult, error) {
	res, err := m.FireEvents(ctx, []*gateway.Event{ev}, window)
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

func (m *memStore) FireEvents(ctx context.Context, evs []*gateway.Event, window time.Duration) ([]*gateway.FireResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fired += len(evs)
	m.lastFired = evs
	res := make([]*gateway.FireResult, len(evs))
	for i, ev := range evs {
		res[i] = &gateway.FireResult{ID: ev.ID, API: ev.API, Event: ev.Name, CreatedAt: ev.CreatedAt}
	}
	return res, nil
}

func (m *memStore) RegisterWorker(ctx context.Context, reg *gateway.Registration, newSecret func() string, maxAttempts int) (*gateway.RegistrationResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.registered++
	m.lastReg = reg
	res := &gateway.RegistrationResult{
		Worker:    gateway.Worker{ID: reg.WorkerID, Service: reg.Service, BaseURL: reg.BaseURL, APIs: []string{}, Listeners: []string{}},
		Listeners: []gateway.ListenerGrant{},
	}
	for _, l := range reg.Listeners {
		res.Listeners = append(res.Listeners, gateway.ListenerGrant{Service: reg.Service, Name: l.Name, Events: l.Events, Secret: newSecret()})
	}
	return res, nil
}

func (m *memStore) PublishSchema(ctx context.Context, sv *gateway.SchemaVersion) (*gateway.SchemaVersion, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	versions := m.schemas[sv.API]
	if n := len(versions); n > 0 && versions[n-1].Hash == sv.Hash {
		cur := versions[n-1]
		return &cur, false, nil
	}
	cur := *sv
	cur.Version = len(versions) + 1
	cur.CreatedAt = time.Now().UTC()
	m.schemas[sv.API] = append(versions, cur)
	return &cur, true, nil
}

func (m *memStore) CurrentSchemaRef(ctx context.Context, api string) (gateway.SchemaRef, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	versions := m.schemas[api]
	if len(versions) == 0 {
		return gateway.SchemaRef{}, gateway.ErrNotFound
	}
	cur := versions[len(versions)-1]
	return gateway.SchemaRef{Version: cur.Version, Hash: cur.Hash}, nil
}

func (m *memStore) SchemaVersion(ctx context.Context, api string, version int) (*gateway.SchemaVersion, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	versions := m.schemas[api]
	if version == 0 {
		version = len(versions)
	}
	if version < 1 || version > len(versions) {
		return nil, gateway.ErrNotFound
	}
	sv := versions[version-1]
	return &sv, nil
}

// counts returns how many events, registrations and schema versions the
// store holds.
func (m *memStore) counts() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, v := range m.schemas {
		n += len(v)
	}
	return fmt.Sprintf("%d events, %d registrations, %d schema versions", m.fired, m.registered, n)
}

// typedSchema is the schema the in-memory handler publishes for API
// "typed", so that fires of typed.counted are validated.
const typedSchema = `{"events":{"counted":{"params_schema":{"type":"object","properties":{
	"n":{"type":"integer","maximum":10,"multipleOf":0.5},"m":{"maximum":10},"s":{"type":"string","pattern":"^[a-z]*$"},
	"a":{"type":"array","items":{"type":"number"},"uniqueItems":true}}}}}}`

// newMemHandler returns the HTTP API over a service on a memStore, with
// schema validation on and typedSchema published.
func newMemHandler(t testing.TB) (*Handler, *memStore) {
	t.Helper()
	st := newMemStore()
	svc := gateway.NewService(gateway.ServiceConfig{
		Events: st, Workers: st, Schemas: st,
		SchemaCache:     gateway.NewSchemaCache(gateway.SchemaCacheConfig{Store: st}),
		ValidateResults: true,
	})
	var doc gateway.SchemaDocument
	if err := json.Unmarshal([]byte(typedSchema), &doc); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.PublishSchema(context.Background(), "typed", &doc, ""); err != nil {
		t.Fatalf("publish the typed schema: %v", err)
	}
	return New(Config{Service: svc, MaxBodyBytes: 64 << 10, MaxBatchBytes: 256 << 10}), st
}
