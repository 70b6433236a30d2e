package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/gateway/dispatch"
)

// Ordered groups (docs/DELIVERY.md, "Ordered groups"). A group whose policy
// is ordered gets no delivery job per event: fires skip it (and wake its
// job, see orderedWakeSQL), and its one job (dispatch.OrderedArgs) walks the
// event log from the group's position in lightbus_ordered, in the live
// stream's order: (xid, id), only below the snapshot's xmin, where no
// running transaction can add an event before one already read.

var _ dispatch.OrderedStore = (*DB)(nil)

// orderedSubscribed is the condition that event e is one the group ($1, $2)
// subscribes to.
const orderedSubscribed = `EXISTS (SELECT 1 FROM lightbus_subscription s
		WHERE s.service = $1 AND s.listener = $2 AND s.api = e.api AND s.event IN (e.name, '*'))`

// orderedEventsSQL reads the next $3 events group $1.$2 subscribes to
// after its position, in (xid, id) order, each with whether its
// transaction is below the snapshot's xmin, and the position's epoch.
var orderedEventsSQL = `
	WITH h AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),
	o AS MATERIALIZED (SELECT pos_xid, pos_id, epoch FROM lightbus_ordered WHERE service = $1 AND listener = $2)
	SELECT ` + eventColumns + `, e.xid::text AS xid, e.xid < h.xmin AS visible, o.epoch
	FROM o, h, LATERAL (
		SELECT * FROM lightbus_event e
		WHERE (e.xid, e.id) > (o.pos_xid, o.pos_id) AND ` + orderedSubscribed + `
		ORDER BY e.xid, e.id LIMIT $3) e`

// orderedSkipSQL moves group $1.$2's position past the events below the
// horizon when none of them is one it subscribes to, so that later reads
// do not scan them again; only while its epoch is still $3.
var orderedSkipSQL = `
	WITH h AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),
	last AS (SELECT e.xid, e.id FROM lightbus_event e, h WHERE e.xid < h.xmin ORDER BY e.xid DESC, e.id DESC LIMIT 1)
	UPDATE lightbus_ordered o SET pos_xid = last.xid, pos_id = last.id, updated_at = now()
	FROM last
	WHERE o.service = $1 AND o.listener = $2 AND o.epoch = $3 AND (o.pos_xid, o.pos_id) < (last.xid, last.id)
	  AND NOT EXISTS (SELECT 1 FROM lightbus_event e
		WHERE (e.xid, e.id) > (o.pos_xid, o.pos_id) AND (e.xid, e.id) <= (last.xid, last.id) AND ` + orderedSubscribed + `)`

type orderedEventRow struct {
	eventRow
	XID     string `db:"xid"`
	Visible bool   `db:"visible"`
	Epoch   int64  `db:"epoch"`
}

// OrderedNext implements dispatch.OrderedStore: the group (read afresh,
// not from the group cache), its state and its next events, in one round
// trip.
func (db *DB) OrderedNext(ctx context.Context, service, listener string, limit int) (*dispatch.OrderedNext, error) {
	next := &dispatch.OrderedNext{}
	batch := &pgx.Batch{}
	g := db.queueGroup(batch, service, listener)
	var positioned bool
	var blockState *string
	var blockAt *time.Time
	var epoch *int64
	batch.Queue(orderedStateSQL, service, listener).QueryRow(func(r pgx.Row) error {
		return r.Scan(&next.Ordered, &positioned, &blockState, &blockAt, &epoch)
	})
	var rows []orderedEventRow
	batch.Queue(orderedEventsSQL, service, listener, limit).Query(func(r pgx.Rows) error {
		var err error
		rows, err = pgx.CollectRows(r, pgx.RowToStructByName[orderedEventRow])
		return err
	})
	if err := db.pool.SendBatch(ctx, batch).Close(); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, gateway.Errorf(gateway.ENotFound, "listener %s.%s not found", service, listener)
		}
		return nil, translate(err)
	}
	next.Ordered = next.Ordered && positioned
	next.Target.Secret, next.Target.Policy = g.secret, g.policy
	next.Target.Policy.Ordered = next.Ordered
	for _, e := range g.endpoints {
		next.Target.Endpoints = append(next.Target.Endpoints, e.Endpoint)
	}
	if blockState != nil && deliveryUnfinished(*blockState) {
		next.Blocked, next.BlockedAt = true, blockAt.UTC()
		return next, nil
	}
	for _, r := range rows {
		next.Epoch = r.Epoch
		if !r.Visible {
			next.Waiting = true
			break
		}
		x, err := strconv.ParseUint(r.XID, 10, 64)
		if err != nil {
			return nil, err
		}
		id, err := uuid.Parse(r.ID)
		if err != nil {
			return nil, err
		}
		ev := r.event()
		next.Events = append(next.Events, gateway.StreamedEvent{Event: ev, Cursor: gateway.StreamCursor{XID: x, ID: id, Time: ev.CreatedAt}})
	}
	if len(rows) == 0 && next.Ordered && epoch != nil {
		if _, err := db.pool.Exec(ctx, orderedSkipSQL, service, listener, *epoch); err != nil {
			return nil, translate(err)
		}
	}
	return next, nil
}

// deliveryUnfinished reports whether River state is one of a delivery not
// yet finished.
func deliveryUnfinished(state string) bool {
	switch state {
	case "available", "pending", "scheduled", "retryable", "running":
		return true
	}
	return false
}

// orderedMoveSQL moves group $1.$2's position to ($4, $5) and sets its
// blocking job to $6, when its epoch is still $3.
const orderedMoveSQL = `
	UPDATE lightbus_ordered SET pos_xid = $4::text::xid8, pos_id = $5::uuid, blocked_job = $6, updated_at = now()
	WHERE service = $1 AND listener = $2 AND epoch = $3`

// OrderedDelivered implements dispatch.OrderedStore. The move commits
// without waiting for its WAL to reach the disk (synchronous_commit off,
// for its own transaction only): a database crash may lose the latest
// moves, which only delivers those events again, as a gateway crash
// between a delivery and its move would. BEGIN, the setting, the move
// and COMMIT go in one round trip.
func (db *DB) OrderedDelivered(ctx context.Context, service, listener string, epoch int64, ev gateway.StreamCursor) error {
	batch := &pgx.Batch{}
	batch.Queue("BEGIN")
	batch.Queue("SET LOCAL synchronous_commit = off")
	batch.Queue(orderedMoveSQL, service, listener, epoch, strconv.FormatUint(ev.XID, 10), ev.ID.String(), nil)
	batch.Queue("COMMIT")
	return translate(db.pool.SendBatch(ctx, batch).Close())
}

// OrderedFailed implements dispatch.OrderedStore. When the position moved
// meanwhile (a replay), nothing is recorded: the event is delivered again
// from the new position.
func (db *DB) OrderedFailed(ctx context.Context, job *river.Job[dispatch.OrderedArgs], epoch int64, ev gateway.StreamCursor, f dispatch.FailedDelivery) error {
	errStale := errors.New("the position moved")
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		// The delivery job is made now, by this attempt.
		row := *job.JobRow
		row.CreatedAt, row.AttemptedAt = time.Now(), &f.At
		ids, err := insertFailed(ctx, tx, &row, []dispatch.FailedDelivery{f})
		if err != nil {
			return err
		}
		var blocking *int64
		if !f.Dead {
			blocking = &ids[0]
		}
		tag, err := tx.Exec(ctx, orderedMoveSQL, job.Args.Service, job.Args.Listener, epoch,
			strconv.FormatUint(ev.XID, 10), ev.ID.String(), blocking)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return errStale
		}
		return nil
	})
	if errors.Is(err, errStale) {
		return nil
	}
	return err
}

// sincePositionSQL is the xid of the position from which an ordered group
// starts (followed by lastID): just before the first transaction that
// stored an event from since ($1 earliest, $2 an event id, $3 a time), or
// below the horizon (now) when none is given or no such event exists. An
// event of a later transaction that is older than since is delivered too:
// the group's order is commit order.
const sincePositionSQL = `(COALESCE(
		(SELECT min(e.xid)::text::bigint FROM lightbus_event e
		 WHERE $1::bool OR ($2::uuid IS NOT NULL AND e.id >= $2::uuid) OR ($3::timestamptz IS NOT NULL AND e.created_at >= $3::timestamptz)),
		pg_snapshot_xmin(pg_current_snapshot())::text::bigint) - 1)::text::xid8`

// sinceArgs are the arguments of sincePositionSQL for since.
func sinceArgs(since gateway.Since) []any {
	var from *string
	var t *time.Time
	switch {
	case since.EventID != "":
		from = &since.EventID
	case !since.Time.IsZero():
		t = &since.Time
	}
	return []any{since.Earliest, from, t}
}

// registerOrdered keeps an ordered group's state in step with its policy
// in a registration's transaction tx. An ordered group gets its position
// (from since when the group is new, else from now) and its job, queued
// again should it have finished (River's unique insert: nothing when it
// is waiting or running). A group that stops being ordered hands the
// events it is still owed to a replay (see startReplayTx: events that
// already have a delivery are skipped) and its job ends.
func (db *DB) registerOrdered(ctx context.Context, tx pgx.Tx, service, listener string, ordered, positioned bool, since gateway.Since) error {
	switch {
	case ordered:
		if !positioned {
			if _, err := tx.Exec(ctx, orderedStartSQL, append(sinceArgs(since), service, listener)...); err != nil {
				return err
			}
		}
		if _, err := db.river.InsertTx(ctx, tx, dispatch.OrderedArgs{Service: service, Listener: listener}, nil); err != nil {
			return fmt.Errorf("queue the ordered group's job: %w", err)
		}
		return nil
	case positioned:
		var first *string
		err := tx.QueryRow(ctx, `
			WITH o AS (DELETE FROM lightbus_ordered WHERE service = $1 AND listener = $2 RETURNING pos_xid, pos_id)
			SELECT (SELECT e.id::text FROM lightbus_event e WHERE (e.xid, e.id) > (o.pos_xid, o.pos_id) AND `+orderedSubscribed+`
			        ORDER BY e.id LIMIT 1)
			FROM o`, service, listener).Scan(&first)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if first == nil {
			return nil
		}
		// The owed events, and those whose fires saw the group ordered
		// and commit later: a new group's replay.
		_, err = db.startReplayTx(ctx, tx, service, listener, gateway.Since{EventID: *first}, false)
		return err
	}
	return nil
}

// orderedStartSQL gives ordered group $4.$5 its position, where since ($1
// to $3) starts, unless it has one.
var orderedStartSQL = `
	INSERT INTO lightbus_ordered (service, listener, pos_xid, pos_id, start_xid, start_id)
	SELECT $4, $5, p.x, '` + lastID.String() + `', p.x, '` + lastID.String() + `'
	FROM (SELECT ` + sincePositionSQL + ` AS x) p
	ON CONFLICT (service, listener) DO NOTHING`

// orderedRewindSQL moves ordered group $4.$5's position back to where since
// ($1 to $3) starts, unless it is there already, and starts a new epoch.
var orderedRewindSQL = `
	UPDATE lightbus_ordered o SET pos_xid = p.x, pos_id = '` + lastID.String() + `',
		start_xid = LEAST(o.start_xid, p.x), start_id = '` + lastID.String() + `',
		blocked_job = NULL, epoch = o.epoch + 1, updated_at = now()
	FROM (SELECT ` + sincePositionSQL + ` AS x) p
	WHERE o.service = $4 AND o.listener = $5 AND (p.x, '` + lastID.String() + `'::uuid) < (o.pos_xid, o.pos_id)`

// rewindOrdered reports whether group service.listener is ordered and, if
// so, moves its position back to since and wakes its job, in tx: its
// replay is the group's own job going over the events again, in order.
func (db *DB) rewindOrdered(ctx context.Context, tx pgx.Tx, service, listener string, since gateway.Since) (bool, error) {
	var ordered bool
	err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM lightbus_ordered WHERE service = $1 AND listener = $2)`,
		service, listener).Scan(&ordered)
	if err != nil || !ordered {
		return false, err
	}
	if _, err := tx.Exec(ctx, orderedRewindSQL, append(sinceArgs(since), service, listener)...); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, orderedWakeSQL, []string{service}, []string{listener}); err != nil {
		return false, err
	}
	return true, nil
}

// orderedCutoff returns cutoff, or earlier: the creation time of the
// oldest event an ordered group is still owed, so that retention keeps
// every such event.
func (db *DB) orderedCutoff(ctx context.Context, cutoff time.Time) (time.Time, error) {
	// The earlier of each owed event's created_at (which the DELETE batches
	// compare) and its id's time (which the partitions' bounds are made
	// of): the gateway's clock, which made the id, and Postgres's, which
	// set created_at, may differ.
	var oldest *time.Time
	err := db.pool.QueryRow(ctx, `
		SELECT min(e.created_at)
		FROM lightbus_ordered o
		JOIN LATERAL (SELECT min(LEAST(e.created_at, `+uuidTimeSQL("e.id")+`)) AS created_at FROM lightbus_event e
			WHERE (e.xid, e.id) > (o.pos_xid, o.pos_id)
			  AND EXISTS (SELECT 1 FROM lightbus_subscription s
				WHERE s.service = o.service AND s.listener = o.listener AND s.api = e.api AND s.event IN (e.name, '*'))) e ON true`).
		Scan(&oldest)
	if err != nil {
		return cutoff, translate(err)
	}
	if oldest != nil && oldest.Before(cutoff) {
		return *oldest, nil
	}
	return cutoff, nil
}

// orderedDeliveries returns event id's deliveries to ordered groups that
// have no delivery job: pending until the group's position passes the
// event, completed after. They have no id (0): no job of their own.
func orderedDeliveries(ctx context.Context, pool *pgxpool.Pool, id string) ([]gateway.Delivery, error) {
	rows, err := pool.Query(ctx, orderedDeliveriesSQL, id)
	if err != nil {
		return nil, translate(err)
	}
	var out []gateway.Delivery
	var d gateway.Delivery
	var created time.Time
	var passed bool
	_, err = pgx.ForEachRow(rows, []any{&d.Service, &d.Listener, &d.MaxAttempts, &created, &passed}, func() error {
		d.ScheduledAt, d.Errors = created.UTC(), []gateway.DeliveryError{}
		d.State, d.Attempt = gateway.DeliveryPending, 0
		if passed {
			d.State, d.Attempt = gateway.DeliveryCompleted, 1
		}
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, translate(err)
	}
	return out, nil
}

// uuidTimeSQL is the time of the UUIDv7 expression id: its first 48 bits,
// milliseconds since the Unix epoch.
func uuidTimeSQL(id string) string {
	return `to_timestamp((('x' || replace(left(` + id + `::text, 13), '-', ''))::bit(48)::bigint) / 1000.0)`
}
