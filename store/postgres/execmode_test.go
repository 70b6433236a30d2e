package postgres_test

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/store/postgres"
	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

// Every statement encodes its arguments in every pgx query exec mode: a
// connection pooler in transaction mode (PgBouncer before 1.21) needs
// default_query_exec_mode=exec or simple_protocol, where pgx sends
// arguments without asking Postgres for their types, so a Go type pgx only
// encodes once it knows the parameter's type fails there. The store's
// statements run here once in each mode; the whole suite runs in one with
// LIGHTBUS_TEST_EXEC_MODE.
func TestEveryExecMode(t *testing.T) {
	t.Parallel()
	for _, mode := range pgtest.ExecModes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			pool := pgtest.NewWithExecMode(t, mode)
			db, err := postgres.New(pool, nil)
			if err != nil {
				t.Fatal(err)
			}
			db.EnableFireBatching(postgres.FireBatchConfig{Window: time.Millisecond, MaxSize: 100, MaxInFlight: 2})
			t.Cleanup(db.Close)
			exerciseStore(t, db, pool)
		})
	}
}

// exerciseStore runs a representative set of the store's methods: those of
// a fire, a batch fire (pipelined and by COPY), a delivery's reads, a dead
// delivery's redrive, a replay, a registration with schemas, keys, tasks and
// the listings.
func exerciseStore(t *testing.T, db *postgres.DB, pool *pgxpool.Pool) {
	ctx := t.Context()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	schema := json.RawMessage(`{"type": "object", "properties": {"n": {"type": "integer"}}}`)
	reg := registration("w1", "auth", []gateway.APIDeclaration{{Name: "auth",
		Events: []gateway.EventDeclaration{{Name: "signed_up", ParamsSchema: schema}},
		RPCs:   []gateway.RPCDeclaration{{Name: "check", ParamsSchema: schema, TimeoutMS: 2000}}}},
		gateway.ListenerDeclaration{Name: "welcome", Events: []string{"auth.signed_up"}, Path: "/welcome"})
	register(ctx, t, db, reg)
	register(ctx, t, db, reg) // a heartbeat: the upsert's other branch
	_, _, err := db.RPCTargets(ctx, "auth", "check")
	must("RPCTargets", err)
	_, err = db.ListWorkers(ctx)
	must("ListWorkers", err)
	_, err = db.ListListeners(ctx)
	must("ListListeners", err)

	sv, _, err := db.PublishSchema(ctx, &gateway.SchemaVersion{API: "auth", Hash: strings.Repeat("ab", 32), Schema: schema, Service: "auth"})
	must("PublishSchema", err)
	_, err = db.SchemaVersion(ctx, "auth", sv.Version)
	must("SchemaVersion", err)
	_, err = db.CurrentSchemaRef(ctx, "auth")
	must("CurrentSchemaRef", err)
	_, err = db.ListSchemas(ctx)
	must("ListSchemas", err)

	// A single fire, group-committed, with an idempotency key and a trace.
	ev, err := gateway.NewEvent("auth", "signed_up", json.RawMessage(`{"n": 1}`))
	must("NewEvent", err)
	ev.IdempotencyKey, ev.TraceParent = "k1", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	res, err := db.FireEvent(ctx, ev, time.Hour)
	must("FireEvent", err)
	if res.Deliveries != 1 {
		t.Fatalf("FireEvent = %+v, want 1 delivery", res)
	}
	repeat := *ev
	repeat.ID = "01936f6e-0000-7000-8000-000000000001"
	again, err := db.FireEvent(ctx, &repeat, time.Hour)
	must("FireEvent again", err)
	if !again.Repeat {
		t.Fatalf("FireEvent with the same key = %+v, want a repeat", again)
	}
	// Batches: a few events pipelined, and enough for a COPY.
	for _, n := range []int{3, 40} {
		evs := make([]*gateway.Event, n)
		for i := range evs {
			evs[i], err = gateway.NewEvent("auth", "signed_up", json.RawMessage(fmt.Sprintf(`{"n": %d}`, i)))
			must("NewEvent", err)
		}
		_, err := db.FireEvents(ctx, evs, time.Hour)
		must(fmt.Sprintf("FireEvents(%d)", n), err)
	}

	events, err := db.ListEvents(ctx, gateway.EventQuery{EventFilter: gateway.EventFilter{API: "auth"}, Limit: 100})
	must("ListEvents", err)
	if len(events) != 44 {
		t.Fatalf("ListEvents = %d events, want 44", len(events))
	}
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	read, err := postgres.ReadEvents(db, ids)
	must("ReadEvents (many)", err)
	if len(read) != len(ids) {
		t.Fatalf("ReadEvents = %d events, want %d", len(read), len(ids))
	}
	_, err = postgres.ReadEvents(db, ids[:1])
	must("ReadEvents (one)", err)
	// A delivery batch's id, as a batched event's detail shows it.
	batched, err := db.GetEvent(ctx, ids[0])
	must("GetEvent (batched)", err)
	if len(batched.Deliveries) != 1 || !batched.Deliveries[0].Batch {
		t.Fatalf("GetEvent of a batched event = %+v, want its delivery batch", batched.Deliveries)
	}
	batch, err := db.GetDelivery(ctx, batched.Deliveries[0].ID)
	must("GetDelivery (batch)", err)
	if len(batch.EventIDs) == 0 {
		t.Fatalf("GetDelivery of a batch = %+v, want its events", batch)
	}
	_, err = db.DeliveryTarget(ctx, ev.ID, "auth", "welcome")
	must("DeliveryTarget", err)
	detail, err := db.GetEvent(ctx, ev.ID)
	must("GetEvent", err)
	head, err := db.StreamHead(ctx)
	must("StreamHead", err)
	_, _, err = db.StreamEvents(ctx, gateway.StreamCursor{}, gateway.EventFilter{API: "auth"}, 10)
	must("StreamEvents", err)
	_, _, err = db.StreamEvents(ctx, head, gateway.EventFilter{}, 10)
	must("StreamEvents after the head", err)

	// A dead delivery, redriven alone and by query.
	id := detail.Deliveries[0].ID
	kill := func() {
		t.Helper()
		_, err := pool.Exec(ctx, `UPDATE river_job SET state = 'discarded', finalized_at = now() WHERE id = $1`, id)
		must("kill the delivery", err)
	}
	kill()
	q := gateway.DeadQuery{Service: "auth", Listener: "welcome", Since: time.Now().Add(-time.Hour), Limit: 10}
	dead, err := db.ListDead(ctx, q)
	must("ListDead", err)
	if len(dead) != 1 {
		t.Fatalf("ListDead = %d deliveries, want 1", len(dead))
	}
	_, err = db.GetDelivery(ctx, id)
	must("GetDelivery", err)
	_, err = db.RedriveDelivery(ctx, id)
	must("RedriveDelivery", err)
	kill()
	n, err := db.RedriveDead(ctx, q)
	must("RedriveDead", err)
	if n != 1 {
		t.Fatalf("RedriveDead = %d, want 1", n)
	}

	rp, err := db.StartReplay(ctx, "auth", "welcome", gateway.Since{Earliest: true}, true)
	must("StartReplay", err)
	_, err = db.ReplayPage(ctx, rp.ID, 10)
	must("ReplayPage", err)
	_, err = db.QueueCounts(ctx)
	must("QueueCounts", err)

	hash := sha256.Sum256([]byte("ci"))
	_, err = db.CreateKey(ctx, &gateway.APIKey{Name: "ci", Scopes: []string{"read"}}, hash[:])
	must("CreateKey", err)
	_, _, err = db.KeyByHash(ctx, hash[:])
	must("KeyByHash", err)
	_, err = db.ListKeys(ctx)
	must("ListKeys", err)
	must("RevokeKey", db.RevokeKey(ctx, "ci"))

	_, err = db.ListTasks(ctx)
	must("ListTasks", err)
	_, err = db.PruneEvents(ctx, time.Now().Add(-time.Hour), 100, false)
	must("PruneEvents", err)

	// A key past its window is released: the key holder's lookup and the
	// release.
	late := repeat
	late.ID = "01936f6e-0000-7000-8000-000000000002"
	res, err = db.FireEvent(ctx, &late, 0)
	must("FireEvent after the window", err)
	if res.Repeat {
		t.Fatalf("FireEvent after the window = %+v, want a new event", res)
	}
	// Partitions: made ahead (moving an event out of the DEFAULT
	// partition), and dropped with the keys of their events.
	ahead := time.Now().Add(400 * 24 * time.Hour)
	future := *ev
	future.ID, future.IdempotencyKey = uuidAt(t, ahead), "k-future"
	_, err = db.FireEvent(ctx, &future, time.Hour)
	must("FireEvent into the DEFAULT partition", err)
	_, err = db.EnsurePartitions(ctx, ahead, 24*time.Hour, 1)
	must("EnsurePartitions", err)
	_, err = db.EventPartitions(ctx)
	must("EventPartitions", err)
	_, err = pool.Exec(ctx, `UPDATE river_job SET state = 'completed', finalized_at = now()`)
	must("complete the deliveries", err)
	dropped, err := db.DropEventPartitions(ctx, ahead.Add(48*time.Hour), false)
	must("DropEventPartitions", err)
	if len(dropped.Dropped) < 2 {
		t.Fatalf("DropEventPartitions = %+v, want the partitions dropped", dropped)
	}
	must("RemoveEndpoint", db.RemoveEndpoint(ctx, "auth", "welcome", "w1"))
	must("DeregisterWorker", db.DeregisterWorker(ctx, "w1"))
}
