package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lightbus-go/lightbus/gateway"
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
	args = append(args, gateway.DeliveryKind, q.Service, q.Listener)
	n := len(args)
	where := []string{
		fmt.Sprintf("j.kind = $%d", n-2),
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
	rows, err := db.pool.Query(ctx, recordFrom+` WHERE j.id = $1 AND j.kind = $2`, id, gateway.DeliveryKind)
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
		WHERE j.id = $1 AND j.kind = $2 AND j.state = 'discarded'`, id, gateway.DeliveryKind)
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
