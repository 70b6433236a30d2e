package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/gateway/dispatch"
)

var _ gateway.ListenerStore = (*DB)(nil)

// redriveBatch is how many dead deliveries one bulk-redrive transaction
// touches.
const redriveBatch = 1000

type deliveryRecordRow struct {
	deliveryRow
	API   string `db:"api"`
	Event string `db:"event"`
}

func (r *deliveryRecordRow) record() (*gateway.DeliveryRecord, error) {
	d, err := r.delivery()
	if err != nil {
		return nil, err
	}
	return &gateway.DeliveryRecord{Delivery: d, EventID: r.EventID, API: r.API, Event: r.Event}, nil
}

// recordFrom selects deliveryRecordRows from river_job j and its event e.
const recordFrom = `SELECT ` + deliveryColumns + `, COALESCE(e.api, '') AS api, COALESCE(e.name, '') AS event
	FROM river_job j LEFT JOIN lightbus_event e ON e.id = (j.args->>'event_id')::uuid`

// deadWhere builds the conditions selecting q's dead deliveries; args
// continue from the given ones.
func deadWhere(q gateway.DeadQuery, args []any) (string, []any) {
	args = append(args, q.Service, q.Listener)
	n := len(args)
	where := []string{
		kindIsDelivery,
		fmt.Sprintf("j.args->>'service' = $%d", n-1),
		fmt.Sprintf("j.args->>'listener' = $%d", n),
		"j.state = 'discarded'",
	}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if q.API != "" {
		add("e.api = $%d", q.API)
	}
	if q.Event != "" {
		add("e.name = $%d", q.Event)
	}
	if !q.Since.IsZero() {
		add("j.finalized_at >= $%d", q.Since)
	}
	if !q.Until.IsZero() {
		add("j.finalized_at < $%d", q.Until)
	}
	if q.Before > 0 {
		add("j.id < $%d", q.Before)
	}
	return strings.Join(where, " AND "), args
}

// kindIsDelivery selects delivery jobs j. The kind is a literal, not a
// parameter, so that the planner can use the partial indexes on river_job
// (WHERE kind = 'lightbus.delivery') with any plan.
const kindIsDelivery = `j.kind = '` + dispatch.DeliveryKind + `'`

// groupExists returns ErrNotFound (wrapped) when the group does not exist.
func (db *DB) groupExists(ctx context.Context, service, listener string) error {
	var ok bool
	err := db.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM lightbus_listener WHERE service = $1 AND name = $2)`,
		service, listener).Scan(&ok)
	if err != nil {
		return translate(err)
	}
	if !ok {
		return gateway.Errorf(gateway.ENotFound, "listener %s.%s not found", service, listener)
	}
	return nil
}

// ListDead implements gateway.ListenerStore.
func (db *DB) ListDead(ctx context.Context, q gateway.DeadQuery) ([]gateway.DeliveryRecord, error) {
	if err := db.groupExists(ctx, q.Service, q.Listener); err != nil {
		return nil, err
	}
	where, args := deadWhere(q, nil)
	args = append(args, q.Limit)
	rows, err := db.pool.Query(ctx, recordFrom+` WHERE `+where+fmt.Sprintf(` ORDER BY j.id DESC LIMIT $%d`, len(args)), args...)
	if err != nil {
		return nil, translate(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByName[deliveryRecordRow])
	if err != nil {
		return nil, translate(err)
	}
	out := make([]gateway.DeliveryRecord, 0, len(got))
	for i := range got {
		rec, err := got[i].record()
		if err != nil {
			return nil, err
		}
		out = append(out, *rec)
	}
	return out, nil
}

// GetDelivery implements gateway.ListenerStore.
func (db *DB) GetDelivery(ctx context.Context, id int64) (*gateway.DeliveryRecord, error) {
	rows, err := db.pool.Query(ctx, recordFrom+` WHERE j.id = $1 AND j.kind = $2`, id, dispatch.DeliveryKind)
	if err != nil {
		return nil, translate(err)
	}
	row, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[deliveryRecordRow])
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, gateway.Errorf(gateway.ENotFound, "delivery %d not found", id)
		}
		return nil, translate(err)
	}
	return row.record()
}

// redriveSet is the SET clause that revives a dead delivery j: available at
// once, with its group's current max_attempts as a fresh allowance on top of
// the attempts already made (River counts attempts per job, and discards a
// job whose attempt reaches max_attempts).
const redriveSet = `SET state = 'available', finalized_at = NULL, scheduled_at = now(),
	max_attempts = j.attempt + COALESCE((SELECT l.max_attempts FROM lightbus_listener l
		WHERE l.service = j.args->>'service' AND l.name = j.args->>'listener'), j.max_attempts)`

// RedriveDelivery implements gateway.ListenerStore.
func (db *DB) RedriveDelivery(ctx context.Context, id int64) (*gateway.DeliveryRecord, error) {
	tag, err := db.pool.Exec(ctx, `UPDATE river_job j `+redriveSet+`
		WHERE j.id = $1 AND j.kind = $2 AND j.state = 'discarded'`, id, dispatch.DeliveryKind)
	if err != nil {
		return nil, translate(err)
	}
	rec, err := db.GetDelivery(ctx, id)
	if err != nil {
		return nil, err
	}
	if tag.RowsAffected() == 0 {
		return nil, gateway.Errorf(gateway.EConflict, "delivery %d is %s, not dead: only dead deliveries can be redriven", id, rec.State)
	}
	return rec, nil
}

// RedriveDead implements gateway.ListenerStore. Each batch is its own short
// transaction; deliveries that die again while it runs are not picked up
// twice (only those dead before it started are redriven).
func (db *DB) RedriveDead(ctx context.Context, q gateway.DeadQuery) (int, error) {
	if err := db.groupExists(ctx, q.Service, q.Listener); err != nil {
		return 0, err
	}
	q.Before = 0
	var start time.Time
	if err := db.pool.QueryRow(ctx, `SELECT now()`).Scan(&start); err != nil {
		return 0, translate(err)
	}
	where, args := deadWhere(q, []any{start, redriveBatch})
	sql := `WITH batch AS (
		SELECT j.id FROM river_job j LEFT JOIN lightbus_event e ON e.id = (j.args->>'event_id')::uuid
		WHERE ` + where + ` AND j.finalized_at < $1
		ORDER BY j.id LIMIT $2 FOR UPDATE OF j SKIP LOCKED)
	UPDATE river_job j ` + redriveSet + ` FROM batch WHERE j.id = batch.id`
	total := 0
	for {
		tag, err := db.pool.Exec(ctx, sql, args...)
		if err != nil {
			return total, translate(err)
		}
		total += int(tag.RowsAffected())
		if tag.RowsAffected() < redriveBatch {
			return total, nil
		}
	}
}

type listenerRow struct {
	Service     string     `db:"service"`
	Name        string     `db:"name"`
	Events      []string   `db:"events"`
	Endpoints   int        `db:"endpoints"`
	MaxAttempts int        `db:"max_attempts"`
	BaseMS      int        `db:"backoff_base_ms"`
	MaxMS       int        `db:"backoff_max_ms"`
	TimeoutMS   int        `db:"timeout_ms"`
	MaxInFlight int        `db:"max_in_flight"`
	Pending     int64      `db:"pending"`
	InFlight    int64      `db:"in_flight"`
	Dead        int64      `db:"dead"`
	Oldest      *time.Time `db:"oldest"`
	Now         time.Time  `db:"now"`
}

// ListListeners implements gateway.ListenerStore. Each group's counts come
// from the river_job_lightbus_listener index (service, listener, state):
// finished deliveries (completed, cancelled) are not read.
func (db *DB) ListListeners(ctx context.Context) ([]gateway.ListenerStatus, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT l.service, l.name, l.max_attempts, l.backoff_base_ms, l.backoff_max_ms, l.timeout_ms, l.max_in_flight,
		       ARRAY(SELECT s.api || '.' || s.event FROM lightbus_subscription s
		             WHERE s.service = l.service AND s.listener = l.name ORDER BY 1) AS events,
		       (SELECT count(*)::int FROM lightbus_endpoint p JOIN lightbus_worker w ON w.id = p.worker_id
		        WHERE p.service = l.service AND p.listener = l.name AND w.expires_at > now()) AS endpoints,
		       COALESCE(c.pending, 0) AS pending, COALESCE(c.in_flight, 0) AS in_flight, COALESCE(c.dead, 0) AS dead,
		       (SELECT e.created_at FROM lightbus_event e WHERE e.id = c.oldest_event::uuid) AS oldest,
		       now() AS now
		FROM lightbus_listener l
		LEFT JOIN LATERAL (
			SELECT count(*) FILTER (WHERE j.state IN ('available', 'pending', 'scheduled', 'retryable')) AS pending,
			       count(*) FILTER (WHERE j.state = 'running') AS in_flight,
			       count(*) FILTER (WHERE j.state = 'discarded') AS dead,
			       -- Event ids are UUIDv7: the smallest is the oldest event.
			       min(j.args->>'event_id') FILTER (WHERE j.state <> 'discarded') AS oldest_event
			FROM river_job j
			WHERE `+kindIsDelivery+` AND j.args->>'service' = l.service AND j.args->>'listener' = l.name
			  AND j.state IN ('available', 'pending', 'scheduled', 'retryable', 'running', 'discarded')
		) c ON true
		ORDER BY l.service, l.name`)
	if err != nil {
		return nil, translate(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByName[listenerRow])
	if err != nil {
		return nil, translate(err)
	}
	replays, err := db.latestReplays(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]gateway.ListenerStatus, len(got))
	for i, r := range got {
		out[i].Replay = replays[[2]string{r.Service, r.Name}]
		out[i] = gateway.ListenerStatus{
			Service: r.Service, Name: r.Name, Events: r.Events, Endpoints: r.Endpoints,
			Policy:  policy(r.MaxAttempts, r.BaseMS, r.MaxMS, r.TimeoutMS, r.MaxInFlight),
			Pending: r.Pending, InFlight: r.InFlight, Dead: r.Dead, Replay: out[i].Replay,
		}
		if r.Oldest != nil {
			out[i].OldestUndelivered = utc(r.Oldest)
			out[i].LagMS = max(r.Now.Sub(*r.Oldest).Milliseconds(), 0)
		}
	}
	return out, nil
}

var _ dispatch.PruneStore = (*DB)(nil)

// PruneEvents implements dispatch.PruneStore. The oldest events go first
// (lightbus_event_created_at); an event is kept while any of its deliveries
// is unfinished or dead, unless undelivered is set.
func (db *DB) PruneEvents(ctx context.Context, cutoff time.Time, limit int, undelivered bool) (int, error) {
	tag, err := db.pool.Exec(ctx, `
		WITH doomed AS (
			SELECT e.id FROM lightbus_event e
			WHERE e.created_at < $1
			  AND ($3 OR NOT EXISTS (
				SELECT 1 FROM river_job j
				WHERE `+kindIsDelivery+` AND j.args->>'event_id' = e.id::text
				  AND j.state IN ('available', 'pending', 'scheduled', 'retryable', 'running', 'discarded')))
			ORDER BY e.created_at
			LIMIT $2
			FOR UPDATE SKIP LOCKED)
		DELETE FROM lightbus_event e USING doomed WHERE e.id = doomed.id`, cutoff, limit, undelivered)
	if err != nil {
		return 0, translate(err)
	}
	return int(tag.RowsAffected()), nil
}

// DeleteListener implements gateway.ListenerStore.
func (db *DB) DeleteListener(ctx context.Context, service, listener string) error {
	defer db.groups.forget(service, listener)
	return db.inTx(ctx, func(tx pgx.Tx) error {
		var live int
		err := tx.QueryRow(ctx, `
			SELECT (SELECT count(*) FROM lightbus_endpoint p JOIN lightbus_worker w ON w.id = p.worker_id
			        WHERE p.service = l.service AND p.listener = l.name AND w.expires_at > now())
			FROM lightbus_listener l WHERE l.service = $1 AND l.name = $2
			FOR UPDATE OF l`, service, listener).Scan(&live)
		if errors.Is(err, pgx.ErrNoRows) {
			return gateway.Errorf(gateway.ENotFound, "listener group %s.%s not found", service, listener)
		}
		if err != nil {
			return err
		}
		if live > 0 {
			return gateway.Errorf(gateway.EConflict,
				"listener group %s.%s is served by %d live worker(s), whose next heartbeat would create it again: stop them first", service, listener, live)
		}
		// Subscriptions and endpoints go with the group (ON DELETE CASCADE).
		_, err = tx.Exec(ctx, `DELETE FROM lightbus_listener WHERE service = $1 AND name = $2`, service, listener)
		return err
	})
}
