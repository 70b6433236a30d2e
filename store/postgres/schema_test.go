package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/webhook"
	"github.com/lightbus-go/lightbus/store/postgres"
	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

// authAPI declares the auth API with a params schema whose required
// property is field.
func authAPI(field string) gateway.APIDeclaration {
	return gateway.APIDeclaration{
		Name:   "auth",
		Events: []gateway.EventDeclaration{{Name: "user_registered", ParamsSchema: json.RawMessage(`{"type":"object","required":["` + field + `"]}`)}},
		RPCs:   []gateway.RPCDeclaration{{Name: "check_password", ResultSchema: json.RawMessage(`{"type":"boolean"}`), TimeoutMS: 500}},
	}
}

func TestSchemaVersions(t *testing.T) {
	t.Parallel()

	t.Run("RegistrationPublishesOnChangeOnly", func(t *testing.T) {
		t.Parallel()
		ctx, bundle := setup(t)
		db := bundle.db

		if _, err := db.CurrentSchemaRef(ctx, "auth"); !errors.Is(err, gateway.ErrNotFound) {
			t.Fatalf("CurrentSchemaRef before any schema: %v, want not found", err)
		}
		res := register(ctx, t, db, registration("a1", "auth", []gateway.APIDeclaration{authAPI("username")}))
		if !slices.Equal(res.Published, []string{"auth"}) || len(res.SchemaConflicts) != 0 {
			t.Fatalf("first registration: published %v, conflicts %v", res.Published, res.SchemaConflicts)
		}
		// A heartbeat with the same declaration publishes nothing.
		res = register(ctx, t, db, registration("a1", "auth", []gateway.APIDeclaration{authAPI("username")}))
		if len(res.Published) != 0 {
			t.Fatalf("heartbeat published %v", res.Published)
		}
		// A second worker with the same schema: no new version, no conflict.
		res = register(ctx, t, db, registration("a2", "auth", []gateway.APIDeclaration{authAPI("username")}))
		if len(res.Published) != 0 || len(res.SchemaConflicts) != 0 {
			t.Fatalf("same schema: published %v, conflicts %v", res.Published, res.SchemaConflicts)
		}
		ref, err := db.CurrentSchemaRef(ctx, "auth")
		if err != nil || ref.Version != 1 {
			t.Fatalf("CurrentSchemaRef = %+v, %v; want version 1", ref, err)
		}
		v1, err := db.SchemaVersion(ctx, "auth", 0)
		if err != nil {
			t.Fatal(err)
		}
		if v1.Version != 1 || v1.Hash != ref.Hash || v1.Service != "auth" || v1.WorkerID != "a1" || v1.CreatedAt.IsZero() {
			t.Fatalf("current version = %+v", v1)
		}
		// The stored document is the canonical one, byte for byte.
		doc := authAPI("username")
		canon, hash, err := doc.SchemaDocument().Canonical()
		if err != nil || string(v1.Schema) != string(canon) || hash != v1.Hash {
			t.Fatalf("stored %s (%s), want %s (%s)", v1.Schema, v1.Hash, canon, hash)
		}

		// A worker with another schema wins: version 2, and a1, a2 disagree.
		res = register(ctx, t, db, registration("a3", "auth", []gateway.APIDeclaration{authAPI("email")}))
		if !slices.Equal(res.Published, []string{"auth"}) {
			t.Fatalf("changed schema: published %v", res.Published)
		}
		var disagree []string
		for _, c := range res.SchemaConflicts {
			if c.API != "auth" || c.Service != "auth" || c.Hash != v1.Hash {
				t.Errorf("conflict %+v", c)
			}
			disagree = append(disagree, c.WorkerID)
		}
		if !slices.Equal(disagree, []string{"a1", "a2"}) {
			t.Fatalf("conflicting workers %v, want a1 and a2", disagree)
		}
		// Their heartbeats do not revert it.
		res = register(ctx, t, db, registration("a1", "auth", []gateway.APIDeclaration{authAPI("username")}))
		if len(res.Published) != 0 || len(res.SchemaConflicts) != 2 {
			t.Fatalf("old worker's heartbeat: published %v, conflicts %v", res.Published, res.SchemaConflicts)
		}
		conflicts, err := db.SchemaConflicts(ctx, "auth")
		if err != nil || len(conflicts) != 2 {
			t.Fatalf("SchemaConflicts = %v, %v", conflicts, err)
		}
		// Once they leave, nobody disagrees.
		for _, id := range []string{"a1", "a2"} {
			if err := db.DeregisterWorker(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		if conflicts, err := db.SchemaConflicts(ctx, "auth"); err != nil || len(conflicts) != 0 {
			t.Fatalf("SchemaConflicts after deregistering = %v, %v", conflicts, err)
		}

		versions, err := db.ListSchemaVersions(ctx, "auth")
		if err != nil || len(versions) != 2 || versions[0].Version != 2 || versions[1].Version != 1 || versions[0].WorkerID != "a3" {
			t.Fatalf("ListSchemaVersions = %+v, %v", versions, err)
		}
		old, err := db.SchemaVersion(ctx, "auth", 1)
		if err != nil || old.Hash != v1.Hash {
			t.Fatalf("SchemaVersion(1) = %+v, %v", old, err)
		}
		if _, err := db.SchemaVersion(ctx, "auth", 3); !errors.Is(err, gateway.ErrNotFound) {
			t.Fatalf("SchemaVersion(3): %v, want not found", err)
		}
		if _, err := db.ListSchemaVersions(ctx, "billing"); !errors.Is(err, gateway.ErrNotFound) {
			t.Fatalf("ListSchemaVersions(billing): %v, want not found", err)
		}
	})

	t.Run("DeclarationWithoutSchemasPublishesNothing", func(t *testing.T) {
		t.Parallel()
		ctx, bundle := setup(t)
		res := register(ctx, t, bundle.db, registration("a1", "auth", []gateway.APIDeclaration{
			{Name: "auth", Events: []gateway.EventDeclaration{{Name: "user_registered"}}}}))
		if len(res.Published) != 0 {
			t.Fatalf("published %v", res.Published)
		}
		all, err := bundle.db.ListSchemas(ctx)
		if err != nil || len(all) != 0 {
			t.Fatalf("ListSchemas = %v, %v", all, err)
		}
	})

	t.Run("PublishSchema", func(t *testing.T) {
		t.Parallel()
		ctx, bundle := setup(t)
		db := bundle.db
		publish := func(api, required string) (*gateway.SchemaVersion, bool) {
			t.Helper()
			doc := &gateway.SchemaDocument{API: api, Events: map[string]gateway.EventSchema{
				"changed": {ParamsSchema: json.RawMessage(`{"required":["` + required + `"]}`)}}}
			canon, hash, err := doc.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			sv, created, err := db.PublishSchema(ctx, &gateway.SchemaVersion{API: api, Hash: hash, Schema: canon, Service: "billing"})
			if err != nil {
				t.Fatal(err)
			}
			return sv, created
		}
		if sv, created := publish("billing", "a"); !created || sv.Version != 1 || sv.WorkerID != "" || sv.Service != "billing" {
			t.Fatalf("first publish: %+v, created %v", sv, created)
		}
		if sv, created := publish("billing", "a"); created || sv.Version != 1 {
			t.Fatalf("same content: %+v, created %v", sv, created)
		}
		if sv, created := publish("billing", "b"); !created || sv.Version != 2 {
			t.Fatalf("new content: %+v, created %v", sv, created)
		}
		if sv, created := publish("billing", "a"); !created || sv.Version != 3 {
			t.Fatalf("back to the first content: %+v, created %v", sv, created)
		}
		publish("audit", "x")
		all, err := db.ListSchemas(ctx)
		if err != nil || len(all) != 2 || all[0].API != "audit" || all[1].API != "billing" || all[1].Version != 3 || len(all[1].Schema) == 0 {
			t.Fatalf("ListSchemas = %+v, %v", all, err)
		}
	})

	t.Run("DefinitionKeepsNoSchemas", func(t *testing.T) {
		t.Parallel()
		ctx, bundle := setup(t)
		register(ctx, t, bundle.db, registration("a1", "auth", []gateway.APIDeclaration{authAPI("username")}))
		var def string
		if err := bundle.pool.QueryRow(ctx, `SELECT definition::text FROM lightbus_api WHERE name = 'auth'`).Scan(&def); err != nil {
			t.Fatal(err)
		}
		want := `{"rpcs": [{"name": "check_password", "timeout_ms": 500}], "events": [{"name": "user_registered"}]}`
		if def != want {
			t.Fatalf("definition %s, want %s", def, want)
		}
		_, timeout, err := bundle.db.RPCTargets(ctx, "auth", "check_password")
		if err != nil || timeout.Milliseconds() != 500 {
			t.Fatalf("RPCTargets timeout %v, %v", timeout, err)
		}
	})
}

// countingStore counts the schema store calls the cache makes.
type countingStore struct {
	gateway.SchemaStore
	refs, versions atomic.Int32
}

func (c *countingStore) CurrentSchemaRef(ctx context.Context, api string) (gateway.SchemaRef, error) {
	c.refs.Add(1)
	return c.SchemaStore.CurrentSchemaRef(ctx, api)
}

func (c *countingStore) SchemaVersion(ctx context.Context, api string, version int) (*gateway.SchemaVersion, error) {
	c.versions.Add(1)
	return c.SchemaStore.SchemaVersion(ctx, api, version)
}

func TestSchemaCache(t *testing.T) {
	t.Parallel()
	ctx, bundle := setup(t)
	store := &countingStore{SchemaStore: bundle.db}
	cache := gateway.NewSchemaCache(gateway.SchemaCacheConfig{Store: store, TTL: time.Hour})

	// No schema: looked up once, then remembered.
	for range 3 {
		if api, err := cache.Lookup(ctx, "auth"); err != nil || api != nil {
			t.Fatalf("Lookup before any schema = %v, %v", api, err)
		}
	}
	if n := store.refs.Load(); n != 1 {
		t.Fatalf("%d version checks, want 1", n)
	}

	register(ctx, t, bundle.db, registration("a1", "auth", []gateway.APIDeclaration{authAPI("username")}))
	cache.Invalidate("auth")
	for range 100 {
		api, err := cache.Lookup(ctx, "auth")
		if err != nil || api == nil || api.Version != 1 {
			t.Fatalf("Lookup = %+v, %v", api, err)
		}
	}
	if refs, versions := store.refs.Load(), store.versions.Load(); refs != 2 || versions != 1 {
		t.Fatalf("%d version checks and %d document reads for 100 lookups, want 2 and 1", refs, versions)
	}

	// Another replica publishes: with a short TTL the change is seen.
	short := gateway.NewSchemaCache(gateway.SchemaCacheConfig{Store: store, TTL: time.Millisecond})
	if api, _ := short.Lookup(ctx, "auth"); api == nil || api.Version != 1 {
		t.Fatalf("short TTL lookup = %+v", api)
	}
	register(ctx, t, bundle.db, registration("a2", "auth", []gateway.APIDeclaration{authAPI("email")}))
	time.Sleep(5 * time.Millisecond) // the 1 ms TTL passes: time itself is what is awaited
	api, err := short.Lookup(ctx, "auth")
	if err != nil || api == nil || api.Version != 2 {
		t.Fatalf("after a new version: %+v, %v", api, err)
	}
	sch, _ := api.Event("user_registered")
	if vs, _ := gateway.ValidateJSON(sch, []byte(`{"username": "x"}`)); len(vs) != 1 || vs[0].Pointer != "/email" {
		t.Fatalf("version 2 violations %+v", vs)
	}
	// The long-TTL cache still trusts version 1 until invalidated.
	if api, _ := cache.Lookup(ctx, "auth"); api.Version != 1 {
		t.Fatalf("long TTL cache = version %d", api.Version)
	}
	cache.Invalidate("auth")
	if api, _ := cache.Lookup(ctx, "auth"); api.Version != 2 {
		t.Fatalf("after Invalidate = version %d", api.Version)
	}
}

// BenchmarkSchemaCacheLookup measures the hot path of a fire's validation:
// the API's compiled schema is in memory, no database round trip.
func BenchmarkSchemaCacheLookup(b *testing.B) {
	ctx := context.Background()
	db, err := postgres.New(pgtest.New(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	reg := registration("a1", "auth", []gateway.APIDeclaration{authAPI("username")})
	if _, err := db.RegisterWorker(ctx, reg, webhook.NewSecret, 7); err != nil {
		b.Fatal(err)
	}
	store := &countingStore{SchemaStore: db}
	cache := gateway.NewSchemaCache(gateway.SchemaCacheConfig{Store: store, TTL: time.Minute})
	b.ReportAllocs()
	for b.Loop() {
		if api, err := cache.Lookup(ctx, "auth"); err != nil || api == nil {
			b.Fatal(api, err)
		}
	}
	if n := store.refs.Load(); n != 1 {
		b.Fatalf("%d database lookups, want 1", n)
	}
}
