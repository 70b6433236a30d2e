package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

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
