package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// fanOutTx stores f's events and queues their deliveries in a transaction
// of its own, committed when it returns nil. Its BEGIN goes to Postgres at
// the head of f's pipelined statements instead of alone, so the transaction
// takes one round trip less than one of inTx. The transaction of a lone
// event sends its COMMIT in the same pipeline too: one round trip in all,
// with or without listener groups (its deliveries are inserted by the
// statement that stores it, see fanOut.inline).
//
// A COMMIT sent in the pipeline runs only if every statement before it
// succeeded (Postgres skips the rest of a pipeline after an error). When an
// error leaves it unknown whether the COMMIT ran (the connection failed
// before the event's statement was answered, or the COMMIT itself failed),
// the error is a commitError, as a failed COMMIT of its own would be.
func (db *DB) fanOutTx(ctx context.Context, f *fanOut) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return translate(err)
	}
	// A connection left in a transaction (a failed ROLLBACK, a cancelled
	// round trip) is closed by Release, never reused.
	defer conn.Release()
	tx := &begunTx{conn: conn.Conn()}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	f.batch.QueuedQueries = append([]*pgx.QueuedQuery{{SQL: "BEGIN"}}, f.batch.QueuedQueries...)
	f.commit = len(f.events) == 1
	if err := db.flush(ctx, tx, f); err != nil {
		var pgErr *pgconn.PgError
		if f.committed && (f.answered == len(f.events) || !errors.As(err, &pgErr)) {
			return &commitError{translate(err)}
		}
		return translate(err)
	}
	if f.committed {
		tx.closed = true
		return nil
	}
	if err := tx.Commit(ctx); err != nil {
		return &commitError{translate(err)}
	}
	return nil
}

// commitError is a failed COMMIT: unlike a failure before it, the
// transaction may have committed (the answer may be what was lost).
type commitError struct{ err error }

func (e *commitError) Error() string { return e.err.Error() }
func (e *commitError) Unwrap() error { return e.err }

// commitFailed reports whether err is a failed COMMIT, and returns err
// without that mark, as the store's callers get it.
func commitFailed(err error) (bool, error) {
	var ce *commitError
	if errors.As(err, &ce) {
		return true, ce.err
	}
	return false, err
}

// begunTx is a transaction on conn whose BEGIN was sent in a pipelined
// batch (see fanOutTx). It is a pgx.Tx so that River can insert jobs in it;
// it has no savepoints.
type begunTx struct {
	conn   *pgx.Conn
	closed bool
}

var errNoSavepoints = errors.New("postgres: this transaction has no savepoints")

func (t *begunTx) Begin(context.Context) (pgx.Tx, error) { return nil, errNoSavepoints }

// Commit commits; like pgx's own transactions it reports a transaction that
// had failed, which COMMIT rolls back, as pgx.ErrTxCommitRollback.
func (t *begunTx) Commit(ctx context.Context) error {
	if t.closed {
		return pgx.ErrTxClosed
	}
	t.closed = true
	tag, err := t.conn.Exec(ctx, "COMMIT")
	if err != nil {
		return err
	}
	if tag.String() == "ROLLBACK" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

func (t *begunTx) Rollback(ctx context.Context) error {
	if t.closed {
		return pgx.ErrTxClosed
	}
	t.closed = true
	_, err := t.conn.Exec(ctx, "ROLLBACK")
	return err
}

func (t *begunTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	return t.conn.CopyFrom(ctx, table, columns, src)
}

func (t *begunTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	return t.conn.SendBatch(ctx, b)
}

func (t *begunTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

func (t *begunTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return t.conn.Prepare(ctx, name, sql)
}

func (t *begunTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return t.conn.Exec(ctx, sql, args...)
}

func (t *begunTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return t.conn.Query(ctx, sql, args...)
}

func (t *begunTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return t.conn.QueryRow(ctx, sql, args...)
}

func (t *begunTx) Conn() *pgx.Conn { return t.conn }
