package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/gateway/dispatch"
	"github.com/lightbus-go/lightbus/internal/testwait"
	"github.com/lightbus-go/lightbus/store/postgres"
)

func TestFireBatching(t *testing.T) {
	t.Parallel()

	// batched returns a bundle whose store group-commits fires, with one
	// batch in flight and a long window so that concurrent fires share.
	batched := func(t *testing.T) *testBundle {
		t.Helper()
		_, bundle := setup(t)
		bundle.db.EnableFireBatching(postgres.FireBatchConfig{Window: 50 * time.Millisecond, MaxSize: 100, MaxInFlight: 1})
		t.Cleanup(bundle.db.Close)
		return bundle
	}
	fireAll := func(t *testing.T, db *postgres.DB, events []*gateway.Event) ([]int, []error) {
		t.Helper()
		ns := make([]int, len(events))
		errs := make([]error, len(events))
		var wg sync.WaitGroup
		for i, ev := range events {
			wg.Go(func() {
				res, err := db.FireEvent(t.Context(), ev, time.Hour)
				if err == nil {
					ns[i] = res.Deliveries
				}
				errs[i] = err
			})
		}
		wg.Wait()
		return ns, errs
	}
	newEvents := func(t *testing.T, n int) []*gateway.Event {
		t.Helper()
		var events []*gateway.Event
		for range n {
			ev, err := gateway.NewEvent("customers", "new_customer", json.RawMessage(`{"name":"Sally"}`))
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, ev)
		}
		return events
	}

	t.Run("ConcurrentFiresShareTransactions", func(t *testing.T) {
		t.Parallel()
		bundle := batched(t)
		ctx := t.Context()
		register(ctx, t, bundle.db, registration("a1", "auth", nil,
			gateway.ListenerDeclaration{Name: "create_user", Events: []string{"customers.new_customer"}, Path: "/e"}))

		events := newEvents(t, 100)
		ns, errs := fireAll(t, bundle.db, events)
		for i := range events {
			if errs[i] != nil || ns[i] != 1 {
				t.Fatalf("fire %d: %d deliveries, %v; want 1 and no error", i, ns[i], errs[i])
			}
		}
		var stored, jobs, txs int
		if err := bundle.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT xmin::text) FROM lightbus_event`).Scan(&stored, &txs); err != nil {
			t.Fatal(err)
		}
		if err := bundle.pool.QueryRow(ctx, deliveriesSQL).Scan(&jobs); err != nil {
			t.Fatal(err)
		}
		if stored != 100 || jobs != 100 {
			t.Errorf("stored %d events and %d deliveries, want 100 of each", stored, jobs)
		}
		if txs >= 100 {
			t.Errorf("100 concurrent fires committed in %d transactions: none was shared", txs)
		}
		// A shared transaction queues one job for the group, however many
		// events it stored: no more job rows than transactions.
		var rows int
		if err := bundle.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE queue = $1`, dispatch.QueueDelivery).Scan(&rows); err != nil {
			t.Fatal(err)
		}
		if rows > txs {
			t.Errorf("%d transactions queued %d job rows for one group, want at most one each", txs, rows)
		}
	})

	// Fires with idempotency keys share transactions too, and keep what a
	// key promises: a repeat stores nothing and answers with the first
	// event, other parameters under the same key are a conflict, and a key
	// that outlived its window stores a new event.
	t.Run("KeyedFires", func(t *testing.T) {
		t.Parallel()
		bundle := batched(t)
		ctx := t.Context()
		register(ctx, t, bundle.db, registration("a1", "auth", nil,
			gateway.ListenerDeclaration{Name: "create_user", Events: []string{"customers.new_customer"}, Path: "/e"}))

		const n = 60
		events := newEvents(t, n)
		for i, ev := range events {
			ev.IdempotencyKey = fmt.Sprintf("key-%d", i)
		}
		ns, errs := fireAll(t, bundle.db, events)
		for i := range events {
			if errs[i] != nil || ns[i] != 1 {
				t.Fatalf("keyed fire %d: %d deliveries, %v; want 1 and no error", i, ns[i], errs[i])
			}
		}
		var stored, txs int
		if err := bundle.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT xmin::text) FROM lightbus_event`).Scan(&stored, &txs); err != nil {
			t.Fatal(err)
		}
		if stored != n || txs >= n {
			t.Errorf("%d keyed fires stored %d events in %d transactions; want %d, in fewer transactions", n, stored, txs, n)
		}

		// Repeats of the first 20 (twice each, so some share a batch with
		// each other), 10 with other parameters, 10 new keys: all at once.
		var again []*gateway.Event
		for i := range 20 {
			for range 2 {
				rep := *events[i]
				rep.ID = newEvents(t, 1)[0].ID // a retry is a new request: its id is new
				again = append(again, &rep)
			}
		}
		for i := 20; i < 30; i++ {
			other := newEvents(t, 1)[0]
			other.Params = json.RawMessage(`{"name":"Other"}`)
			other.IdempotencyKey = events[i].IdempotencyKey
			again = append(again, other)
		}
		for i := range 10 {
			fresh := newEvents(t, 1)[0]
			fresh.IdempotencyKey = fmt.Sprintf("fresh-%d", i)
			again = append(again, fresh)
		}
		results := make([]*gateway.FireResult, len(again))
		errs = make([]error, len(again))
		var wg sync.WaitGroup
		for i, ev := range again {
			wg.Go(func() { results[i], errs[i] = bundle.db.FireEvent(ctx, ev, time.Hour) })
		}
		wg.Wait()
		for i, ev := range again {
			switch {
			case i < 40: // repeats
				first := events[i/2]
				if errs[i] != nil || !results[i].Repeat || results[i].ID != first.ID || results[i].Deliveries != 1 {
					t.Errorf("repeat %d of %s: %+v, %v; want a repeat of %s with its 1 delivery", i, ev.IdempotencyKey, results[i], errs[i], first.ID)
				}
			case i < 50: // same key, other parameters
				if gateway.ErrorCode(errs[i]) != gateway.EConflict {
					t.Errorf("other parameters under %s: %+v, %v; want a conflict", ev.IdempotencyKey, results[i], errs[i])
				}
			default: // new keys
				if errs[i] != nil || results[i].Repeat || results[i].ID != ev.ID || results[i].Deliveries != 1 {
					t.Errorf("new key %s: %+v, %v; want a new event with 1 delivery", ev.IdempotencyKey, results[i], errs[i])
				}
			}
		}
		var jobs int
		if err := bundle.pool.QueryRow(ctx, `SELECT count(*) FROM lightbus_event`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if err := bundle.pool.QueryRow(ctx, deliveriesSQL).Scan(&jobs); err != nil {
			t.Fatal(err)
		}
		if stored != n+10 || jobs != n+10 {
			t.Errorf("stored %d events and %d deliveries, want %d of each", stored, jobs, n+10)
		}

		// Outside its window a key is free again: the fire stores a new event.
		late := newEvents(t, 1)[0]
		late.IdempotencyKey = events[0].IdempotencyKey
		res, err := bundle.db.FireEvent(ctx, late, time.Nanosecond)
		if err != nil || res.Repeat || res.ID != late.ID {
			t.Errorf("a key past its window: %+v, %v; want a new event %s", res, err, late.ID)
		}
	})

	// A COMMIT that fails may have stored the batch: fires without a key
	// get the error rather than a retry that could store them twice, and
	// fires with a key are retried alone.
	t.Run("FailedCommitRetriesOnlyKeyedFires", func(t *testing.T) {
		t.Parallel()
		bundle := batched(t)
		ctx := t.Context()
		checkAtCommit(t, bundle)
		slow := newEvents(t, 1)[0]
		slow.Params = json.RawMessage(`{"slow": true}`)
		slowDone := make(chan error, 1)
		go func() {
			_, err := bundle.db.FireEvent(ctx, slow, time.Hour)
			slowDone <- err
		}()
		waitAtCommit(t, bundle) // the slow fire commits; the others gather behind it

		events := newEvents(t, 21)
		events[0].Params = json.RawMessage(`{"refused": true}`)
		for i := 11; i < 21; i++ {
			events[i].IdempotencyKey = fmt.Sprintf("key-%d", i)
		}
		_, errs := fireAll(t, bundle.db, events)
		if err := <-slowDone; err != nil {
			t.Fatalf("the slow fire: %v", err)
		}
		for i, ev := range events {
			var stored int
			if err := bundle.pool.QueryRow(ctx, `SELECT count(*) FROM lightbus_event WHERE id = $1`, ev.ID).Scan(&stored); err != nil {
				t.Fatal(err)
			}
			switch {
			case i < 11: // no key, in the refused batch
				if errs[i] == nil || stored != 0 {
					t.Errorf("fire %d without a key: %v, %d stored; want an error and nothing stored", i, errs[i], stored)
				}
			default:
				if errs[i] != nil || stored != 1 {
					t.Errorf("fire %d with a key: %v, %d stored; want it stored once", i, errs[i], stored)
				}
			}
		}
	})

	// A fire is answered within its own deadline: waiting for a batch, it
	// gives up (nothing of it is stored); in a transaction, that
	// transaction ends by the deadline.
	t.Run("AnsweredWithinItsDeadline", func(t *testing.T) {
		t.Parallel()
		bundle := batched(t)
		ctx := t.Context()
		checkAtCommit(t, bundle)
		fireBy := func(ev *gateway.Event, timeout time.Duration) (time.Duration, error) {
			fctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			start := time.Now()
			_, err := bundle.db.FireEvent(fctx, ev, time.Hour)
			return time.Since(start), err
		}
		// A commit that stalls for 3 s, so that a fire that waits for it
		// (the bug) and one answered by its deadline (200 ms, 150 ms) are
		// told apart by a bound of 1.5 s with room for a busy machine on
		// both sides. (With a 0.5 s stall and bounds of 400 and 300 ms, the
		// working code was 200 ms from failing.)
		const bound = 1500 * time.Millisecond
		stalled := newEvents(t, 1)[0]
		stalled.Params = json.RawMessage(`{"stalled": true}`)
		took, err := fireBy(stalled, 200*time.Millisecond)
		if err == nil || took > bound {
			t.Errorf("a fire whose commit outlasts its deadline: %v after %s; want an error at about 200ms (the commit stalls 3s)", err, took)
		}

		stalledDone := make(chan error, 1)
		go func() {
			_, err := bundle.db.FireEvent(ctx, stalled, time.Hour) // holds the only commit slot for 3 s
			stalledDone <- err
		}()
		waitAtCommit(t, bundle)
		waiting := newEvents(t, 1)[0]
		took, err = fireBy(waiting, 150*time.Millisecond)
		if err == nil || took > bound {
			t.Errorf("a fire waiting for a batch past its deadline: %v after %s; want an error at about 150ms (the batch ahead commits for 3s)", err, took)
		}
		if err := <-stalledDone; err != nil {
			t.Fatalf("the stalled fire: %v", err)
		}
		// Batches commit one at a time, in order: once a fire sent now is
		// stored, so would be the one that gave up, had a batch kept it.
		if _, err := bundle.db.FireEvent(ctx, newEvents(t, 1)[0], time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := bundle.db.GetEvent(ctx, waiting.ID); gateway.ErrorCode(err) != gateway.ENotFound {
			t.Errorf("the fire that gave up: %v, want not found", err)
		}
	})

	t.Run("OneFailureFailsOnlyItself", func(t *testing.T) {
		t.Parallel()
		bundle := batched(t)
		ctx := t.Context()

		events := newEvents(t, 30)
		// A second event with an id already stored fails its insert.
		if _, err := bundle.db.FireEvent(ctx, events[0], time.Hour); err != nil {
			t.Fatal(err)
		}
		dup := *events[0]
		events[0] = &dup
		_, errs := fireAll(t, bundle.db, events)
		if gateway.ErrorCode(errs[0]) != gateway.EConflict {
			t.Errorf("the duplicate fire: %v, want a conflict", errs[0])
		}
		for i := 1; i < len(events); i++ {
			if errs[i] != nil {
				t.Errorf("fire %d failed with its batch: %v", i, errs[i])
			}
		}
		var stored int
		if err := bundle.pool.QueryRow(ctx, `SELECT count(*) FROM lightbus_event`).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored != 30 {
			t.Errorf("stored %d events, want 30 (the first and the 29 others)", stored)
		}
	})

	t.Run("AfterCloseFiresAlone", func(t *testing.T) {
		t.Parallel()
		bundle := batched(t)
		bundle.db.Close()
		_, errs := fireAll(t, bundle.db, newEvents(t, 3))
		for i, err := range errs {
			if err != nil {
				t.Errorf("fire %d after Close: %v", i, err)
			}
		}
	})

	t.Run("CancelledBeforeCommit", func(t *testing.T) {
		t.Parallel()
		bundle := batched(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		ev := newEvents(t, 1)[0]
		if _, err := bundle.db.FireEvent(ctx, ev, time.Hour); err == nil {
			t.Fatal("a fire with a cancelled context succeeded")
		}
		if _, err := bundle.db.GetEvent(t.Context(), ev.ID); gateway.ErrorCode(err) != gateway.ENotFound {
			t.Errorf("the cancelled fire's event: %v, want not found", err)
		}
	})
}

// With no database answering, a fire fails unavailable, alone or in a
// shared transaction: every fire of a batch gets the error (no crash, no
// hang).
func TestFireDatabaseDown(t *testing.T) {
	t.Parallel()
	for _, batching := range []bool{false, true} {
		t.Run(fmt.Sprintf("Batching=%v", batching), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			db, err := postgres.New(pool, nil)
			if err != nil {
				t.Fatal(err)
			}
			if batching {
				db.EnableFireBatching(postgres.FireBatchConfig{Window: 10 * time.Millisecond, MaxSize: 10, MaxInFlight: 1})
			}
			defer db.Close()
			var wg sync.WaitGroup
			errs := make([]error, 3)
			for i := range errs {
				ev, err := gateway.NewEvent("customers", "new_customer", json.RawMessage(`{}`))
				if err != nil {
					t.Fatal(err)
				}
				wg.Go(func() { _, errs[i] = db.FireEvent(ctx, ev, time.Hour) })
			}
			wg.Wait()
			for i, err := range errs {
				if gateway.ErrorCode(err) != gateway.EUnavailable {
					t.Errorf("fire %d with the database down: %v, want unavailable", i, err)
				}
			}
		})
	}
}

// checkAtCommit adds a deferred trigger to bundle's database: at COMMIT it
// sleeps 0.5 s for an event whose parameters say "slow", 3 s for one that
// says "stalled", and refuses one whose parameters say "refused".
func checkAtCommit(t *testing.T, bundle *testBundle) {
	t.Helper()
	for _, sql := range []string{
		`CREATE FUNCTION check_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.params::text LIKE '%"slow"%' THEN PERFORM pg_sleep(0.5); END IF;
			IF NEW.params::text LIKE '%"stalled"%' THEN PERFORM pg_sleep(3); END IF;
			IF NEW.params::text LIKE '%"refused"%' THEN RAISE EXCEPTION 'refused at commit'; END IF;
			RETURN NULL;
		END $$`,
		`CREATE CONSTRAINT TRIGGER check_at_commit AFTER INSERT ON lightbus_event
		DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION check_at_commit()`,
	} {
		if _, err := bundle.pool.Exec(t.Context(), sql); err != nil {
			t.Fatal(err)
		}
	}
}

// waitAtCommit waits until a transaction of bundle's database sleeps in
// checkAtCommit's trigger: a slow fire is committing.
func waitAtCommit(t *testing.T, bundle *testBundle) {
	t.Helper()
	testwait.For(t, 30*time.Second, "a fire to sleep at COMMIT", func() bool {
		var sleeping bool
		err := bundle.pool.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event = 'PgSleep')`).Scan(&sleeping)
		if err != nil {
			t.Fatal(err)
		}
		return sleeping
	})
}

// deliveriesSQL counts the deliveries queued: delivery jobs and the events
// of delivery batches.
var deliveriesSQL = `SELECT COALESCE(sum(CASE WHEN kind = '` + dispatch.DeliveryBatchKind + `' THEN jsonb_array_length(args->'event_ids') ELSE 1 END), 0)
	FROM river_job WHERE kind IN ('` + dispatch.DeliveryKind + `', '` + dispatch.DeliveryBatchKind + `')`
