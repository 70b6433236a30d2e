package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/gateway/dispatch"
	"github.com/lightbus-go/lightbus/internal/testwait"
	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

// batchTestRetry is, by group, when a failed attempt of the tests' workers
// is retried: "later" in an hour (retryable), "soon" within River's
// scheduler interval (available at once, to run at that time: not before
// the test reads it); group "dead" has max_attempts 1.
var batchTestRetry = map[string]time.Duration{"later": time.Hour, "soon": riverSchedulerInterval - 500*time.Millisecond, "dead": time.Hour}

// batchTestOutcome is the outcome the tests' workers record for a failed
// attempt.
var batchTestOutcome = dispatch.AttemptOutcome{Attempt: 1, Status: 503, Kind: dispatch.OutcomeStatus}

const batchTestError = "listener answered 503: busy"

// failingDeliverer fails every attempt of a delivery job as the Deliverer
// does: it records the attempt's outcome and picks the next retry.
type failingDeliverer struct {
	river.WorkerDefaults[dispatch.DeliveryArgs]
}

func (failingDeliverer) Work(ctx context.Context, job *river.Job[dispatch.DeliveryArgs]) error {
	if err := river.RecordOutput(ctx, dispatch.AppendOutcome(job.Metadata, batchTestOutcome)); err != nil {
		return err
	}
	return errors.New(batchTestError)
}

func (failingDeliverer) NextRetry(job *river.Job[dispatch.DeliveryArgs]) time.Time {
	return time.Now().Add(max(batchTestRetry[job.Args.Listener], time.Millisecond))
}

// halfBatchDeliverer "delivers" a batch's first event and fails the others
// as the BatchDeliverer does, through CompleteBatch.
type halfBatchDeliverer struct {
	river.WorkerDefaults[dispatch.DeliveryBatchArgs]
	db *DB
}

func (w halfBatchDeliverer) Work(ctx context.Context, job *river.Job[dispatch.DeliveryBatchArgs]) error {
	var failed []dispatch.FailedDelivery
	for _, id := range job.Args.EventIDs[1:] {
		failed = append(failed, dispatch.FailedDelivery{
			Args:        dispatch.DeliveryArgs{EventID: id, Service: job.Args.Service, Listener: job.Args.Listener, TimeoutMS: job.Args.TimeoutMS},
			Attempt:     job.Attempt,
			MaxAttempts: job.Args.MaxAttempts,
			At:          time.Now(),
			Error:       batchTestError,
			Output:      dispatch.AttemptOutcomes{Attempts: []dispatch.AttemptOutcome{batchTestOutcome}},
			RetryAt:     time.Now().Add(max(batchTestRetry[job.Args.Listener], time.Millisecond)),
			Dead:        job.Attempt >= job.Args.MaxAttempts,
		})
	}
	return w.db.CompleteBatch(ctx, job, failed, nil)
}

// batchTestGroups makes the groups of batchTestRetry, subscribed to api.ev.
func batchTestGroups(ctx context.Context, t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	if _, err := pool.Exec(ctx, `
		INSERT INTO lightbus_listener (service, name, secret, max_attempts, timeout_ms) VALUES
			('svc', 'later', 's', 7, 2500), ('svc', 'soon', 's', 0, 0), ('svc', 'dead', 's', 1, 0);
		INSERT INTO lightbus_subscription (api, event, service, listener) VALUES
			('api', 'ev', 'svc', 'later'), ('api', 'ev', 'svc', 'soon'), ('api', 'ev', 'svc', 'dead')`); err != nil {
		t.Fatal(err)
	}
}

func newTestEvents(t *testing.T, n int) []*gateway.Event {
	t.Helper()
	evs := make([]*gateway.Event, n)
	for i := range evs {
		ev, err := gateway.NewEvent("api", "ev", json.RawMessage(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		evs[i] = ev
	}
	return evs
}

// TestFailedDeliveryAsRiverLeavesIt checks that a delivery that failed in
// a batch is queued as the very row River leaves after a delivery job's
// failed first attempt, column by column: retryable (retry in an hour),
// available (retry at once) and discarded (its last attempt). The id and
// the times, taken at different moments, are compared for being set and
// close.
func TestFailedDeliveryAsRiverLeavesIt(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	db, err := New(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	batchTestGroups(ctx, t, pool)

	workers := river.NewWorkers()
	river.AddWorker(workers, failingDeliverer{})
	river.AddWorker(workers, halfBatchDeliverer{db: db})
	rc, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		FetchCooldown:     10 * time.Millisecond,
		FetchPollInterval: 50 * time.Millisecond,
		Queues:            map[string]river.QueueConfig{dispatch.QueueDelivery: {MaxWorkers: 4}},
		Workers:           workers,
	})
	if err != nil {
		t.Fatal(err)
	}

	// A lone event: a delivery job per group. Then a batch of two: a
	// delivery batch per group, whose second event fails.
	lone := newTestEvents(t, 1)[0]
	if _, err := db.FireEvents(ctx, []*gateway.Event{lone}, time.Hour); err != nil {
		t.Fatal(err)
	}
	pair := newTestEvents(t, 2)
	if _, err := db.FireEvents(ctx, pair, time.Hour); err != nil {
		t.Fatal(err)
	}
	var batches int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = $1`, dispatch.DeliveryBatchKind).Scan(&batches); err != nil {
		t.Fatal(err)
	}
	if batches != 3 {
		t.Fatalf("%d delivery batches, want one per group (3)", batches)
	}
	if err := rc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rc.Stop(context.WithoutCancel(ctx)) })

	// Each row as JSON without what differs between two jobs (id, times,
	// event id); the times come apart for the comparison.
	type row struct {
		Rest                     string
		CreatedAt, ScheduledAt   time.Time
		AttemptedAt, FinalizedAt *time.Time
		ErrorAt                  *time.Time
		State, Listener          string
	}
	read := func(eventID string) map[string]row {
		rows, err := pool.Query(ctx, `
			SELECT (to_jsonb(j) - 'id' - 'created_at' - 'scheduled_at' - 'attempted_at' - 'finalized_at' - 'errors'
			        || jsonb_build_object('args', j.args - 'event_id',
			                              'errors', (SELECT jsonb_agg(e - 'at') FROM unnest(j.errors) e)))::text,
			       j.created_at, j.scheduled_at, j.attempted_at, j.finalized_at, (j.errors[1]->>'at')::timestamptz,
			       j.state::text, j.args->>'listener'
			FROM river_job j WHERE j.kind = $1 AND j.args->>'event_id' = $2`, dispatch.DeliveryKind, eventID)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]row{}
		var r row
		if _, err := pgx.ForEachRow(rows, []any{&r.Rest, &r.CreatedAt, &r.ScheduledAt, &r.AttemptedAt, &r.FinalizedAt, &r.ErrorAt, &r.State, &r.Listener}, func() error {
			got[r.Listener] = r
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	want := map[string]string{"later": "retryable", "soon": "available", "dead": "discarded"}
	testwait.For(t, 30*time.Second, "the failed attempts recorded", func() bool {
		rivers, ours := read(lone.ID), read(pair[1].ID)
		for l, s := range want {
			if rivers[l].State != s || ours[l].State != s {
				return false
			}
		}
		return true
	})
	// No job is due again for seconds: stop River before it is.
	if err := rc.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	rivers, ours := read(lone.ID), read(pair[1].ID)
	for l := range want {
		r, o := rivers[l], ours[l]
		if r.Rest != o.Rest {
			t.Errorf("group %s: the failed delivery's row differs from River's:\n ours  %s\n River %s", l, o.Rest, r.Rest)
		}
		if (r.AttemptedAt == nil) != (o.AttemptedAt == nil) || (r.FinalizedAt == nil) != (o.FinalizedAt == nil) {
			t.Errorf("group %s: attempted_at/finalized_at set differently: ours %v %v, River %v %v", l, o.AttemptedAt, o.FinalizedAt, r.AttemptedAt, r.FinalizedAt)
		}
		// Each relative to its own job's times, as River sets them.
		if l != "dead" {
			if d := r.ScheduledAt.Sub(*r.AttemptedAt) - o.ScheduledAt.Sub(*o.AttemptedAt); d.Abs() > 30*time.Second {
				t.Errorf("group %s: retry %s after the attempt, River's %s", l, o.ScheduledAt.Sub(*o.AttemptedAt), r.ScheduledAt.Sub(*r.AttemptedAt))
			}
		}
		if o.ErrorAt == nil || o.ErrorAt.Before(o.AttemptedAt.Add(-time.Second)) {
			t.Errorf("group %s: the error's time %s is before the attempt %s", l, o.ErrorAt, o.AttemptedAt)
		}
	}
	if t.Failed() {
		return
	}
	// The batch holds only the event it delivered.
	var kept string
	if err := pool.QueryRow(ctx, `SELECT (args->'event_ids')::text FROM river_job WHERE kind = $1 AND args->>'listener' = 'later'`,
		dispatch.DeliveryBatchKind).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	if want := `["` + pair[0].ID + `"]`; kept != want {
		t.Errorf("the completed batch holds %s, want %s", kept, want)
	}
	if strings.Contains(kept, pair[1].ID) {
		t.Errorf("the completed batch still holds the failed event")
	}
}

// TestBatchFireQueuesOneJobPerGroup: a batch fire of 100 events to one
// group queues one River job, and of 101 two (the batch size is capped).
func TestBatchFireQueuesOneJobPerGroup(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	db, err := New(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `
		INSERT INTO lightbus_listener (service, name, secret, max_attempts, timeout_ms) VALUES ('svc', 'a', 's', 5, 0);
		INSERT INTO lightbus_subscription (api, event, service, listener) VALUES ('api', 'ev', 'svc', 'a')`); err != nil {
		t.Fatal(err)
	}
	jobs := func() (n int, events int) {
		t.Helper()
		if err := pool.QueryRow(ctx, `
			SELECT count(*), COALESCE(sum(CASE WHEN kind = $1 THEN jsonb_array_length(args->'event_ids') ELSE 1 END), 0)
			FROM river_job WHERE queue = $2`, dispatch.DeliveryBatchKind, dispatch.QueueDelivery).Scan(&n, &events); err != nil {
			t.Fatal(err)
		}
		return n, events
	}
	res, err := db.FireEvents(ctx, newTestEvents(t, 100), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Deliveries != 1 {
		t.Errorf("an event's deliveries = %d, want 1", res[0].Deliveries)
	}
	if n, events := jobs(); n != 1 || events != 100 {
		t.Errorf("a batch fire of 100 events to one group queued %d jobs for %d events, want 1 for 100", n, events)
	}
	if _, err := db.FireEvents(ctx, newTestEvents(t, 101), time.Hour); err != nil {
		t.Fatal(err)
	}
	if n, events := jobs(); n != 3 || events != 201 {
		t.Errorf("then 101 more queued %d jobs in all for %d events, want 3 for 201", n, events)
	}
}

// TestFewEventsJobsAsRiverInserts checks that the jobs a transaction of a
// few events inserts itself (insertFewSQL) are the rows River's
// InsertManyFastTx inserts for the same deliveries (deliveryJobs), column
// by column but the id and the times: a delivery batch per group of two
// events or more, a delivery job for an event alone.
func TestFewEventsJobsAsRiverInserts(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	db, err := New(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	groups := deliveryJobTestGroups(ctx, t, pool) // a, b, c on api.ev
	if _, err := pool.Exec(ctx, `
		INSERT INTO lightbus_listener (service, name, secret, max_attempts, timeout_ms) VALUES ('svc', 'd', 's', 4, 900);
		INSERT INTO lightbus_subscription (api, event, service, listener) VALUES ('api', 'other', 'svc', 'd')`); err != nil {
		t.Fatal(err)
	}
	evs := newTestEvents(t, 3)
	other, err := gateway.NewEvent("api", "other", json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	evs = append(evs, other)
	evs[1].IdempotencyKey = "k1"
	res, err := db.FireEvents(ctx, evs, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		// api.other goes to d, and to b (subscribed to api.*).
		if want := map[bool]int{true: 2, false: 3}[i == 3]; r.Deliveries != want {
			t.Errorf("event %d: %d deliveries, want %d", i, r.Deliveries, want)
		}
	}
	var ours int64
	if err := pool.QueryRow(ctx, `SELECT max(id) FROM river_job`).Scan(&ours); err != nil {
		t.Fatal(err)
	}
	if ours != 4 {
		t.Fatalf("%d jobs for 4 events to 4 groups, want 4: a batch for each of a, b, c, a job for d", ours)
	}

	var jobs []river.InsertManyParams
	ids := []string{evs[0].ID, evs[1].ID, evs[2].ID}
	for _, g := range groups {
		if g.listener == "b" {
			jobs = append(jobs, deliveryJobs(g, append(slices.Clone(ids), other.ID), 100)...)
			continue
		}
		jobs = append(jobs, deliveryJobs(g, slices.Clone(ids), 100)...)
	}
	jobs = append(jobs, deliveryJobs(subscribedGroup{service: "svc", listener: "d", maxAttempts: 4, timeoutMS: 900}, []string{other.ID}, 100)...)
	mine, rivers := asRiverInsertsThem(ctx, t, db, jobs, ours)
	if len(mine) != 4 || strings.Join(mine, "\n") != strings.Join(rivers, "\n") {
		t.Errorf("the transaction's jobs differ from River's:\n%s\nRiver's:\n%s", strings.Join(mine, "\n"), strings.Join(rivers, "\n"))
	}
}
