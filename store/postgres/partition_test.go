package postgres_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/store/postgres"
)

// uuidAt is a UUIDv7 of time at, random but for its time.
func uuidAt(t testing.TB, at time.Time) string {
	t.Helper()
	u, err := uuid.NewV7()
	if err != nil {
		t.Fatal(err)
	}
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(at.UnixMilli()))
	copy(u[:6], ms[2:])
	return u.String()
}

// eventAt is an event of time at, with idempotency key key ("" for none).
func eventAt(t testing.TB, api, name string, at time.Time, key string) *gateway.Event {
	t.Helper()
	ev, err := gateway.NewEvent(api, name, json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	ev.ID, ev.CreatedAt, ev.IdempotencyKey = uuidAt(t, at), at.UTC().Truncate(time.Microsecond), key
	return ev
}

// partitionOf is the name of the partition holding event id.
func partitionOf(ctx context.Context, t testing.TB, bundle *testBundle, id string) string {
	t.Helper()
	var name string
	if err := bundle.pool.QueryRow(ctx, `SELECT tableoid::regclass::text FROM lightbus_event WHERE id = $1`, id).Scan(&name); err != nil {
		t.Fatalf("partition of %s: %v", id, err)
	}
	return name
}

// futureDay is a UTC midnight days ahead: after the first partition, which
// ends by the day after the migration.
func futureDay(days int) time.Time {
	return time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, days)
}

// Partitions are made for the span of now and those ahead, once; an event
// lands in the partition of its id's time, at the boundary too; an event
// fired where no partition was lands in the DEFAULT partition and moves to
// the partition made for it later.
func TestEnsurePartitions(t *testing.T) {
	t.Parallel()
	ctx, bundle := setup(t)
	day := futureDay(30)

	early := eventAt(t, "shop", "placed", day.Add(26*time.Hour), "")
	if _, err := bundle.db.FireEvent(ctx, early, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := partitionOf(ctx, t, bundle, early.ID); got != "lightbus_event_default" {
		t.Fatalf("an event without a partition is in %s, want the DEFAULT partition", got)
	}

	n, err := bundle.db.EnsurePartitions(ctx, day.Add(23*time.Hour+59*time.Minute), 24*time.Hour, 2)
	if err != nil || n != 3 {
		t.Fatalf("EnsurePartitions = %d, %v; want 3 partitions", n, err)
	}
	if n, err := bundle.db.EnsurePartitions(ctx, day.Add(time.Hour), 24*time.Hour, 2); err != nil || n != 0 {
		t.Fatalf("EnsurePartitions again = %d, %v; want none", n, err)
	}
	parts, err := bundle.db.EventPartitions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range parts {
		if !p.From.IsZero() && !p.From.Before(day) {
			names = append(names, fmt.Sprintf("%s %s..%s", p.Name, p.From.Format(time.DateOnly), p.To.Format(time.DateOnly)))
		}
	}
	d := func(i int) string { return day.AddDate(0, 0, i).Format(time.DateOnly) }
	p := func(i int) string { return "lightbus_event_p" + day.AddDate(0, 0, i).Format("20060102") + "t000000" }
	want := []string{p(0) + " " + d(0) + ".." + d(1), p(1) + " " + d(1) + ".." + d(2), p(2) + " " + d(2) + ".." + d(3)}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("partitions %q, want %q", names, want)
	}
	if got := partitionOf(ctx, t, bundle, early.ID); got != p(1) {
		t.Fatalf("the event of the DEFAULT partition is in %s after its partition was made, want %s", got, p(1))
	}

	// The boundary: the last millisecond of a day and the first of the next.
	last := eventAt(t, "shop", "placed", day.Add(24*time.Hour-time.Millisecond), "")
	first := eventAt(t, "shop", "placed", day.Add(24*time.Hour), "")
	if _, err := bundle.db.FireEvents(ctx, []*gateway.Event{last, first}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if a, b := partitionOf(ctx, t, bundle, last.ID), partitionOf(ctx, t, bundle, first.ID); a != p(0) || b != p(1) {
		t.Fatalf("events either side of midnight are in %s and %s, want %s and %s", a, b, p(0), p(1))
	}

	// Another width fills only what the partitions there do not cover.
	n, err = bundle.db.EnsurePartitions(ctx, day.AddDate(0, 0, 2).Add(12*time.Hour), 12*time.Hour, 3)
	if err != nil || n != 3 {
		t.Fatalf("EnsurePartitions of 12h over days = %d, %v; want the 3 half days after them", n, err)
	}
}

// Retention drops a partition wholly before the cutoff with the keys of its
// events, keeps one holding an event with an unfinished or dead delivery
// (or one a batch holds) while PruneEvents deletes the others around it,
// drops it once that delivery is done, and never waits long for its lock.
func TestDropEventPartitions(t *testing.T) {
	t.Parallel()
	ctx, bundle := setup(t)
	register(ctx, t, bundle.db, registration("m1", "mail", nil,
		gateway.ListenerDeclaration{Name: "all", Events: []string{"shop.*"}, Path: "/e"}))
	day := futureDay(40)
	if _, err := bundle.db.EnsurePartitions(ctx, day, 24*time.Hour, 3); err != nil {
		t.Fatal(err)
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := bundle.pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	fireAt := func(days int, hours time.Duration, key string) *gateway.Event {
		t.Helper()
		ev := eventAt(t, "shop", "placed", day.AddDate(0, 0, days).Add(hours), key)
		if _, err := bundle.db.FireEvent(ctx, ev, time.Hour); err != nil {
			t.Fatal(err)
		}
		return ev
	}
	p := func(i int) string { return "lightbus_event_p" + day.AddDate(0, 0, i).Format("20060102") + "t000000" }
	done0 := fireAt(0, time.Hour, "k0")
	done1 := fireAt(1, time.Hour, "")
	pending1 := fireAt(1, 2*time.Hour, "")
	dead2 := fireAt(2, time.Hour, "")
	batched := []*gateway.Event{eventAt(t, "shop", "placed", day.AddDate(0, 0, 3).Add(time.Hour), ""),
		eventAt(t, "shop", "placed", day.AddDate(0, 0, 3).Add(2*time.Hour), "")}
	if _, err := bundle.db.FireEvents(ctx, batched, time.Hour); err != nil {
		t.Fatal(err)
	}
	exec(`UPDATE river_job SET state = 'completed', finalized_at = now() WHERE args->>'event_id' = ANY($1)`,
		[]string{done0.ID, done1.ID})
	exec(`UPDATE river_job SET state = 'discarded', finalized_at = now() WHERE args->>'event_id' = $1`, dead2.ID)

	cutoff := day.AddDate(0, 0, 4)
	got, err := bundle.db.DropEventPartitions(ctx, cutoff, false)
	if err != nil {
		t.Fatal(err)
	}
	has := func(names []string, name string) bool {
		for _, n := range names {
			if n == name {
				return true
			}
		}
		return false
	}
	if !has(got.Dropped, p(0)) || !has(got.Kept, p(1)) || !has(got.Kept, p(2)) || !has(got.Kept, p(3)) || len(got.Busy) > 0 {
		t.Fatalf("DropEventPartitions = %+v; want %s dropped, %s (pending), %s (dead), %s (batch) kept", got, p(0), p(1), p(2), p(3))
	}
	var keys int
	if err := bundle.pool.QueryRow(ctx, `SELECT count(*) FROM lightbus_event_key WHERE key = 'k0'`).Scan(&keys); err != nil || keys != 0 {
		t.Fatalf("keys of the dropped partition's events left: %d, %v", keys, err)
	}
	// The partitions kept lose their other events in batches.
	if n, err := bundle.db.PruneEvents(ctx, cutoff, 100, false); err != nil || n != 1 {
		t.Fatalf("PruneEvents around the kept events = %d, %v; want the delivered event of %s", n, err, p(1))
	}
	if _, err := bundle.db.GetEvent(ctx, pending1.ID); err != nil {
		t.Fatalf("the pending event: %v", err)
	}

	// Delivered, or a dead delivery redriven and delivered: then dropped.
	exec(`UPDATE river_job SET state = 'completed', finalized_at = now() WHERE args->>'event_id' = ANY($1)`,
		[]string{pending1.ID, dead2.ID})
	got, err = bundle.db.DropEventPartitions(ctx, cutoff, false)
	if err != nil || !has(got.Dropped, p(1)) || !has(got.Dropped, p(2)) || !has(got.Kept, p(3)) {
		t.Fatalf("DropEventPartitions after delivery = %+v, %v; want %s and %s dropped, %s kept", got, err, p(1), p(2), p(3))
	}
	// Pruning undelivered events too still keeps a batch's.
	got, err = bundle.db.DropEventPartitions(ctx, cutoff, true)
	if err != nil || !has(got.Kept, p(3)) {
		t.Fatalf("DropEventPartitions undelivered = %+v, %v; want %s kept for its batch", got, err, p(3))
	}
	exec(`UPDATE river_job SET state = 'completed', finalized_at = now() WHERE kind = 'lightbus.delivery_batch'`)

	// A transaction reading events holds the drop off; the drop gives up
	// after PartitionLockTimeout rather than queue fires behind it.
	tx, err := bundle.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT count(*) FROM lightbus_event`); err != nil {
		t.Fatal(err)
	}
	bounded, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	got, err = bundle.db.DropEventPartitions(bounded, cutoff, false)
	if err != nil || !has(got.Busy, p(3)) || time.Since(start) > postgres.PartitionLockTimeout+4*time.Second {
		t.Fatalf("DropEventPartitions behind a reader = %+v, %v after %s; want %s busy within the lock timeout", got, err, time.Since(start), p(3))
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	got, err = bundle.db.DropEventPartitions(ctx, cutoff, false)
	if err != nil || !has(got.Dropped, p(3)) {
		t.Fatalf("DropEventPartitions after the reader = %+v, %v; want %s dropped", got, err, p(3))
	}
}

// An idempotency key is one event's across partitions: a repeat whose id
// falls in the next partition is answered with the first event, on every
// fire path.
func TestIdempotencyAcrossPartitions(t *testing.T) {
	t.Parallel()
	ctx, bundle := setup(t)
	day := futureDay(50)
	if _, err := bundle.db.EnsurePartitions(ctx, day, 24*time.Hour, 1); err != nil {
		t.Fatal(err)
	}
	before, after := day.Add(24*time.Hour-time.Millisecond), day.Add(24*time.Hour+time.Millisecond)
	paths := map[string]func(*gateway.Event) (*gateway.FireResult, error){
		"alone": func(ev *gateway.Event) (*gateway.FireResult, error) {
			return bundle.db.FireEvent(ctx, ev, 48*time.Hour)
		},
		"few": func(ev *gateway.Event) (*gateway.FireResult, error) {
			other := eventAt(t, "shop", "other", after, "")
			res, err := bundle.db.FireEvents(ctx, []*gateway.Event{other, ev}, 48*time.Hour)
			if err != nil {
				return nil, err
			}
			return res[1], nil
		},
		"many": func(ev *gateway.Event) (*gateway.FireResult, error) {
			evs := []*gateway.Event{ev}
			for range 20 {
				evs = append(evs, eventAt(t, "shop", "other", after, ""))
			}
			res, err := bundle.db.FireEvents(ctx, evs, 48*time.Hour)
			if err != nil {
				return nil, err
			}
			return res[0], nil
		},
	}
	for name, firePath := range paths {
		for repeatName, repeatPath := range paths {
			key := name + "-" + repeatName
			first := eventAt(t, "shop", "placed", before, key)
			res, err := firePath(first)
			if err != nil || res.Repeat || res.ID != first.ID {
				t.Fatalf("%s: first fire = %+v, %v", key, res, err)
			}
			again := eventAt(t, "shop", "placed", after, key)
			res, err = repeatPath(again)
			if err != nil || !res.Repeat || res.ID != first.ID {
				t.Fatalf("%s: repeat in the next partition = %+v, %v; want a repeat of %s", key, res, err, first.ID)
			}
			var n int
			if err := bundle.pool.QueryRow(ctx, `SELECT count(*) FROM lightbus_event WHERE idempotency_key = $1`, key).Scan(&n); err != nil || n != 1 {
				t.Fatalf("%s: %d events hold the key, %v; want 1", key, n, err)
			}
		}
	}
}

// The two forms of what retention keeps, an event's (pruning in batches)
// and a range's (dropping a partition), agree on every event: kept for a
// pending, retryable, running or dead delivery job unless undelivered, for
// an unfinished or dead batch always, not for finished deliveries.
func TestKeptInRangeAgrees(t *testing.T) {
	t.Parallel()
	ctx, bundle := setup(t)
	register(ctx, t, bundle.db, registration("m1", "mail", nil,
		gateway.ListenerDeclaration{Name: "all", Events: []string{"shop.*"}, Path: "/e"}))
	var evs []*gateway.Event
	for _, state := range []string{"available", "retryable", "running", "discarded", "completed", "cancelled"} {
		ev, _ := fire(ctx, t, bundle.db, "shop", "placed", `{}`)
		if _, err := bundle.pool.Exec(ctx, `UPDATE river_job SET state = $2::text::river_job_state,
			finalized_at = CASE WHEN $2::text IN ('discarded', 'completed', 'cancelled') THEN now() END WHERE args->>'event_id' = $1`, ev.ID, state); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	for _, state := range []string{"available", "completed"} {
		batch := []*gateway.Event{eventAt(t, "shop", "placed", time.Now(), ""), eventAt(t, "shop", "placed", time.Now(), "")}
		if _, err := bundle.db.FireEvents(ctx, batch, time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := bundle.pool.Exec(ctx, `UPDATE river_job SET state = $2::text::river_job_state,
			finalized_at = CASE WHEN $2::text = 'completed' THEN now() END WHERE args->'event_ids' ? $1`, batch[0].ID, state); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, batch...)
	}
	evs = append(evs, eventAt(t, "none", "unsubscribed", time.Now(), ""))
	if _, err := bundle.db.FireEvent(ctx, evs[len(evs)-1], time.Hour); err != nil {
		t.Fatal(err)
	}
	kept := 0
	for _, undelivered := range []bool{false, true} {
		for _, ev := range evs {
			id := uuid.MustParse(ev.ID)
			next := id
			for i := 15; i >= 0; i-- {
				if next[i]++; next[i] != 0 {
					break
				}
			}
			var one, inRange bool
			if err := bundle.pool.QueryRow(ctx, `SELECT `+postgres.EventKept("$1::uuid", "$2::boolean"), ev.ID, undelivered).Scan(&one); err != nil {
				t.Fatal(err)
			}
			if err := bundle.pool.QueryRow(ctx, postgres.KeptInRangeSQL, ev.ID, next.String(), undelivered).Scan(&inRange); err != nil {
				t.Fatal(err)
			}
			if one != inRange {
				t.Errorf("event %s (undelivered %t): kept %t by itself, %t in its range", ev.ID, undelivered, one, inRange)
			}
			if one {
				kept++
			}
		}
	}
	// 4 delivery jobs and 2 batched events without undelivered, the 2 with it.
	if kept != 8 {
		t.Fatalf("%d events kept in both runs, want 6 + 2", kept)
	}
}
