package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/store/postgres"
)

// A fire stores its event and queues its deliveries in one transaction, on
// every path a fire can take: alone, with an idempotency key, group-committed
// with other fires, and as a batch. These tests hold that transaction at
// COMMIT with deferred triggers, so they fail if the deliveries are queued
// in a statement after the event's COMMIT or on another connection.
func TestFireIsOneTransaction(t *testing.T) {
	t.Parallel()

	type firer func(ctx context.Context, db *postgres.DB, ev *gateway.Event) error
	paths := map[string]struct {
		opts  func(db *postgres.DB)
		fire  firer
		keyed bool
	}{
		"Alone": {fire: fireOne},
		"Keyed": {fire: fireOne, keyed: true},
		"GroupCommitted": {fire: fireOne, opts: func(db *postgres.DB) {
			db.EnableFireBatching(postgres.FireBatchConfig{Window: time.Millisecond, MaxSize: 8, MaxInFlight: 2, Timeout: 10 * time.Second})
		}},
		"Batch": {fire: func(ctx context.Context, db *postgres.DB, ev *gateway.Event) error {
			other, _ := gateway.NewEvent("shop", "order_placed", json.RawMessage(`{}`))
			_, err := db.FireEvents(ctx, []*gateway.Event{other, ev}, time.Hour)
			return err
		}},
		// 16 events: stored by COPY, their deliveries inserted by River
		// (fewer are each stored with its deliveries by one statement).
		"LargeBatch": {fire: func(ctx context.Context, db *postgres.DB, ev *gateway.Event) error {
			evs := []*gateway.Event{ev}
			for range 15 {
				other, _ := gateway.NewEvent("shop", "order_placed", json.RawMessage(`{}`))
				evs = append(evs, other)
			}
			_, err := db.FireEvents(ctx, evs, time.Hour)
			return err
		}},
	}
	for name, path := range paths {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx, bundle := setup(t)
			if path.opts != nil {
				path.opts(bundle.db)
				t.Cleanup(bundle.db.Close)
			}
			register(ctx, t, bundle.db, registration("w1", "billing", nil,
				gateway.ListenerDeclaration{Name: "charge", Events: []string{"shop.*"}, Path: "/charge"}))
			holdAtCommit(t, bundle)
			newEvent := func(params string) *gateway.Event {
				ev, err := gateway.NewEvent("shop", "order_placed", json.RawMessage(params))
				if err != nil {
					t.Fatal(err)
				}
				if path.keyed {
					ev.IdempotencyKey = "key-" + ev.ID
				}
				return ev
			}
			// stored counts ev's row and its deliveries, from a connection
			// of its own.
			stored := func(ev *gateway.Event) (events, jobs int) {
				t.Helper()
				err := bundle.pool.QueryRow(ctx, `SELECT
					(SELECT count(*) FROM lightbus_event WHERE id = $1),
					(SELECT count(*) FROM river_job WHERE args->>'event_id' = $1::text OR args->'event_ids' @> jsonb_build_array($1::text))`, ev.ID).Scan(&events, &jobs)
				if err != nil {
					t.Fatal(err)
				}
				return events, jobs
			}

			t.Run("FailsAtCommit", func(t *testing.T) {
				ev := newEvent(`{"refuse": "event"}`)
				if err := path.fire(ctx, bundle.db, ev); err == nil {
					t.Fatal("a fire whose COMMIT fails succeeded")
				}
				if events, jobs := stored(ev); events != 0 || jobs != 0 {
					t.Fatalf("after a failed COMMIT: %d events, %d deliveries stored, want none", events, jobs)
				}
			})

			t.Run("FailsAfterDeliveriesQueued", func(t *testing.T) {
				ev := newEvent(`{"refuse": "deliveries"}`)
				if err := path.fire(ctx, bundle.db, ev); err == nil {
					t.Fatal("a fire whose deliveries are refused at COMMIT succeeded")
				}
				if events, jobs := stored(ev); events != 0 || jobs != 0 {
					t.Fatalf("after a COMMIT refused by a delivery: %d events, %d deliveries stored, want none", events, jobs)
				}
			})

			t.Run("VisibleOnlyInside", func(t *testing.T) {
				ev := newEvent(`{"probe": true}`)
				fired := make(chan error, 1)
				go func() { fired <- path.fire(ctx, bundle.db, ev) }()

				// The fire's transaction sleeps at COMMIT once the probe
				// has counted, inside it, the deliveries it sees.
				deadline := time.Now().Add(30 * time.Second)
				for {
					var sleeping bool
					if err := bundle.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
						WHERE datname = current_database() AND wait_event = 'PgSleep')`).Scan(&sleeping); err != nil {
						t.Fatal(err)
					}
					if sleeping {
						break
					}
					select {
					case err := <-fired:
						t.Fatalf("the fire ended before COMMIT was held: %v", err)
					default:
					}
					if time.Now().After(deadline) {
						t.Fatal("the fire's transaction never reached COMMIT")
					}
					time.Sleep(5 * time.Millisecond)
				}
				if events, jobs := stored(ev); events != 0 || jobs != 0 {
					t.Errorf("before COMMIT another connection sees %d events and %d deliveries, want none", events, jobs)
				}
				if err := <-fired; err != nil {
					t.Fatal(err)
				}
				var seenInside int
				if err := bundle.pool.QueryRow(ctx, `SELECT jobs_seen FROM fire_probe WHERE event_id = $1`, ev.ID).Scan(&seenInside); err != nil {
					t.Fatalf("the probe did not run in the fire's transaction: %v", err)
				}
				if seenInside != 1 {
					t.Errorf("inside the fire's transaction, at COMMIT, %d deliveries were visible, want 1", seenInside)
				}
				if events, jobs := stored(ev); events != 1 || jobs != 1 {
					t.Errorf("after COMMIT: %d events, %d deliveries, want 1 and 1", events, jobs)
				}
			})
		})
	}
}

func fireOne(ctx context.Context, db *postgres.DB, ev *gateway.Event) error {
	_, err := db.FireEvent(ctx, ev, time.Hour)
	return err
}

// holdAtCommit adds deferred triggers to bundle's database that act at a
// fire's COMMIT, inside its transaction: an event whose parameters say
// "refuse": "event" is refused; a delivery of an event that says "refuse":
// "deliveries" is refused; for an event that says "probe", the deliveries
// the transaction sees are counted into fire_probe, then the transaction
// sleeps a second so that another connection can look meanwhile.
func holdAtCommit(t *testing.T, bundle *testBundle) {
	t.Helper()
	for _, sql := range []string{
		`CREATE TABLE fire_probe (event_id uuid PRIMARY KEY, jobs_seen int NOT NULL)`,
		`CREATE FUNCTION hold_event_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.params->>'refuse' = 'event' THEN RAISE EXCEPTION 'event refused at commit'; END IF;
			IF NEW.params->>'probe' IS NOT NULL THEN
				INSERT INTO fire_probe SELECT NEW.id, count(*) FROM river_job
					WHERE args->>'event_id' = NEW.id::text OR args->'event_ids' @> jsonb_build_array(NEW.id::text);
				PERFORM pg_sleep(1);
			END IF;
			RETURN NULL;
		END $$`,
		`CREATE CONSTRAINT TRIGGER hold_event_at_commit AFTER INSERT ON lightbus_event
		DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hold_event_at_commit()`,
		`CREATE FUNCTION refuse_delivery_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF EXISTS (SELECT 1 FROM lightbus_event e WHERE (e.id::text = NEW.args->>'event_id' OR NEW.args->'event_ids' @> jsonb_build_array(e.id::text))
				AND e.params->>'refuse' = 'deliveries') THEN
				RAISE EXCEPTION 'delivery refused at commit';
			END IF;
			RETURN NULL;
		END $$`,
		// The delivery's trigger is created after the event's, so it runs
		// after it at COMMIT: the event is already checked.
		`CREATE CONSTRAINT TRIGGER refuse_delivery_at_commit AFTER INSERT ON river_job
		DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_delivery_at_commit()`,
	} {
		if _, err := bundle.pool.Exec(t.Context(), sql); err != nil {
			t.Fatal(fmt.Errorf("%s: %w", sql, err))
		}
	}
}
