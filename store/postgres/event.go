package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/riverqueue/river"

	"github.com/lightbus-go/lightbus/gateway"
)

// FireEvent implements gateway.EventStore. With fire batching enabled
// (EnableFireBatching) concurrent fires share a transaction.
func (db *DB) FireEvent(ctx context.Context, ev *gateway.Event) (int, error) {
	if db.batcher != nil {
		return db.batcher.fire(ctx, ev)
	}
	return db.fireOne(ctx, ev)
}

// fireOne stores ev and queues its deliveries in a transaction of its own.
func (db *DB) fireOne(ctx context.Context, ev *gateway.Event) (int, error) {
	var n int
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		n, err = db.fireTx(ctx, tx, ev)
		return err
	})
	return n, err
}

// fireTx stores ev and queues its deliveries in tx.
func (db *DB) fireTx(ctx context.Context, tx pgx.Tx, ev *gateway.Event) (int, error) {
	f := &fanOut{}
	n := f.stage(ev)
	if err := db.flush(ctx, tx, f); err != nil {
		return 0, err
	}
	return *n, nil
}

// fanOut gathers the fires of one transaction: their statements, sent to
// Postgres in one pipelined round trip by flush, then their deliveries,
// inserted in one statement. The groups subscribed to each (API, event)
// are looked up once per transaction.
type fanOut struct {
	batch  pgx.Batch
	groups map[[2]string][]subscribedGroup
	jobs   []river.InsertManyParams
}

// subscribedGroup is a listener group that gets a delivery.
type subscribedGroup struct {
	service, listener string
	maxAttempts       int
}

// stage queues the statements that store ev, and adds its deliveries to
// f once they ran; the returned count is set by flush. It is the
// per-event step shared by a lone fire and a batch of fires in one
// transaction.
func (f *fanOut) stage(ev *gateway.Event) *int {
	n := new(int)
	k := [2]string{ev.API, ev.Name}
	if _, seen := f.groups[k]; !seen {
		if f.groups == nil {
			f.groups = map[[2]string][]subscribedGroup{}
		}
		f.groups[k] = nil
		f.batch.Queue(`
			SELECT DISTINCT l.service, l.name, l.max_attempts
			FROM lightbus_subscription s
			JOIN lightbus_listener l ON l.service = s.service AND l.name = s.listener
			WHERE s.api = $1 AND s.event IN ($2, '*')`, ev.API, ev.Name).
			Query(func(rows pgx.Rows) error {
				groups, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (subscribedGroup, error) {
					var g subscribedGroup
					err := r.Scan(&g.service, &g.listener, &g.maxAttempts)
					return g, err
				})
				f.groups[k] = groups
				return err
			})
	}
	var key *string
	if ev.IdempotencyKey != "" {
		key = &ev.IdempotencyKey
	}
	f.batch.Queue(`
		INSERT INTO lightbus_event (id, api, name, params, idempotency_key, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		ev.ID, ev.API, ev.Name, string(ev.Params), key, ev.CreatedAt).
		Exec(func(pgconn.CommandTag) error {
			// The event is stored: queue one delivery per subscribed group.
			for _, g := range f.groups[k] {
				f.jobs = append(f.jobs, river.InsertManyParams{
					Args:       gateway.DeliveryArgs{EventID: ev.ID, Service: g.service, Listener: g.listener},
					InsertOpts: &river.InsertOpts{MaxAttempts: g.maxAttempts, Queue: gateway.QueueDelivery},
				})
			}
			*n = len(f.groups[k])
			return nil
		})
	return n
}

// flush runs the staged statements in tx and inserts the deliveries.
func (db *DB) flush(ctx context.Context, tx pgx.Tx, f *fanOut) error {
	if f.batch.Len() > 0 {
		if err := tx.SendBatch(ctx, &f.batch).Close(); err != nil {
			return err
		}
	}
	if len(f.jobs) == 0 {
		return nil
	}
	if _, err := db.river.InsertManyFastTx(ctx, tx, f.jobs); err != nil {
		return fmt.Errorf("queue deliveries: %w", err)
	}
	return nil
}

type eventRow struct {
	ID             string    `db:"id"`
	API            string    `db:"api"`
	Name           string    `db:"name"`
	Params         []byte    `db:"params"`
	IdempotencyKey *string   `db:"idempotency_key"`
	CreatedAt      time.Time `db:"created_at"`
}

func (r *eventRow) event() gateway.Event {
	ev := gateway.Event{ID: r.ID, API: r.API, Name: r.Name, Params: r.Params, CreatedAt: r.CreatedAt.UTC()}
	if r.IdempotencyKey != nil {
		ev.IdempotencyKey = *r.IdempotencyKey
	}
	return ev
}

const eventColumns = `id::text AS id, api, name, params::text::bytea AS params, idempotency_key, created_at`

// ListEvents implements gateway.EventStore.
func (db *DB) ListEvents(ctx context.Context, q gateway.EventQuery) ([]gateway.Event, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if q.API != "" {
		add("api = $%d", q.API)
	}
	if q.Event != "" {
		add("name = $%d", q.Event)
	}
	if !q.Since.IsZero() {
		add("created_at >= $%d", q.Since)
	}
	if !q.Until.IsZero() {
		add("created_at < $%d", q.Until)
	}
	if q.Before != "" {
		add("id < $%d", q.Before)
	}
	sql := `SELECT ` + eventColumns + ` FROM lightbus_event`
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, q.Limit)
	sql += fmt.Sprintf(" ORDER BY id DESC LIMIT $%d", len(args))

	rows, err := db.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, translate(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByName[eventRow])
	if err != nil {
		return nil, translate(err)
	}
	events := make([]gateway.Event, len(got))
	for i := range got {
		events[i] = got[i].event()
	}
	return events, nil
}

// deliveryStates maps River job states to delivery states.
var deliveryStates = map[string]string{
	"available": gateway.DeliveryPending,
	"pending":   gateway.DeliveryPending,
	"scheduled": gateway.DeliveryScheduled,
	"running":   gateway.DeliveryRunning,
	"retryable": gateway.DeliveryRetryable,
	"completed": gateway.DeliveryCompleted,
	"discarded": gateway.DeliveryDead,
	"cancelled": gateway.DeliveryCancelled,
}

type deliveryRow struct {
	Service     string     `db:"service"`
	Listener    string     `db:"listener"`
	State       string     `db:"state"`
	Attempt     int        `db:"attempt"`
	MaxAttempts int        `db:"max_attempts"`
	ScheduledAt time.Time  `db:"scheduled_at"`
	AttemptedAt *time.Time `db:"attempted_at"`
	FinalizedAt *time.Time `db:"finalized_at"`
	Errors      []byte     `db:"errors"`
}

// GetEvent implements gateway.EventStore.
func (db *DB) GetEvent(ctx context.Context, id string) (*gateway.EventDetail, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+eventColumns+` FROM lightbus_event WHERE id = $1`, id)
	if err != nil {
		return nil, translate(err)
	}
	row, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[eventRow])
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, gateway.Errorf(gateway.ENotFound, "event %s not found", id)
		}
		return nil, translate(err)
	}
	detail := &gateway.EventDetail{Event: row.event(), Deliveries: []gateway.Delivery{}}

	rows, err = db.pool.Query(ctx, `
		SELECT args->>'service' AS service, args->>'listener' AS listener, state::text AS state,
		       attempt, max_attempts, scheduled_at, attempted_at, finalized_at,
		       COALESCE(to_json(errors), '[]')::text::bytea AS errors
		FROM river_job
		WHERE kind = $1 AND args->>'event_id' = $2
		ORDER BY args->>'service', args->>'listener'`, gateway.DeliveryKind, id)
	if err != nil {
		return nil, translate(err)
	}
	deliveries, err := pgx.CollectRows(rows, pgx.RowToStructByName[deliveryRow])
	if err != nil {
		return nil, translate(err)
	}
	for _, d := range deliveries {
		var attemptErrors []gateway.DeliveryError
		if err := json.Unmarshal(d.Errors, &attemptErrors); err != nil {
			return nil, fmt.Errorf("decode delivery errors: %w", err)
		}
		if attemptErrors == nil {
			attemptErrors = []gateway.DeliveryError{}
		}
		detail.Deliveries = append(detail.Deliveries, gateway.Delivery{
			Service:     d.Service,
			Listener:    d.Listener,
			State:       deliveryStates[d.State],
			Attempt:     d.Attempt,
			MaxAttempts: d.MaxAttempts,
			ScheduledAt: d.ScheduledAt.UTC(),
			AttemptedAt: utc(d.AttemptedAt),
			FinalizedAt: utc(d.FinalizedAt),
			Errors:      attemptErrors,
		})
	}
	return detail, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// DeliveryTarget implements gateway.DeliveryStore.
func (db *DB) DeliveryTarget(ctx context.Context, eventID, service, listener string) (*gateway.DeliveryTarget, error) {
	var target gateway.DeliveryTarget
	var row eventRow
	batch := &pgx.Batch{}
	batch.Queue(`
		SELECT e.id::text, e.api, e.name, e.params::text::bytea, e.created_at, l.secret
		FROM lightbus_event e, lightbus_listener l
		WHERE e.id = $1 AND l.service = $2 AND l.name = $3`, eventID, service, listener).
		QueryRow(func(r pgx.Row) error {
			return r.Scan(&row.ID, &row.API, &row.Name, &row.Params, &row.CreatedAt, &target.Secret)
		})
	batch.Queue(`
		SELECT w.base_url || p.path
		FROM lightbus_endpoint p
		JOIN lightbus_worker w ON w.id = p.worker_id
		WHERE p.service = $1 AND p.listener = $2 AND w.expires_at > now()
		ORDER BY w.id`, service, listener).
		Query(func(rows pgx.Rows) error {
			var err error
			target.Endpoints, err = pgx.CollectRows(rows, pgx.RowTo[string])
			return err
		})
	if err := db.pool.SendBatch(ctx, batch).Close(); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, gateway.Errorf(gateway.ENotFound, "event %s or listener %s.%s not found", eventID, service, listener)
		}
		return nil, translate(err)
	}
	target.Event = row.event()
	return &target, nil
}
