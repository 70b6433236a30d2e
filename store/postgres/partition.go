package postgres

// Time partitions of lightbus_event (migration 00011).
//
// lightbus_event is partitioned by RANGE (id). Event ids are UUIDv7, whose
// first 48 bits are the milliseconds since the Unix epoch, so the ids of a
// span of time [from, to) are the ids from uuidAt(from) up to uuidAt(to)
// (the other 80 bits zero): a partition is a span of time. The gateway
// creates the partitions ahead (EnsurePartitions, at start and in each
// prune run); the DEFAULT partition takes any event outside them, and its
// events move to a partition made for their span later. Retention drops a
// partition whose whole span is older than the cutoff and which holds no
// event that pruning must keep (DropEventPartitions); the events of the
// other partitions are deleted in batches (PruneEvents), as before.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// partitionLockKey is the advisory lock that makes one replica at a time
// create partitions ("lbpartit" in ASCII).
const partitionLockKey int64 = 0x6c62_7061_7274_6974

// PartitionLockTimeout bounds how long dropping a partition waits for its
// lock. Dropping a partition takes an ACCESS EXCLUSIVE lock on
// lightbus_event for the moment of the drop: it waits for the transactions
// reading or writing events to end, and fires arriving meanwhile wait behind
// it. A drop that cannot have the lock within this time gives up until the
// next prune run, so fires never wait longer (docs/OPERATING.md).
const PartitionLockTimeout = time.Second

// EventPartition is a partition of lightbus_event: the span of time of its
// event ids, [From, To). From is zero for the first partition (every id
// before To), To zero for a partition without end; Default is the DEFAULT
// partition, which takes the events outside every other.
type EventPartition struct {
	Name     string
	From, To time.Time
	Default  bool
}

// contains reports whether t is in p's span.
func (p EventPartition) contains(t time.Time) bool {
	return !p.Default && (p.From.IsZero() || !t.Before(p.From)) && (p.To.IsZero() || t.Before(p.To))
}

// uuidAt is the smallest UUIDv7 of time t (to the millisecond).
func uuidAt(t time.Time) uuid.UUID {
	var u uuid.UUID
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(t.UnixMilli()))
	copy(u[:6], ms[2:])
	return u
}

// uuidTime is the time of UUIDv7 u.
func uuidTime(u uuid.UUID) time.Time {
	var ms [8]byte
	copy(ms[2:], u[:6])
	return time.UnixMilli(int64(binary.BigEndian.Uint64(ms[:]))).UTC()
}

// partitionBoundRE matches a range partition's bound as pg_get_expr shows it.
var partitionBoundRE = regexp.MustCompile(`^FOR VALUES FROM \((MINVALUE|'[0-9a-f-]{36}')\) TO \((MAXVALUE|'[0-9a-f-]{36}')\)$`)

// parseBound reads one end of a range bound: '<uuid>', or MINVALUE or
// MAXVALUE (the zero time).
func parseBound(s string) (time.Time, error) {
	if s == "MINVALUE" || s == "MAXVALUE" {
		return time.Time{}, nil
	}
	u, err := uuid.Parse(s[1 : len(s)-1])
	if err != nil {
		return time.Time{}, err
	}
	return uuidTime(u), nil
}

const eventPartitionsSQL = `
	SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
	FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
	WHERE i.inhparent = 'lightbus_event'::regclass`

// EventPartitions lists the partitions of lightbus_event, oldest first, the
// DEFAULT partition last.
func (db *DB) EventPartitions(ctx context.Context) ([]EventPartition, error) {
	parts, err := eventPartitions(ctx, db.pool)
	return parts, translate(err)
}

func eventPartitions(ctx context.Context, q querier) ([]EventPartition, error) {
	rows, err := q.Query(ctx, eventPartitionsSQL)
	if err != nil {
		return nil, err
	}
	parts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (EventPartition, error) {
		var p EventPartition
		var bound string
		if err := r.Scan(&p.Name, &bound); err != nil {
			return p, err
		}
		if bound == "DEFAULT" {
			p.Default = true
			return p, nil
		}
		m := partitionBoundRE.FindStringSubmatch(bound)
		if m == nil {
			return p, fmt.Errorf("partition %s: bound %q", p.Name, bound)
		}
		var err error
		if p.From, err = parseBound(m[1]); err != nil {
			return p, fmt.Errorf("partition %s: %w", p.Name, err)
		}
		if p.To, err = parseBound(m[2]); err != nil {
			return p, fmt.Errorf("partition %s: %w", p.Name, err)
		}
		return p, nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(parts, func(a, b EventPartition) int {
		if a.Default != b.Default {
			if a.Default {
				return 1
			}
			return -1
		}
		return a.From.Compare(b.From)
	})
	return parts, nil
}

// gaps returns the parts of [from, to) that no partition of parts covers.
func gaps(parts []EventPartition, from, to time.Time) [][2]time.Time {
	var out [][2]time.Time
	for from.Before(to) {
		covered := false
		for _, p := range parts {
			if p.contains(from) {
				covered = true
				if p.To.IsZero() {
					return out
				}
				from = p.To
				break
			}
		}
		if covered {
			continue
		}
		// from is uncovered: up to the next partition's start, or to.
		end := to
		for _, p := range parts {
			if !p.Default && !p.From.IsZero() && p.From.After(from) && p.From.Before(end) {
				end = p.From
			}
		}
		out = append(out, [2]time.Time{from, end})
		from = end
	}
	return out
}

// partitionName names the partition of events from t.
func partitionName(t time.Time) string {
	return "lightbus_event_p" + t.UTC().Format("20060102t150405")
}

// EnsurePartitions implements dispatch.PruneStore. It creates the partitions of lightbus_event that the
// spans of width from now's (now truncated to width) and the ahead spans
// after it need, and returns how many it created. A span already covered in
// part (by partitions of another width) gets partitions for its uncovered
// parts. Events of the DEFAULT partition that fall in a new partition move
// to it. Replicas take turns (an advisory lock); a partition is attached,
// which takes no lock that fires or reads wait on, but for a moment on the
// DEFAULT partition, which they read.
func (db *DB) EnsurePartitions(ctx context.Context, now time.Time, width time.Duration, ahead int) (int, error) {
	if width < time.Minute {
		return 0, fmt.Errorf("event partition width %s: want at least a minute", width)
	}
	from := now.UTC().Truncate(width)
	to := from.Add(time.Duration(ahead+1) * width)
	created := 0
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, partitionLockKey); err != nil {
			return err
		}
		parts, err := eventPartitions(ctx, tx)
		if err != nil {
			return err
		}
		var def string
		for _, p := range parts {
			if p.Default {
				def = p.Name
			}
		}
		for _, g := range gaps(parts, from, to) {
			// Split at the grid of width, so that a gap after a wider or
			// older partition gets partitions of width.
			for start := g[0]; start.Before(g[1]); {
				end := start.Truncate(width).Add(width)
				if end.After(g[1]) {
					end = g[1]
				}
				if err := createPartition(ctx, tx, def, start, end); err != nil {
					return err
				}
				created++
				start = end
			}
		}
		return nil
	})
	return created, err
}

// createPartition creates and attaches the partition of events from start
// to end, moving into it the events of the DEFAULT partition def that
// belong there.
func createPartition(ctx context.Context, tx pgx.Tx, def string, start, end time.Time) error {
	name := pgx.Identifier{partitionName(start)}.Sanitize()
	lo, hi := uuidAt(start).String(), uuidAt(end).String()
	if _, err := tx.Exec(ctx, `CREATE TABLE `+name+` (LIKE lightbus_event INCLUDING DEFAULTS)`); err != nil {
		return fmt.Errorf("create partition %s: %w", name, err)
	}
	if def != "" {
		const cols = `id, api, name, params, idempotency_key, created_at, traceparent, tracestate, xid`
		if _, err := tx.Exec(ctx, `
			WITH moved AS (DELETE FROM `+pgx.Identifier{def}.Sanitize()+` WHERE id >= $1::uuid AND id < $2::uuid RETURNING `+cols+`)
			INSERT INTO `+name+` (`+cols+`) SELECT `+cols+` FROM moved`, lo, hi); err != nil {
			return fmt.Errorf("move events into partition %s: %w", name, err)
		}
	}
	// The bounds are literals: ATTACH takes no parameters.
	if _, err := tx.Exec(ctx, fmt.Sprintf(`ALTER TABLE lightbus_event ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')`,
		name, lo, hi)); err != nil {
		return fmt.Errorf("attach partition %s: %w", name, err)
	}
	return nil
}

// DroppedPartitions is what DropEventPartitions did: the partitions it
// dropped, those it kept because they hold an event that pruning must keep
// (their other events are left to PruneEvents), and those whose lock it
// could not have within PartitionLockTimeout (left to the next run).
type DroppedPartitions struct {
	Dropped, Kept, Busy []string
}

// DropEventPartitions drops every partition of lightbus_event whose span
// ends at or before cutoff, with the idempotency keys of its events, unless
// it holds an event that pruning keeps (eventKept: one with an unfinished
// or dead delivery, unless undelivered is set). Each partition is checked
// and dropped in a transaction of its own.
func (db *DB) DropEventPartitions(ctx context.Context, cutoff time.Time, undelivered bool) (DroppedPartitions, error) {
	var out DroppedPartitions
	if !undelivered {
		// Nor a partition holding an event an ordered group is still owed.
		var err error
		if cutoff, err = db.orderedCutoff(ctx, cutoff); err != nil {
			return out, err
		}
	}
	parts, err := db.EventPartitions(ctx)
	if err != nil {
		return out, err
	}
	for _, p := range parts {
		if p.Default || p.To.IsZero() || p.To.After(cutoff) {
			continue
		}
		kept, err := db.dropPartition(ctx, p, undelivered)
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && pgErr.Code == "55P03": // lock_not_available
			out.Busy = append(out.Busy, p.Name)
		case err != nil:
			return out, translate(err)
		case kept:
			out.Kept = append(out.Kept, p.Name)
		default:
			out.Dropped = append(out.Dropped, p.Name)
		}
	}
	return out, nil
}

// dropPartition drops partition p unless it holds an event that pruning
// keeps (keptInRangeSQL, over the range of p's ids), and reports whether it
// kept it. The check reads the unfinished and dead deliveries and takes no
// lock that fires wait on; the drop then locks lightbus_event, at most
// PartitionLockTimeout.
func (db *DB) dropPartition(ctx context.Context, p EventPartition, undelivered bool) (kept bool, err error) {
	name := pgx.Identifier{p.Name}.Sanitize()
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return false, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, PartitionLockTimeout.Milliseconds())); err != nil {
		return false, err
	}
	lo := uuid.Nil
	if !p.From.IsZero() {
		lo = uuidAt(p.From)
	}
	hi := uuidAt(p.To)
	if err := tx.QueryRow(ctx, keptInRangeSQL, lo.String(), hi.String(), undelivered).Scan(&kept); err != nil {
		return false, err
	}
	if kept {
		return true, nil
	}
	// The keys of its events go with it: by the range of their ids.
	if _, err := tx.Exec(ctx, `DELETE FROM lightbus_event_key WHERE event_id >= $1::uuid AND event_id < $2::uuid`,
		lo.String(), hi.String()); err != nil {
		return false, err
	}
	if _, err := tx.Exec(ctx, `DROP TABLE `+name); err != nil {
		return false, err
	}
	return false, tx.Commit(ctx)
}

// DropPartitions implements dispatch.PruneStore (DropEventPartitions).
func (db *DB) DropPartitions(ctx context.Context, cutoff time.Time, undelivered bool) (dropped, left int, err error) {
	d, err := db.DropEventPartitions(ctx, cutoff, undelivered)
	return len(d.Dropped), len(d.Kept) + len(d.Busy), err
}
