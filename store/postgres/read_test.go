package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/testwait"
	"github.com/lightbus-go/lightbus/store/postgres"
	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

// TestReadPool checks which statements go to the read pool (WithReadPool)
// and which stay on the primary. The read pool is a second database whose
// contents differ from the primary's, so every answer tells where it was
// read: the same listener group billing.ledger in both, with other
// workers, events, dead deliveries and tasks.
func TestReadPool(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	primary, replica := pgtest.New(t), pgtest.New(t)
	db, err := postgres.New(primary, nil, postgres.WithReadPool(replica))
	if err != nil {
		t.Fatal(err)
	}
	// The stand-in replica is written on its own.
	onReplica, err := postgres.New(replica, nil)
	if err != nil {
		t.Fatal(err)
	}
	ledger := gateway.ListenerDeclaration{Name: "ledger", Events: []string{"billing.paid"}, Path: "/e/ledger"}

	// The primary, written through db: its writes must go there. Three
	// events, three deliveries (ids 1-3), the first dead.
	reg := registration("w-primary", "billing", []gateway.APIDeclaration{{Name: "billing", RPCs: []gateway.RPCDeclaration{{Name: "charge"}}}}, ledger)
	reg.Tasks = []gateway.TaskDeclaration{{Name: "primary_task", Kind: gateway.TaskEvery, Spec: "1s"}}
	register(ctx, t, db, reg)
	var onPrimary []*gateway.Event
	for range 3 {
		ev, _ := fire(ctx, t, db, "billing", "paid", `{}`)
		onPrimary = append(onPrimary, ev)
	}
	kill(ctx, t, primary, onPrimary[0].ID)

	// The replica: two events, deliveries 1 and 2, the second dead.
	reg = registration("w-replica", "billing", nil, ledger)
	reg.Tasks = []gateway.TaskDeclaration{{Name: "replica_task", Kind: gateway.TaskEvery, Spec: "1s"}}
	register(ctx, t, onReplica, reg)
	var onRep []*gateway.Event
	for range 2 {
		ev, _ := fire(ctx, t, onReplica, "billing", "paid", `{}`)
		onRep = append(onRep, ev)
	}
	kill(ctx, t, replica, onRep[1].ID)

	if n := countRows(ctx, t, primary, `SELECT count(*) FROM lightbus_event`); n != 3 {
		t.Fatalf("events on the primary = %d, want the 3 fired through the store", n)
	}
	repIDs := []string{onRep[1].ID, onRep[0].ID} // newest first

	t.Run("ReadsGoToTheReadPool", func(t *testing.T) {
		events, err := db.ListEvents(ctx, gateway.EventQuery{Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if got := eventIDs(events); !slices.Equal(got, repIDs) {
			t.Errorf("ListEvents = %v, want the replica's %v", got, repIDs)
		}

		head, err := db.StreamHead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The stream sends an event once every transaction older than it has
		// ended, on the whole server, where other tests run theirs.
		var streamed []gateway.StreamedEvent
		testwait.For(t, 20*time.Second, "two events below the stream's horizon", func() bool {
			var err error
			if streamed, _, err = db.StreamEvents(ctx, gateway.StreamCursor{}, gateway.EventFilter{}, 10); err != nil {
				t.Fatal(err)
			}
			return len(streamed) >= 2
		})
		var ids []string
		for _, s := range streamed {
			ids = append(ids, s.Event.ID)
		}
		if want := []string{onRep[0].ID, onRep[1].ID}; !slices.Equal(ids, want) {
			t.Errorf("StreamEvents = %v, want the replica's %v", ids, want)
		}
		var replicaXMin uint64
		if err := replica.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint`).Scan(&replicaXMin); err != nil {
			t.Fatal(err)
		}
		if head.XID+1 > replicaXMin {
			// Both databases share one server and so one xid counter: the
			// head read on the replica cannot be after its own xmin.
			t.Errorf("StreamHead at xid %d, after the replica's xmin %d", head.XID, replicaXMin)
		}

		dead, err := db.ListDead(ctx, gateway.DeadQuery{Service: "billing", Listener: "ledger", Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if len(dead) != 1 || dead[0].EventID != onRep[1].ID {
			t.Errorf("ListDead = %+v, want the replica's dead delivery of %s", dead, onRep[1].ID)
		}

		groups, err := db.ListListeners(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(groups) != 1 || groups[0].Pending != 1 || groups[0].Dead != 1 {
			t.Errorf("ListListeners = %+v, want the replica's billing.ledger: 1 pending, 1 dead (the primary has 2 and 1)", groups)
		}

		workers, err := db.ListWorkers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(workers) != 1 || workers[0].ID != "w-replica" {
			t.Errorf("ListWorkers = %+v, want w-replica alone", workers)
		}

		tasks, err := db.ListTasks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(tasks) != 1 || tasks[0].Name != "replica_task" {
			t.Errorf("ListTasks = %+v, want replica_task alone", tasks)
		}

		counts, err := db.QueueCounts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(counts) != 1 || counts[0].State != "available" || counts[0].Count != 1 {
			t.Errorf("QueueCounts = %+v, want the replica's 1 available (the primary has 2)", counts)
		}

		// Delivery 1 is in both: the replica's is onRep[0]'s.
		d, err := db.GetDelivery(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if d.EventID != onRep[0].ID {
			t.Errorf("GetDelivery(1) is of event %s, want the replica's %s", d.EventID, onRep[0].ID)
		}
		ev, err := db.GetEvent(ctx, onRep[0].ID)
		if err != nil {
			t.Fatalf("GetEvent(a replica's event): %v", err)
		}
		if len(ev.Deliveries) != 1 || ev.Deliveries[0].State != "pending" {
			t.Errorf("GetEvent(%s).Deliveries = %+v", onRep[0].ID, ev.Deliveries)
		}
	})

	t.Run("WhatTheReadPoolLacksIsReadOnThePrimary", func(t *testing.T) {
		// A client reading the event it has just fired finds it, though the
		// replica has not caught up.
		ev, err := db.GetEvent(ctx, onPrimary[0].ID)
		if err != nil {
			t.Fatalf("GetEvent(a primary's event): %v", err)
		}
		if len(ev.Deliveries) != 1 || ev.Deliveries[0].State != "dead" {
			t.Errorf("GetEvent(%s).Deliveries = %+v, want its dead delivery", onPrimary[0].ID, ev.Deliveries)
		}
		d, err := db.GetDelivery(ctx, 3) // only the primary has a third
		if err != nil {
			t.Fatalf("GetDelivery(3): %v", err)
		}
		if d.EventID != onPrimary[2].ID {
			t.Errorf("GetDelivery(3) is of event %s, want the primary's %s", d.EventID, onPrimary[2].ID)
		}
		if _, err := db.GetEvent(ctx, uuid.NewString()); gateway.ErrorCode(err) != gateway.ENotFound {
			t.Errorf("GetEvent(unknown) = %v, want not found", err)
		}
		if _, err := db.GetDelivery(ctx, 99); gateway.ErrorCode(err) != gateway.ENotFound {
			t.Errorf("GetDelivery(unknown) = %v, want not found", err)
		}
		// A group the replica does not have yet has no dead deliveries there.
		register(ctx, t, db, registration("w-primary-2", "billing", nil,
			gateway.ListenerDeclaration{Name: "fresh", Events: []string{"billing.paid"}, Path: "/e/fresh"}))
		dead, err := db.ListDead(ctx, gateway.DeadQuery{Service: "billing", Listener: "fresh", Limit: 10})
		if err != nil || len(dead) != 0 {
			t.Errorf("ListDead(a group only on the primary) = %v, %v; want an empty page", dead, err)
		}
		if _, err := db.ListDead(ctx, gateway.DeadQuery{Service: "billing", Listener: "nowhere", Limit: 10}); gateway.ErrorCode(err) != gateway.ENotFound {
			t.Errorf("ListDead(unknown group) = %v, want not found", err)
		}
	})

	t.Run("DeliveryPathAndWritesStayOnThePrimary", func(t *testing.T) {
		target, err := db.DeliveryTarget(ctx, onPrimary[1].ID, "billing", "ledger")
		if err != nil {
			t.Fatalf("DeliveryTarget: %v", err)
		}
		if len(target.Endpoints) != 1 || target.Endpoints[0].WorkerID != "w-primary" {
			t.Errorf("DeliveryTarget endpoints = %+v, want w-primary's", target.Endpoints)
		}
		targets, _, err := db.RPCTargets(ctx, "billing", "charge")
		if err != nil || len(targets) != 1 || targets[0].WorkerID != "w-primary" {
			t.Errorf("RPCTargets = %+v, %v; want w-primary", targets, err)
		}
		apis, err := db.KnownAPIs(ctx)
		if err != nil || !slices.Equal(apis, []string{"billing"}) {
			t.Errorf("KnownAPIs = %v, %v; want the primary's [billing]", apis, err)
		}

		// Delivery 1 is dead on the primary only: a redrive runs and reads
		// back there.
		rec, err := db.RedriveDelivery(ctx, 1)
		if err != nil {
			t.Fatalf("RedriveDelivery(1): %v", err)
		}
		if rec.EventID != onPrimary[0].ID || rec.State != "pending" {
			t.Errorf("RedriveDelivery(1) = event %s, %s; want the primary's %s, pending", rec.EventID, rec.State, onPrimary[0].ID)
		}
		kill(ctx, t, primary, onPrimary[2].ID)
		n, err := db.RedriveDead(ctx, gateway.DeadQuery{Service: "billing", Listener: "ledger"})
		if err != nil || n != 1 {
			t.Errorf("RedriveDead = %d, %v; want 1", n, err)
		}
		if n := countRows(ctx, t, primary, `SELECT count(*) FROM river_job WHERE state = 'discarded'`); n != 0 {
			t.Errorf("dead deliveries left on the primary = %d, want 0", n)
		}
		if n := countRows(ctx, t, replica, `SELECT count(*) FROM river_job WHERE state = 'discarded'`); n != 1 {
			t.Errorf("dead deliveries on the replica = %d, want its 1 untouched", n)
		}

		fire(ctx, t, db, "billing", "paid", `{}`)
		if n := countRows(ctx, t, primary, `SELECT count(*) FROM lightbus_event`); n != 4 {
			t.Errorf("events on the primary after a fire = %d, want 4", n)
		}
		if n := countRows(ctx, t, replica, `SELECT count(*) FROM lightbus_event`); n != 2 {
			t.Errorf("events on the replica after a fire = %d, want its 2", n)
		}
	})

	t.Run("ReadReady", func(t *testing.T) {
		if err := db.ReadReady(ctx); err != nil {
			t.Errorf("ReadReady = %v", err)
		}
		if err := onReplica.ReadReady(ctx); err != nil {
			t.Errorf("ReadReady without a read pool = %v, want nil", err)
		}
	})
}

// kill makes the delivery of event id dead (discarded) in pool's database.
func kill(ctx context.Context, t *testing.T, pool *pgxpool.Pool, eventID string) {
	t.Helper()
	tag, err := pool.Exec(ctx, `UPDATE river_job SET state = 'discarded', finalized_at = now() WHERE args->>'event_id' = $1`, eventID)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("kill the delivery of %s: %v, %d rows", eventID, err, tag.RowsAffected())
	}
}

func eventIDs(events []gateway.Event) []string {
	ids := make([]string, len(events))
	for i, e := range events {
		ids[i] = e.ID
	}
	return ids
}
