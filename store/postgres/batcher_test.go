package postgres_test

import (
	"context"
	"encoding/json"
	"github.com/jackc/pgx/v5/pgxpool"
	"sync"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
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
		if err := bundle.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = $1`, gateway.DeliveryKind).Scan(&jobs); err != nil {
			t.Fatal(err)
		}
		if stored != 100 || jobs != 100 {
			t.Errorf("stored %d events and %d deliveries, want 100 of each", stored, jobs)
		}
		if txs >= 100 {
			t.Errorf("100 concurrent fires committed in %d transactions: none was shared", txs)
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

func TestFireBatchingDatabaseDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	// No database answers: the shared transaction fails before anything is
	// staged, and every fire gets the error (no crash, no hang).
	pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	db, err := postgres.New(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	db.EnableFireBatching(postgres.FireBatchConfig{Window: 10 * time.Millisecond, MaxSize: 10, MaxInFlight: 1})
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
}
