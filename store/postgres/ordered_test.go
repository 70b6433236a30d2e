package postgres_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/gateway/dispatch"
	"github.com/lightbus-go/lightbus/internal/testwait"
	"github.com/lightbus-go/lightbus/store/postgres"
)

// orderedGroup registers worker w1 of service svc with listener name, ordered
// or not, subscribed to shop.order_placed.
func orderedGroup(ctx context.Context, t *testing.T, db *postgres.DB, svc, name string, ordered bool) {
	t.Helper()
	register(ctx, t, db, registration("w-"+svc+"-"+name, svc, nil, gateway.ListenerDeclaration{
		Name: name, Events: []string{"shop.order_placed"}, Path: "/hook",
		Policy: &gateway.DeliveryPolicy{Ordered: ordered},
	}))
}

// jobsOf counts the delivery jobs and batches queued for the group.
func jobsOf(ctx context.Context, t *testing.T, b *testBundle, svc, name string) int {
	t.Helper()
	var n int
	err := b.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind IN ($3, $4)
		AND args->>'service' = $1 AND args->>'listener' = $2`, svc, name, dispatch.DeliveryKind, dispatch.DeliveryBatchKind).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// commitOrder is the ids of the events in (xid, id) order: the order their
// transactions committed in, as far as any reader below the horizon can
// tell.
func commitOrder(ctx context.Context, t *testing.T, b *testBundle) []string {
	t.Helper()
	rows, _ := b.pool.Query(ctx, `SELECT id::text FROM lightbus_event ORDER BY xid, id`)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// drainOrdered reads the group's events with OrderedNext and marks each
// delivered, as the group's job does, until n are read.
func drainOrdered(ctx context.Context, t *testing.T, db *postgres.DB, svc, name string, n int) []string {
	t.Helper()
	var got []string
	testwait.For(t, 30*time.Second, "ordered events", func() bool {
		next, err := db.OrderedNext(ctx, svc, name, 7)
		if err != nil {
			t.Fatalf("OrderedNext: %v", err)
		}
		for _, ev := range next.Events {
			if len(got) >= n {
				break
			}
			got = append(got, ev.ID)
			if err := db.OrderedDelivered(ctx, svc, name, next.Epoch, ev.Cursor); err != nil {
				t.Fatal(err)
			}
		}
		return len(got) >= n
	})
	return got
}

// TestOrderedFiresQueueNoJobs: every fire path (one event, a few, many by
// COPY, a keyed one) queues no delivery job for an ordered group, counts
// its delivery in the answer, and the group's reader gets every event in
// commit order.
func TestOrderedFiresQueueNoJobs(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	orderedGroup(ctx, t, b.db, "ledger", "post", true)
	orderedGroup(ctx, t, b.db, "audit", "log", false)

	var fired []string
	one, n := fire(ctx, t, b.db, "shop", "order_placed", `{"n":0}`)
	if n != 2 {
		t.Fatalf("a lone fire counted %d deliveries, want 2 (one per group)", n)
	}
	fired = append(fired, one.ID)
	for _, size := range []int{3, 20} {
		evs := make([]*gateway.Event, size)
		for i := range evs {
			var err error
			if evs[i], err = gateway.NewEvent("shop", "order_placed", json.RawMessage(`{"n":1}`)); err != nil {
				t.Fatal(err)
			}
		}
		res, err := b.db.FireEvents(ctx, evs, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			if r.Deliveries != 2 {
				t.Fatalf("a batch of %d counted %d deliveries for an event, want 2", size, r.Deliveries)
			}
			fired = append(fired, r.ID)
		}
	}
	keyed, err := gateway.NewEvent("shop", "order_placed", json.RawMessage(`{"n":2}`))
	if err != nil {
		t.Fatal(err)
	}
	keyed.IdempotencyKey = "k1"
	if _, err := b.db.FireEvent(ctx, keyed, time.Hour); err != nil {
		t.Fatal(err)
	}
	fired = append(fired, keyed.ID)

	if n := jobsOf(ctx, t, b, "ledger", "post"); n != 0 {
		t.Fatalf("%d delivery jobs queued for the ordered group, want none", n)
	}
	if n := jobsOf(ctx, t, b, "audit", "log"); n == 0 {
		t.Fatal("no delivery job queued for the unordered group")
	}
	got := drainOrdered(ctx, t, b.db, "ledger", "post", len(fired))
	if want := commitOrder(ctx, t, b); !slices.Equal(got, want) {
		t.Fatalf("ordered reader got\n%v\nwant the commit order\n%v", got, want)
	}
}

// TestOrderedReadsBelowHorizon: an event stored by a transaction still open
// holds back the events committed after it, and is read first once it
// commits: the group's order is commit order, not id order.
func TestOrderedReadsBelowHorizon(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	orderedGroup(ctx, t, b.db, "ledger", "post", true)

	// A fire's transaction that stays open: its event has the smaller id
	// and the smaller xid.
	tx, err := b.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	slow, err := gateway.NewEvent("shop", "order_placed", json.RawMessage(`{"slow":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO lightbus_event (id, api, name, params, created_at) VALUES ($1, 'shop', 'order_placed', '{}', now())`, slow.ID); err != nil {
		t.Fatal(err)
	}
	fast, _ := fire(ctx, t, b.db, "shop", "order_placed", `{"fast":true}`)

	next, err := b.db.OrderedNext(ctx, "ledger", "post", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(next.Events) != 0 || !next.Waiting {
		t.Fatalf("with an older transaction open: %d events, waiting %v; want none, waiting", len(next.Events), next.Waiting)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got := drainOrdered(ctx, t, b.db, "ledger", "post", 2)
	if want := []string{slow.ID, fast.ID}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v (the open transaction's event first)", got, want)
	}
}

// TestOrderedFireWakesJob: a fire makes an ordered group's sleeping job
// available at once, in its transaction.
func TestOrderedFireWakesJob(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	orderedGroup(ctx, t, b.db, "ledger", "post", true)
	var id int64
	var state string
	if err := b.pool.QueryRow(ctx, `SELECT id, state::text FROM river_job WHERE kind = $1`, dispatch.OrderedKind).Scan(&id, &state); err != nil {
		t.Fatalf("the ordered group's job: %v", err)
	}
	// Asleep, as a snoozed job is.
	if _, err := b.pool.Exec(ctx, `UPDATE river_job SET state = 'scheduled', scheduled_at = now() + interval '1 hour' WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	fire(ctx, t, b.db, "shop", "order_placed", `{}`)
	var due bool
	if err := b.pool.QueryRow(ctx, `SELECT state::text, scheduled_at <= now() FROM river_job WHERE id = $1`, id).Scan(&state, &due); err != nil {
		t.Fatal(err)
	}
	if state != "available" || !due {
		t.Fatalf("after a fire the job is %s, due %v; want available now", state, due)
	}
	// A registration queues it again when it has finished.
	if _, err := b.pool.Exec(ctx, `UPDATE river_job SET state = 'completed', finalized_at = now() WHERE id = $1`, id); err != nil {
		t.Fatal(err)
	}
	orderedGroup(ctx, t, b.db, "ledger", "post", true)
	var n int
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'available'`, dispatch.OrderedKind).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d available ordered jobs after a registration, want 1", n)
	}
	orderedGroup(ctx, t, b.db, "ledger", "post", true)
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = $1 AND finalized_at IS NULL`, dispatch.OrderedKind).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d unfinished ordered jobs after another registration, want 1 (unique per group)", n)
	}
}

// TestOrderedRetention: pruning keeps the events an ordered group has not
// passed, and prunes them once it has.
func TestOrderedRetention(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	orderedGroup(ctx, t, b.db, "ledger", "post", true)
	for range 3 {
		fire(ctx, t, b.db, "shop", "order_placed", `{}`)
	}
	n, err := b.db.PruneEvents(ctx, time.Now().Add(time.Hour), 100, false)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("pruned %d events the ordered group is owed", n)
	}
	drainOrdered(ctx, t, b.db, "ledger", "post", 3)
	if n, err = b.db.PruneEvents(ctx, time.Now().Add(time.Hour), 100, false); err != nil || n != 3 {
		t.Fatalf("pruned %d (%v) once the group passed them, want 3", n, err)
	}
}

// TestOrderedSwitchedOff: a group that stops being ordered hands the events
// it is still owed to a replay, which queues their deliveries.
func TestOrderedSwitchedOff(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	orderedGroup(ctx, t, b.db, "ledger", "post", true)
	for range 3 {
		fire(ctx, t, b.db, "shop", "order_placed", `{}`)
	}
	drainOrdered(ctx, t, b.db, "ledger", "post", 1) // the two later events are still owed
	orderedGroup(ctx, t, b.db, "ledger", "post", false)
	var replays int
	if err := b.pool.QueryRow(ctx, `SELECT count(*) FROM lightbus_replay WHERE service = 'ledger' AND state = 'running'`).Scan(&replays); err != nil {
		t.Fatal(err)
	}
	if replays != 1 {
		t.Fatalf("%d replays running after the switch, want 1", replays)
	}
	var rp int64
	if err := b.pool.QueryRow(ctx, `SELECT id FROM lightbus_replay WHERE service = 'ledger'`).Scan(&rp); err != nil {
		t.Fatal(err)
	}
	if _, err := b.db.ReplayPage(ctx, rp, 100); err != nil {
		t.Fatal(err)
	}
	var queued int
	if err := b.pool.QueryRow(ctx, `SELECT queued FROM lightbus_replay WHERE id = $1`, rp).Scan(&queued); err != nil {
		t.Fatal(err)
	}
	if queued < 1 {
		t.Fatalf("the replay queued %d deliveries, want the owed events", queued)
	}
}

// TestOrderedReplay: a replay of an ordered group moves its position back,
// so that its own job delivers the events again in commit order; the
// replay is done at once, and a move by the job that read the old position
// is dropped.
func TestOrderedReplay(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	orderedGroup(ctx, t, b.db, "ledger", "post", true)
	for range 4 {
		fire(ctx, t, b.db, "shop", "order_placed", `{}`)
	}
	want := commitOrder(ctx, t, b)
	// A read of the four events, as a job running before the replay made
	// it (once the horizon, which other transactions on the server may
	// hold back, has passed them).
	var stale *dispatch.OrderedNext
	testwait.For(t, 30*time.Second, "the four events below the horizon", func() bool {
		var err error
		if stale, err = b.db.OrderedNext(ctx, "ledger", "post", 10); err != nil {
			t.Fatal(err)
		}
		return len(stale.Events) == 4
	})
	drainOrdered(ctx, t, b.db, "ledger", "post", 4)

	rp, err := b.db.StartReplay(ctx, "ledger", "post", gateway.Since{Earliest: true}, true)
	if err != nil {
		t.Fatal(err)
	}
	if rp.State != "done" {
		t.Fatalf("an ordered group's replay is %s, want done at once", rp.State)
	}
	// The job that read before the replay records a delivery: dropped.
	if err := b.db.OrderedDelivered(ctx, "ledger", "post", stale.Epoch, stale.Events[3].Cursor); err != nil {
		t.Fatal(err)
	}
	if got := drainOrdered(ctx, t, b.db, "ledger", "post", 4); !slices.Equal(got, want) {
		t.Fatalf("after the replay the group reads %v, want %v", got, want)
	}
}

// TestOrderedSkipsOtherEvents: a caught-up group's position moves past the
// events it does not subscribe to, and the next event it does is still
// read.
func TestOrderedSkipsOtherEvents(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	orderedGroup(ctx, t, b.db, "ledger", "post", true)
	for range 3 {
		fire(ctx, t, b.db, "shop", "order_cancelled", `{}`)
	}
	testwait.For(t, 30*time.Second, "the position past the other events", func() bool {
		if _, err := b.db.OrderedNext(ctx, "ledger", "post", 10); err != nil {
			t.Fatal(err)
		}
		var moved bool
		if err := b.pool.QueryRow(ctx, `SELECT pos_xid >= (SELECT max(xid) FROM lightbus_event) FROM lightbus_ordered`).Scan(&moved); err != nil {
			t.Fatal(err)
		}
		return moved
	})
	ev, _ := fire(ctx, t, b.db, "shop", "order_placed", `{}`)
	if got := drainOrdered(ctx, t, b.db, "ledger", "post", 1); !slices.Equal(got, []string{ev.ID}) {
		t.Fatalf("after the skip the group reads %v, want %s", got, ev.ID)
	}
}

// TestOrderedPartitionRetention: a partition past the retention is not
// dropped while it holds an event an ordered group is still owed, even when
// the event's created_at (Postgres's clock) is later than its id's time (the
// gateway's clock, which the partitions' bounds are made of); once the group
// has passed it, the partition is dropped.
func TestOrderedPartitionRetention(t *testing.T) {
	t.Parallel()
	ctx, b := setup(t)
	orderedGroup(ctx, t, b.db, "ledger", "post", true)
	day := futureDay(50)
	if _, err := b.db.EnsurePartitions(ctx, day, 24*time.Hour, 3); err != nil {
		t.Fatal(err)
	}
	ev := eventAt(t, "shop", "order_placed", day.Add(time.Hour), "")
	if _, err := b.db.FireEvent(ctx, ev, time.Hour); err != nil {
		t.Fatal(err)
	}
	// Postgres's clock five days ahead of the gateway's.
	if _, err := b.pool.Exec(ctx, `UPDATE lightbus_event SET created_at = $2 WHERE id = $1`, ev.ID, day.AddDate(0, 0, 5)); err != nil {
		t.Fatal(err)
	}
	part := "lightbus_event_p" + day.Format("20060102") + "t000000"
	cutoff := day.AddDate(0, 0, 3)
	got, err := b.db.DropEventPartitions(ctx, cutoff, false)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(got.Dropped, part) {
		t.Fatalf("dropped %s, which holds an event the ordered group is owed (%+v)", part, got)
	}
	drainOrdered(ctx, t, b.db, "ledger", "post", 1)
	if got, err = b.db.DropEventPartitions(ctx, cutoff, false); err != nil || !slices.Contains(got.Dropped, part) {
		t.Fatalf("DropEventPartitions once the group passed the event = %+v, %v; want %s dropped", got, err, part)
	}
}
