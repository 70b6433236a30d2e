package postgres

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

// A transaction begun in a pipelined batch commits, rolls back and reports
// a failed transaction like one of pgx's, and leaves its connection idle.
func TestBegunTx(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := t.Context()
	if _, err := pool.Exec(ctx, `CREATE TABLE begun (n int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	// begin sends BEGIN and an insert of n in one batch.
	begin := func(t *testing.T, n int) (*pgxpool.Conn, *begunTx) {
		t.Helper()
		conn, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(conn.Release)
		tx := &begunTx{conn: conn.Conn()}
		b := &pgx.Batch{}
		b.Queue("BEGIN")
		b.Queue(`INSERT INTO begun VALUES ($1)`, n)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			t.Fatal(err)
		}
		if s := conn.Conn().PgConn().TxStatus(); s != 'T' {
			t.Fatalf("after the batch: transaction status %c, want T", s)
		}
		return conn, tx
	}
	stored := func(t *testing.T, n int) bool {
		t.Helper()
		var found bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM begun WHERE n = $1)`, n).Scan(&found); err != nil {
			t.Fatal(err)
		}
		return found
	}
	idle := func(t *testing.T, conn *pgxpool.Conn) {
		t.Helper()
		if s := conn.Conn().PgConn().TxStatus(); s != 'I' {
			t.Errorf("transaction status %c, want I", s)
		}
	}

	conn, tx := begin(t, 1)
	if stored(t, 1) {
		t.Error("1 is seen before its commit")
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if !stored(t, 1) {
		t.Error("1 is not stored after its commit")
	}
	idle(t, conn)
	if err := tx.Commit(ctx); !errors.Is(err, pgx.ErrTxClosed) {
		t.Errorf("a second commit: %v, want ErrTxClosed", err)
	}
	if err := tx.Rollback(ctx); !errors.Is(err, pgx.ErrTxClosed) {
		t.Errorf("a rollback after commit: %v, want ErrTxClosed", err)
	}

	conn, tx = begin(t, 2)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if stored(t, 2) {
		t.Error("2 is stored after its rollback")
	}
	idle(t, conn)

	// A failed statement fails the transaction: its commit rolls back.
	conn, tx = begin(t, 3)
	if _, err := tx.Exec(ctx, `INSERT INTO begun VALUES (1)`); err == nil {
		t.Fatal("a duplicate insert succeeded")
	}
	if err := tx.Commit(context.Background()); !errors.Is(err, pgx.ErrTxCommitRollback) {
		t.Errorf("commit of a failed transaction: %v, want ErrTxCommitRollback", err)
	}
	if stored(t, 3) {
		t.Error("3 is stored after its transaction failed")
	}
	idle(t, conn)

	if _, err := tx.Begin(ctx); err == nil {
		t.Error("a savepoint was begun")
	}
}
