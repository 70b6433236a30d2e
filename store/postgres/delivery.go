package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/gateway/dispatch"
)

var _ gateway.ListenerStore = (*DB)(nil)

// redriveBatch is how many dead deliveries one bulk-redrive transaction
// touches.
const redriveBatch = 1000

// groupExists returns ErrNotFound (wrapped) when the group does not exist
// in pool's database.
func groupExists(ctx context.Context, pool *pgxpool.Pool, service, listener string) error {
	var ok bool
	err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM lightbus_listener WHERE service = $1 AND name = $2)`,
		service, listener).Scan(&ok)
	if err != nil {
		return translate(err)
	}
	if !ok {
		return gateway.Errorf(gateway.ENotFound, "listener %s.%s not found", service, listener)
	}
	return nil
}

// ListDead implements gateway.ListenerStore, on the read pool. A group
// the read pool does not have yet but the primary has has no dead
// deliveries there yet either: the page is empty.
func (db *DB) ListDead(ctx context.Context, q gateway.DeadQuery) ([]gateway.DeliveryRecord, error) {
	if _, err := readThenPrimary(ctx, db, func(ctx context.Context, pool *pgxpool.Pool) (struct{}, error) {
		return struct{}{}, groupExists(ctx, pool, q.Service, q.Listener)
	}); err != nil {
		return nil, err
	}
	sql, args := listDeadSQL(q)
	rows, err := db.read.Query(ctx, sql, args...)
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

// GetDelivery implements gateway.ListenerStore. It reads the read pool,
// and the primary when the read pool does not have the delivery
// (WithReadPool).
func (db *DB) GetDelivery(ctx context.Context, id int64) (*gateway.DeliveryRecord, error) {
	return readThenPrimary(ctx, db, func(ctx context.Context, pool *pgxpool.Pool) (*gateway.DeliveryRecord, error) {
		return getDelivery(ctx, pool, id)
	})
}

// getDelivery reads one delivery on pool.
func getDelivery(ctx context.Context, pool *pgxpool.Pool, id int64) (*gateway.DeliveryRecord, error) {
	rows, err := pool.Query(ctx, getDeliverySQL, id, dispatch.DeliveryKind)
	if err != nil {
		return nil, translate(err)
	}
	row, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[deliveryRecordRow])
	if errors.Is(err, pgx.ErrNoRows) {
		return getBatch(ctx, pool, id)
	}
	if err != nil {
		return nil, translate(err)
	}
	return row.record()
}

// getBatch reads delivery batch id as a delivery record: the id that
// GET /v1/events/{id} shows for an event delivered in a batch.
func getBatch(ctx context.Context, pool *pgxpool.Pool, id int64) (*gateway.DeliveryRecord, error) {
	rows, err := pool.Query(ctx, getBatchSQL, id)
	if err != nil {
		return nil, translate(err)
	}
	row, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[batchRecordRow])
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, gateway.Errorf(gateway.ENotFound, "delivery %d not found", id)
		}
		return nil, translate(err)
	}
	rec, err := row.record()
	if err != nil {
		return nil, err
	}
	rec.EventIDs = row.EventIDs
	return rec, nil
}

// RedriveDelivery implements gateway.ListenerStore.
func (db *DB) RedriveDelivery(ctx context.Context, id int64) (*gateway.DeliveryRecord, error) {
	tag, err := db.pool.Exec(ctx, redriveDeliverySQL, id, dispatch.DeliveryKind)
	if err != nil {
		return nil, translate(err)
	}
	rec, err := getDelivery(ctx, db.pool, id) // the redrive's own write, so the primary
	if err != nil {
		return nil, err
	}
	if tag.RowsAffected() == 0 && rec.Batch {
		return nil, gateway.Errorf(gateway.EConflict, "delivery %d is a delivery batch (%s), never dead: each failed delivery of a batch is a delivery of its own, listed on its event and among the group's dead letters", id, rec.State)
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
	if err := groupExists(ctx, db.pool, q.Service, q.Listener); err != nil {
		return 0, err
	}
	q.Before = 0
	var start time.Time
	if err := db.pool.QueryRow(ctx, `SELECT now()`).Scan(&start); err != nil {
		return 0, translate(err)
	}
	sql, args := redriveDeadSQL(q, start, redriveBatch)
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
	Ordered     bool       `db:"ordered"`
	Pending     int64      `db:"pending"`
	InFlight    int64      `db:"in_flight"`
	Dead        int64      `db:"dead"`
	Oldest      *time.Time `db:"oldest"`
	Now         time.Time  `db:"now"`
}

// ListListeners implements gateway.ListenerStore. Each group's counts are
// read through a partial index of its deliveries (see listListenersSQL):
// finished deliveries (completed, cancelled) are not read.
func (db *DB) ListListeners(ctx context.Context) ([]gateway.ListenerStatus, error) {
	rows, err := db.read.Query(ctx, listListenersSQL)
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
		out[i].Policy.Ordered = r.Ordered
		if r.Oldest != nil {
			out[i].OldestUndelivered = utc(r.Oldest)
			out[i].LagMS = max(r.Now.Sub(*r.Oldest).Milliseconds(), 0)
		}
	}
	return out, nil
}

var _ dispatch.PruneStore = (*DB)(nil)

// PruneEvents implements dispatch.PruneStore. The oldest events go first
// (lightbus_event_created_at), with their idempotency keys; an event is
// kept while any of its deliveries is unfinished or dead (eventKept), or an
// ordered group's position has not passed it (orderedCutoff), unless
// undelivered is set.
func (db *DB) PruneEvents(ctx context.Context, cutoff time.Time, limit int, undelivered bool) (int, error) {
	if !undelivered {
		// Nor an event an ordered group is still owed.
		var err error
		if cutoff, err = db.orderedCutoff(ctx, cutoff); err != nil {
			return 0, err
		}
	}
	var n int
	if err := db.pool.QueryRow(ctx, pruneEventsSQL, cutoff, limit, undelivered).Scan(&n); err != nil {
		return 0, translate(err)
	}
	return n, nil
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
