package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/testwait"
	"github.com/lightbus-go/lightbus/store/postgres"
)

// streamReader reads a stream from a position, as a gateway's stream
// does: each read returns the events after the position and moves it.
type streamReader func(ctx context.Context, t *testing.T) []string

// xminReader reads with the store's StreamEvents.
func xminReader(db *postgres.DB, f gateway.EventFilter, from gateway.StreamCursor) streamReader {
	pos := from
	return func(ctx context.Context, t *testing.T) []string {
		t.Helper()
		evs, next, err := db.StreamEvents(ctx, pos, f, 7) // a small batch: several reads per drain
		if err != nil {
			t.Fatalf("StreamEvents: %v", err)
		}
		if next.After(pos) {
			pos = next
		}
		ids := make([]string, len(evs))
		for i, ev := range evs {
			ids[i] = ev.ID
		}
		return ids
	}
}

// naiveReader reads events whose id is greater than the last one read:
// what a stream ordered by UUIDv7 ids alone would do.
func naiveReader(pool *pgxpool.Pool) streamReader {
	last := "00000000-0000-0000-0000-000000000000"
	return func(ctx context.Context, t *testing.T) []string {
		t.Helper()
		rows, _ := pool.Query(ctx, `SELECT id::text FROM lightbus_event WHERE id > $1 ORDER BY id LIMIT 7`, last)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("naive read: %v", err)
		}
		if len(ids) > 0 {
			last = ids[len(ids)-1]
		}
		return ids
	}
}

// readUntil reads until it has n ids or a generous deadline passes: a
// transaction of any database of the server (a parallel test's) may hold
// the horizon back for a moment.
func readUntil(ctx context.Context, t *testing.T, read streamReader, n int) []string {
	t.Helper()
	var all []string
	testwait.For(t, 30*time.Second, fmt.Sprintf("%d events read", n), func() bool {
		all = append(all, drain(ctx, t, read)...)
		return len(all) >= n
	})
	return append(all, drain(ctx, t, read)...) // and no more
}

// drain reads until a read returns nothing.
func drain(ctx context.Context, t *testing.T, read streamReader) []string {
	var all []string
	for {
		ids := read(ctx, t)
		if len(ids) == 0 {
			return all
		}
		all = append(all, ids...)
	}
}

// outOfOrder stores an event in a transaction held open while two more
// events are fired and committed after it, reading the stream before and
// after it commits. It returns the ids read, and the three events' ids in
// the order they were made.
func outOfOrder(ctx context.Context, t *testing.T, bundle *testBundle, read streamReader, naive bool) (got, made []string) {
	t.Helper()
	slow, err := gateway.NewEvent("shop", "order_placed", json.RawMessage(`{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	tx, err := bundle.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO lightbus_event (id, api, name, params, created_at) VALUES ($1, $2, $3, $4, $5)`,
		slow.ID, slow.API, slow.Name, string(slow.Params), slow.CreatedAt); err != nil {
		t.Fatal(err)
	}
	b, _ := fire(ctx, t, bundle.db, "shop", "order_placed", `{"n":2}`)
	c, _ := fire(ctx, t, bundle.db, "shop", "order_placed", `{"n":3}`)
	if naive {
		got = readUntil(ctx, t, read, 2)
	} else {
		got = drain(ctx, t, read) // nothing, or a gap: the slow event is not committed
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if naive {
		got = append(got, drain(ctx, t, read)...) // nothing holds a naive read back
	} else {
		got = append(got, readUntil(ctx, t, read, 3-len(got))...)
	}
	return got, []string{slow.ID, b.ID, c.ID}
}

func TestStreamNoGap(t *testing.T) {
	t.Parallel()

	t.Run("TransactionCommittingLate", func(t *testing.T) {
		t.Parallel()
		ctx, bundle := setup(t)
		head, err := bundle.db.StreamHead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got, made := outOfOrder(ctx, t, bundle, xminReader(bundle.db, gateway.EventFilter{}, head), false)
		// The slow transaction's event first: it holds the lowest xid.
		if fmt.Sprint(got) != fmt.Sprint(made) {
			t.Fatalf("stream read %v, want each of %v once, in transaction order", got, made)
		}
	})

	// The same scenario read by id alone loses the event committed late:
	// the guarantee above is not one that any ordering gives.
	t.Run("NaiveIDCursorLosesIt", func(t *testing.T) {
		t.Parallel()
		ctx, bundle := setup(t)
		got, made := outOfOrder(ctx, t, bundle, naiveReader(bundle.pool), true)
		if fmt.Sprint(got) != fmt.Sprint(made[1:]) {
			t.Fatalf("naive read %v, want %v (the slow event %s missed)", got, made[1:], made[0])
		}
	})

	// Fires alone, in group commits, in batches (by INSERT and by COPY),
	// and a rolled-back transaction, all while a reader follows: it reads
	// every committed event once and nothing else.
	t.Run("ConcurrentFirePaths", func(t *testing.T) {
		t.Parallel()
		ctx, bundle := setup(t)
		bundle.db.EnableFireBatching(postgres.FireBatchConfig{Window: time.Millisecond, MaxSize: 16, MaxInFlight: 2})
		head, err := bundle.db.StreamHead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		read := xminReader(bundle.db, gateway.EventFilter{}, head)

		var mu sync.Mutex
		want := map[string]bool{}
		stored := func(ids ...string) {
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				want[id] = true
			}
		}
		var wg sync.WaitGroup
		for g := range 6 {
			wg.Go(func() {
				for i := range 20 {
					var evs []*gateway.Event
					n := 1
					switch g % 3 {
					case 1:
						n = 3 // a batch by INSERTs
					case 2:
						n = 20 // a batch by COPY
					}
					for j := range n {
						ev, err := gateway.NewEvent("shop", "order_placed", json.RawMessage(fmt.Sprintf(`{"g":%d,"i":%d,"j":%d}`, g, i, j)))
						if err != nil {
							t.Error(err)
							return
						}
						evs = append(evs, ev)
					}
					if n == 1 {
						if _, err := bundle.db.FireEvent(ctx, evs[0], time.Hour); err != nil {
							t.Error(err)
							return
						}
						stored(evs[0].ID)
						continue
					}
					if _, err := bundle.db.FireEvents(ctx, evs, time.Hour); err != nil {
						t.Error(err)
						return
					}
					for _, ev := range evs {
						stored(ev.ID)
					}
				}
			})
		}
		// A rolled-back event is never read.
		tx, err := bundle.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO lightbus_event (id, api, name, params) VALUES (gen_random_uuid(), 'shop', 'order_placed', '{}')`); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		seen := map[string]int{}
		var order []string
		for following := true; following; {
			select {
			case <-done:
				following = false
			default:
			}
			ids := drain(ctx, t, read)
			if !following {
				_ = tx.Rollback(ctx)
				ids = append(ids, readUntil(ctx, t, read, len(want)-len(order)-len(ids))...)
			}
			for _, id := range ids {
				seen[id]++
				order = append(order, id)
			}
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("event %s read %d times", id, n)
			}
			if !want[id] {
				t.Errorf("event %s read but never fired", id)
			}
		}
		for id := range want {
			if seen[id] == 0 {
				t.Errorf("event %s fired but not read", id)
			}
		}
		if len(want) != 6/3*20*(1+3+20) {
			t.Errorf("fired %d events, want %d", len(want), 6/3*20*(1+3+20))
		}
	})
}
