package postgres

import (
	"context"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/lightbus-go/lightbus/gateway"
)

// The live stream reads events in (xid, id) order, xid being the
// transaction that stored each (lightbus_event_xid_id), and only those
// below the snapshot's xmin: the oldest transaction still running. Every
// transaction below it has finished, so an event read later can never
// stand before one read now, however concurrent fires commit. An event id
// alone would not do: ids are made before their transaction commits, so a
// slow transaction commits an id smaller than ones already read.

// lastID is the largest UUID: a head position stands after every event of
// its transaction.
var lastID = uuid.UUID{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// streamHeadSQL reads the xmin of the current snapshot and the time.
const streamHeadSQL = `SELECT pg_snapshot_xmin(pg_current_snapshot())::text, now()`

// StreamHead implements gateway.StreamStore.
func (db *DB) StreamHead(ctx context.Context) (gateway.StreamCursor, error) {
	var xmin string
	var now time.Time
	if err := db.read.QueryRow(ctx, streamHeadSQL).Scan(&xmin, &now); err != nil {
		return gateway.StreamCursor{}, translate(err)
	}
	return headCursor(xmin, now)
}

// headCursor is the position after every transaction below xmin.
func headCursor(xmin string, now time.Time) (gateway.StreamCursor, error) {
	x, err := strconv.ParseUint(xmin, 10, 64)
	if err != nil {
		return gateway.StreamCursor{}, err
	}
	return gateway.StreamCursor{XID: x - 1, ID: lastID, Time: now.UTC()}, nil
}

// StreamEvents implements gateway.StreamStore. The horizon (xmin) and the
// events are read in one statement, so under one snapshot.
func (db *DB) StreamEvents(ctx context.Context, after gateway.StreamCursor, f gateway.EventFilter, limit int) ([]gateway.StreamedEvent, gateway.StreamCursor, error) {
	sql, args := streamEventsSQL(after, f, limit)
	rows, err := db.read.Query(ctx, sql, append([]any{filterExecMode}, args...)...)
	if err != nil {
		return nil, after, translate(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByName[nullableStreamRow])
	if err != nil {
		return nil, after, translate(err)
	}
	var evs []gateway.StreamedEvent
	var xmin string
	var now time.Time
	for _, r := range got {
		xmin, now = r.XMin, r.Now
		if r.ID == nil {
			continue // no event: the horizon alone
		}
		x, err := strconv.ParseUint(*r.XID, 10, 64)
		if err != nil {
			return nil, after, err
		}
		id, err := uuid.Parse(*r.ID)
		if err != nil {
			return nil, after, err
		}
		row := eventRow{ID: *r.ID, API: *r.API, Name: *r.Name, Params: r.Params, IdempotencyKey: r.IdempotencyKey, CreatedAt: *r.CreatedAt,
			TraceParent: r.TraceParent, TraceState: r.TraceState}
		ev := row.event()
		evs = append(evs, gateway.StreamedEvent{Event: ev, Cursor: gateway.StreamCursor{XID: x, ID: id, Time: ev.CreatedAt}})
	}
	if len(evs) == limit {
		return evs, evs[len(evs)-1].Cursor, nil
	}
	// Fewer than limit: every finished event after the cursor was read.
	head, err := headCursor(xmin, now)
	if err != nil {
		return nil, after, err
	}
	if !head.After(after) {
		head = after
	}
	return evs, head, nil
}

// streamEventsSQL is the statement of StreamEvents and its arguments.
func streamEventsSQL(after gateway.StreamCursor, f gateway.EventFilter, limit int) (string, []any) {
	var c conds
	c.add("(xid, id) > ($%d::text::xid8, $%d::uuid)", strconv.FormatUint(after.XID, 10), after.ID.String())
	c.where = append(c.where, "xid < h.xmin")
	c.filter(f)
	sql := `WITH h AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
		SELECT ` + eventColumns + `, xid::text AS xid, h.xmin::text AS xmin, now() AS now
		FROM h LEFT JOIN LATERAL (SELECT * FROM lightbus_event` + c.sql() + ` ORDER BY xid, id LIMIT ` + c.arg(limit) + `) e ON true`
	return sql, c.args
}

// nullableStreamRow is a row of StreamEvents: an event, or none (only the
// horizon) when no event matched.
type nullableStreamRow struct {
	ID             *string    `db:"id"`
	API            *string    `db:"api"`
	Name           *string    `db:"name"`
	Params         []byte     `db:"params"`
	IdempotencyKey *string    `db:"idempotency_key"`
	CreatedAt      *time.Time `db:"created_at"`
	TraceParent    *string    `db:"traceparent"`
	TraceState     *string    `db:"tracestate"`
	XID            *string    `db:"xid"`
	XMin           string     `db:"xmin"`
	Now            time.Time  `db:"now"`
}

var _ gateway.StreamStore = (*DB)(nil)
