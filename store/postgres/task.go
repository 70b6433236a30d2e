package postgres

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lightbus-go/lightbus/gateway"
)

// liveLeader is true in a statement on lightbus_task t when the task's
// leader is a live worker of its service that still declares it: while it
// is, no other worker gets the task.
const liveLeader = `(t.leader_id IS NOT NULL AND EXISTS (
	SELECT 1 FROM lightbus_worker w
	WHERE w.id = t.leader_id AND w.service = t.service AND t.name = ANY(w.tasks) AND w.expires_at > now()))`

// taskNames returns the sorted names of a registration's tasks.
func taskNames(reg *gateway.Registration) []string {
	names := make([]string, len(reg.Tasks))
	for i, d := range reg.Tasks {
		names[i] = d.Name
	}
	slices.Sort(names)
	return names
}

// registerTasks records the tasks reg declares, in the registration's
// transaction after the worker's row (with its task names) is written, and
// grants the worker each task without a live leader. Grants for one service
// are serialised by an advisory lock taken before the statement that
// decides, so that statement sees every earlier grant committed: two
// workers registering at once cannot both take a task.
func registerTasks(ctx context.Context, tx pgx.Tx, reg *gateway.Registration) ([]gateway.TaskGrant, error) {
	if len(reg.Tasks) == 0 {
		return nil, nil
	}
	decl := slices.Clone(reg.Tasks)
	slices.SortFunc(decl, func(a, b gateway.TaskDeclaration) int { return strings.Compare(a.Name, b.Name) })
	names := make([]string, len(decl))
	kinds := make([]string, len(decl))
	specs := make([]string, len(decl))
	for i, d := range decl {
		names[i], kinds[i], specs[i] = d.Name, d.Kind, d.Spec
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('lightbus_task:' || $1))`, reg.Service); err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO lightbus_task AS t (service, name, kind, spec, leader_id, leader_since)
		SELECT $1, d.name, d.kind, d.spec, $2, now() FROM unnest($3::text[], $4::text[], $5::text[]) AS d(name, kind, spec)
		ON CONFLICT (service, name) DO UPDATE SET
			kind = EXCLUDED.kind, spec = EXCLUDED.spec,
			leader_id = CASE WHEN `+liveLeader+` THEN t.leader_id ELSE EXCLUDED.leader_id END,
			leader_since = CASE WHEN `+liveLeader+` THEN t.leader_since ELSE now() END
		WHERE t.kind <> EXCLUDED.kind OR t.spec <> EXCLUDED.spec OR NOT `+liveLeader,
		reg.Service, reg.WorkerID, names, kinds, specs); err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, `
		SELECT name, COALESCE(leader_id = $2, false), last_tick FROM lightbus_task
		WHERE service = $1 AND name = ANY($3) ORDER BY name`, reg.Service, reg.WorkerID, names)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (gateway.TaskGrant, error) {
		var g gateway.TaskGrant
		err := r.Scan(&g.Name, &g.Leader, &g.LastTick)
		if g.LastTick != nil {
			t := g.LastTick.UTC()
			g.LastTick = &t
		}
		return g, err
	})
}

// ReportTaskRun implements gateway.TaskStore.
func (db *DB) ReportTaskRun(ctx context.Context, run *gateway.TaskRun) error {
	tag, err := db.pool.Exec(ctx, `
		UPDATE lightbus_task SET
			last_tick = GREATEST(last_tick, $4), last_run_at = now(), last_duration_ms = $5,
			last_error = NULLIF($6, ''), last_worker_id = $3,
			runs = runs + 1, failures = failures + CASE WHEN $6 = '' THEN 0 ELSE 1 END
		WHERE service = $1 AND name = $2 AND leader_id = $3`,
		run.Service, run.Task, run.WorkerID, run.Tick, run.DurationMS, run.Error)
	if err != nil {
		return translate(err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var leader *string
	err = db.pool.QueryRow(ctx, `SELECT leader_id FROM lightbus_task WHERE service = $1 AND name = $2`, run.Service, run.Task).Scan(&leader)
	if errors.Is(err, pgx.ErrNoRows) {
		return gateway.Errorf(gateway.ENotFound, "service %q has no task %q: a worker declares it when it registers", run.Service, run.Task)
	}
	if err != nil {
		return translate(err)
	}
	return gateway.Errorf(gateway.EConflict, "worker %q does not lead task %q of service %q: stop running it", run.WorkerID, run.Task, run.Service)
}

// taskRow is a row of ListTasks.
type taskRow struct {
	Service        string     `db:"service"`
	Name           string     `db:"name"`
	Kind           string     `db:"kind"`
	Spec           string     `db:"spec"`
	LeaderID       string     `db:"leader_id"`
	LastTick       *time.Time `db:"last_tick"`
	LastRunAt      *time.Time `db:"last_run_at"`
	LastDurationMS *int64     `db:"last_duration_ms"`
	LastError      string     `db:"last_error"`
	LastWorkerID   string     `db:"last_worker_id"`
	Runs           int64      `db:"runs"`
	Failures       int64      `db:"failures"`
}

// ListTasks implements gateway.TaskStore.
func (db *DB) ListTasks(ctx context.Context) ([]gateway.Task, error) {
	rows, err := db.read.Query(ctx, `
		SELECT t.service, t.name, t.kind, t.spec,
			CASE WHEN `+liveLeader+` THEN t.leader_id ELSE '' END AS leader_id,
			t.last_tick, t.last_run_at, t.last_duration_ms,
			COALESCE(t.last_error, '') AS last_error, COALESCE(t.last_worker_id, '') AS last_worker_id,
			t.runs, t.failures
		FROM lightbus_task t ORDER BY t.service, t.name`)
	if err != nil {
		return nil, translate(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByName[taskRow])
	if err != nil {
		return nil, translate(err)
	}
	utc := func(t *time.Time) *time.Time {
		if t == nil {
			return nil
		}
		u := t.UTC()
		return &u
	}
	tasks := make([]gateway.Task, len(got))
	for i, r := range got {
		tasks[i] = gateway.Task{
			Service: r.Service, Name: r.Name, Kind: r.Kind, Spec: r.Spec, LeaderID: r.LeaderID,
			LastTick: utc(r.LastTick), LastRunAt: utc(r.LastRunAt), LastDurationMS: r.LastDurationMS,
			LastError: r.LastError, LastWorkerID: r.LastWorkerID, Runs: r.Runs, Failures: r.Failures,
		}
	}
	return tasks, nil
}
