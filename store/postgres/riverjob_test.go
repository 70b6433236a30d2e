package postgres

import (
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

// TestRiverColumns fails when River's migrated schema no longer has the
// columns our statements use (riverColumns), with the same types, or when
// the labels of river_job_state change. A River upgrade that trips it needs
// the statements in riverjob.go reviewed before riverColumns is updated.
func TestRiverColumns(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()

	problems, err := riverSchemaProblems(ctx, pool, riverColumns, riverJobStates)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("River schema changed under riverjob.go: %s", p)
	}

	// The check itself sees a missing column, a changed type, a column
	// become nullable and a changed enum.
	wrong := slices.Clone(riverColumns)
	wrong = append(wrong,
		riverColumn{"river_job", "no_such_column", "text", true},
		riverColumn{"river_job", "errors", "jsonb", false},
		riverColumn{"river_job", "attempted_at", "timestamptz", true},
	)
	problems, err = riverSchemaProblems(ctx, pool, wrong, append(slices.Clone(riverJobStates), "no_such_state"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"river_job.no_such_column", "river_job.errors", "river_job.attempted_at", "no_such_state"} {
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, want) }) {
			t.Errorf("problems %q name no %s", problems, want)
		}
	}
}

// riverSchemaProblems compares cols and the labels of river_job_state with
// the schema of pool's database, and describes each difference.
func riverSchemaProblems(ctx context.Context, pool *pgxpool.Pool, cols []riverColumn, states []string) ([]string, error) {
	type actual struct {
		udtName string
		notNull bool
	}
	var tables []string
	for _, c := range cols {
		if !slices.Contains(tables, c.table) {
			tables = append(tables, c.table)
		}
	}
	rows, err := pool.Query(ctx, `
		SELECT table_name::text, column_name::text, udt_name::text, is_nullable = 'NO'
		FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = ANY($1)`, tables)
	if err != nil {
		return nil, err
	}
	have := map[[2]string]actual{}
	var table, column string
	var a actual
	if _, err := pgx.ForEachRow(rows, []any{&table, &column, &a.udtName, &a.notNull}, func() error {
		have[[2]string{table, column}] = a
		return nil
	}); err != nil {
		return nil, err
	}

	var problems []string
	for _, c := range cols {
		got, ok := have[[2]string{c.table, c.name}]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("column %s.%s is missing", c.table, c.name))
		case got.udtName != c.udtName:
			problems = append(problems, fmt.Sprintf("column %s.%s is of type %s, want %s", c.table, c.name, got.udtName, c.udtName))
		case c.notNull && !got.notNull:
			problems = append(problems, fmt.Sprintf("column %s.%s is nullable, want NOT NULL", c.table, c.name))
		}
	}

	rows, err = pool.Query(ctx, `
		SELECT e.enumlabel::text FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
		WHERE t.typname = 'river_job_state' AND t.typnamespace = current_schema()::regnamespace`)
	if err != nil {
		return nil, err
	}
	labels, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	for _, s := range states {
		if !slices.Contains(labels, s) {
			problems = append(problems, fmt.Sprintf("river_job_state has no label %q (labels %q)", s, labels))
		}
	}
	for _, l := range labels {
		if !slices.Contains(states, l) {
			problems = append(problems, fmt.Sprintf("river_job_state has a new label %q", l))
		}
	}
	return problems, nil
}

// deliveryStates maps every River state.
func TestDeliveryStatesCoverRiverStates(t *testing.T) {
	t.Parallel()
	for _, s := range riverJobStates {
		if deliveryStates[s] == "" {
			t.Errorf("River state %q maps to no delivery state", s)
		}
	}
}

// statusOf takes the last outcome recorded for an attempt.
func TestStatusOf(t *testing.T) {
	t.Parallel()
	outcomes := dispatch.DecodeOutcomes([]byte(`[{"attempt": 2, "status": 0, "kind": "timeout"}, {"attempt": 1, "status": 503, "kind": "status"},
		{"attempt": 2, "status": 502, "kind": "status"}, 7, {"attempt": 3, "status": "410"}]`))
	for attempt, want := range map[int]int{1: 503, 2: 502, 3: 0, 4: 0} {
		if got := statusOf(outcomes, attempt); got != want {
			t.Errorf("status of attempt %d = %d, want %d", attempt, got, want)
		}
	}
}

// deliveryJobTestGroups makes three listener groups of service "svc"
// subscribed to api.ev: "a" (7 attempts), "b" (3 attempts, a 2.5 s
// timeout, subscribed twice: by name and by "*") and "c" (0 attempts:
// River's default). They are the groups addDeliveries gets from the lookup.
func deliveryJobTestGroups(ctx context.Context, t *testing.T, pool *pgxpool.Pool) []subscribedGroup {
	t.Helper()
	if _, err := pool.Exec(ctx, `
		INSERT INTO lightbus_listener (service, name, secret, max_attempts, timeout_ms) VALUES
			('svc', 'a', 's', 7, 0), ('svc', 'b', 's', 3, 2500), ('svc', 'c', 's', 0, 0);
		INSERT INTO lightbus_subscription (api, event, service, listener) VALUES
			('api', 'ev', 'svc', 'a'), ('api', 'ev', 'svc', 'b'), ('api', '*', 'svc', 'b'), ('api', 'ev', 'svc', 'c')`); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, subscribedGroupsSQL, "api", "ev")
	if err != nil {
		t.Fatal(err)
	}
	groups, err := collectGroups(rows)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 3 {
		t.Fatalf("groups = %+v, want 3", groups)
	}
	return groups
}

// TestDeliveryJobsAsRiverInserts checks that the delivery jobs a lone fire
// inserts itself (insertDeliveryJobsSQL) are the rows River's
// InsertManyFastTx inserts for the same deliveries, column by column (but
// the id and the times, which River takes from the gateway's clock).
func TestDeliveryJobsAsRiverInserts(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	db, err := New(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	groups := deliveryJobTestGroups(ctx, t, pool)

	ev, err := gateway.NewEvent("api", "ev", json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.fireAlone(ctx, ev, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if res.Deliveries != 3 {
		t.Fatalf("deliveries = %d, want 3", res.Deliveries)
	}
	var ours int64
	if err := pool.QueryRow(ctx, `SELECT max(id) FROM river_job`).Scan(&ours); err != nil {
		t.Fatal(err)
	}

	f := &fanOut{}
	f.addDeliveries(ev, groups)
	f.queueJobs(db.batchMax)
	mine, rivers := asRiverInsertsThem(ctx, t, db, f.jobs, ours)
	if len(mine) != 3 || !slices.Equal(mine, rivers) {
		t.Errorf("the fire's jobs differ from River's:\n%s\nRiver's:\n%s", strings.Join(mine, "\n"), strings.Join(rivers, "\n"))
	}
}

// TestDeliveryJobsWakeRiver checks that the delivery jobs a lone fire
// inserts itself wake River's producers at once, as River's own insert
// notification does: the worker here polls only once a minute.
func TestDeliveryJobsWakeRiver(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := context.Background()
	db, err := New(pool, nil, WithInsertNotifyCooldown(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	deliveryJobTestGroups(ctx, t, pool)

	worked := make(chan string, 16)
	workers := river.NewWorkers()
	river.AddWorker(workers, river.WorkFunc(func(_ context.Context, job *river.Job[dispatch.DeliveryArgs]) error {
		worked <- job.Args.EventID
		return nil
	}))
	rc, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		FetchCooldown:     10 * time.Millisecond,
		FetchPollInterval: time.Minute,
		Queues:            map[string]river.QueueConfig{dispatch.QueueDelivery: {MaxWorkers: 4}},
		Workers:           workers,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rc.Stop(context.WithoutCancel(ctx)) })

	// The first fire may be fetched by the producer's first fetch at
	// start; the second, fired once the first was worked, only by a
	// notification.
	for i := range 2 {
		time.Sleep(20 * time.Millisecond) // past the notification cooldown
		ev, err := gateway.NewEvent("api", "ev", json.RawMessage(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.fireAlone(ctx, ev, time.Hour); err != nil {
			t.Fatal(err)
		}
		timeout := time.After(20 * time.Second)
		for n := 0; n < 3; {
			select {
			case id := <-worked:
				if id == ev.ID {
					n++
				}
			case <-timeout:
				t.Fatalf("fire %d: %d of its 3 deliveries worked after 20 s: River's producer was not woken", i+1, n)
			}
		}
	}
}

// asRiverInsertsThem inserts jobs with River's own bulk insert and returns
// the rows of river_job (every column but id and the times) that the code
// under test wrote (id <= ours) and those River wrote (id > ours), each in
// the order of their listener, for comparing one with the other.
func asRiverInsertsThem(ctx context.Context, t *testing.T, db *DB, jobs []river.InsertManyParams, ours int64) (mine, rivers []string) {
	t.Helper()
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := db.river.InsertManyFastTx(ctx, tx, jobs); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	read := func(cond string) []string {
		t.Helper()
		rows, err := db.pool.Query(ctx, `
			SELECT (to_jsonb(j) - 'id' - 'created_at' - 'scheduled_at')::text
			FROM river_job j WHERE `+cond+` AND created_at = scheduled_at AND scheduled_at <= now()
			ORDER BY args->>'listener'`, ours)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	return read("id <= $1"), read("id > $1")
}
