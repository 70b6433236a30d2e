package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/gateway/dispatch"
)

var _ dispatch.ReplayPager = (*DB)(nil)

type replayRow struct {
	ID         int64      `db:"id"`
	Service    string     `db:"service"`
	Listener   string     `db:"listener"`
	FromID     *string    `db:"from_id"`
	Since      *time.Time `db:"since"`
	Until      time.Time  `db:"until"`
	Redeliver  bool       `db:"redeliver"`
	Cursor     *string    `db:"cursor"`
	Queued     int64      `db:"queued"`
	State      string     `db:"state"`
	CreatedAt  time.Time  `db:"created_at"`
	FinishedAt *time.Time `db:"finished_at"`
}

const replayColumns = `id, service, listener, from_id::text AS from_id, since, until, redeliver,
	cursor::text AS cursor, queued, state, created_at, finished_at`

func (r *replayRow) replay() *gateway.Replay {
	rp := &gateway.Replay{
		ID: r.ID, Service: r.Service, Listener: r.Listener, Since: utc(r.Since), Until: r.Until.UTC(),
		Redeliver: r.Redeliver, Queued: r.Queued, State: r.State, CreatedAt: r.CreatedAt.UTC(), FinishedAt: utc(r.FinishedAt),
	}
	if r.FromID != nil {
		rp.FromID = *r.FromID
	}
	if r.Cursor != nil {
		rp.Cursor = *r.Cursor
	}
	return rp
}

// StartReplay implements gateway.ReplayStore.
func (db *DB) StartReplay(ctx context.Context, service, listener string, since gateway.Since, redeliver bool) (*gateway.Replay, error) {
	if err := groupExists(ctx, db.pool, service, listener); err != nil {
		return nil, err
	}
	var rp *gateway.Replay
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		rp, err = db.startReplayTx(ctx, tx, service, listener, since, redeliver)
		return err
	})
	return rp, err
}

// startReplayTx records a replay and queues its job in tx. A rewind
// (redeliver) stops at now: later events are delivered as they are fired. A
// new group's replay runs a minute past now, to catch events whose fires
// began before the group existed and committed after; it skips events
// that already have a delivery to the group, so none is queued twice.
func (db *DB) startReplayTx(ctx context.Context, tx pgx.Tx, service, listener string, since gateway.Since, redeliver bool) (*gateway.Replay, error) {
	var fromID *string
	var sinceTime *time.Time
	switch {
	case since.EventID != "":
		fromID = &since.EventID
	case !since.Time.IsZero():
		sinceTime = &since.Time
	}
	slack := time.Minute
	if redeliver {
		slack = 0
	}
	// An ordered group's replay moves its position back: its own job
	// delivers the events again, in order. The replay is done at once.
	ordered, err := db.rewindOrdered(ctx, tx, service, listener, since)
	if err != nil {
		return nil, err
	}
	rows, err := tx.Query(ctx, `
		INSERT INTO lightbus_replay (service, listener, from_id, since, until, redeliver, state, finished_at)
		VALUES ($1, $2, $3, $4, now() + $5 * interval '1 microsecond', $6,
		        CASE WHEN $7 THEN 'done' ELSE 'running' END, CASE WHEN $7 THEN now() END)
		RETURNING `+replayColumns, service, listener, fromID, sinceTime, slack.Microseconds(), redeliver, ordered)
	if err != nil {
		return nil, err
	}
	row, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[replayRow])
	if err != nil {
		return nil, err
	}
	if ordered {
		return row.replay(), nil
	}
	if _, err := db.river.InsertTx(ctx, tx, dispatch.ReplayArgs{ReplayID: row.ID}, nil); err != nil {
		return nil, fmt.Errorf("queue replay: %w", err)
	}
	return row.replay(), nil
}

// ReplayPage implements gateway.ReplayStore.
func (db *DB) ReplayPage(ctx context.Context, replayID int64, limit int) (bool, error) {
	done := false
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+replayColumns+` FROM lightbus_replay WHERE id = $1 FOR UPDATE`, replayID)
		if err != nil {
			return err
		}
		rp, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[replayRow])
		if errors.Is(err, pgx.ErrNoRows) {
			done = true // the group, and with it the replay, is gone
			return nil
		}
		if err != nil {
			return err
		}
		if rp.State == "done" {
			done = true
			return nil
		}
		var maxAttempts, timeoutMS int
		if err := tx.QueryRow(ctx, `SELECT max_attempts, timeout_ms FROM lightbus_listener WHERE service = $1 AND name = $2`,
			rp.Service, rp.Listener).Scan(&maxAttempts, &timeoutMS); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, replayPageSQL, rp.Service, rp.Listener, rp.Cursor, rp.FromID, rp.Since, rp.Until, limit, rp.Redeliver)
		if err != nil {
			return err
		}
		var ids []string
		var last string
		n := 0
		for rows.Next() {
			var id string
			var needed bool
			if err := rows.Scan(&id, &needed); err != nil {
				rows.Close()
				return err
			}
			n++
			last = id
			if needed {
				ids = append(ids, id)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) > 0 {
			// The page's deliveries, in batches (deliveryJobs).
			g := subscribedGroup{service: rp.Service, listener: rp.Listener, maxAttempts: maxAttempts, timeoutMS: timeoutMS}
			if _, err := db.river.InsertManyFastTx(ctx, tx, deliveryJobs(g, ids, db.batchMax)); err != nil {
				return fmt.Errorf("queue replayed deliveries: %w", err)
			}
		}
		done = n < limit
		var cursor *string
		if last != "" {
			cursor = &last
		}
		_, err = tx.Exec(ctx, `
			UPDATE lightbus_replay SET cursor = COALESCE($2::uuid, cursor), queued = queued + $3,
				state = CASE WHEN $4 THEN 'done' ELSE state END,
				finished_at = CASE WHEN $4 THEN now() ELSE finished_at END
			WHERE id = $1`, replayID, cursor, len(ids), done)
		return err
	})
	return done, err
}

// latestReplays returns each group's latest replay, from the read pool
// (ListListeners).
func (db *DB) latestReplays(ctx context.Context) (map[[2]string]*gateway.Replay, error) {
	rows, err := db.read.Query(ctx, `
		SELECT DISTINCT ON (service, listener) `+replayColumns+`
		FROM lightbus_replay ORDER BY service, listener, id DESC`)
	if err != nil {
		return nil, translate(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByName[replayRow])
	if err != nil {
		return nil, translate(err)
	}
	m := make(map[[2]string]*gateway.Replay, len(got))
	for i := range got {
		m[[2]string{got[i].Service, got[i].Listener}] = got[i].replay()
	}
	return m, nil
}
