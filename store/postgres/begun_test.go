package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lightbus-go/lightbus/gateway"
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

// A lone event's transaction sends its COMMIT in the pipeline of its
// statement. A statement that fails leaves nothing stored and is no failed
// COMMIT (a batched fire may then be retried alone); a COMMIT that fails is
// one (the fire may be stored: only a keyed fire is retried).
func TestLoneFireCommitsInItsPipeline(t *testing.T) {
	t.Parallel()
	pool := pgtest.New(t)
	ctx := t.Context()
	db, err := New(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `
		CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.params::text LIKE '%"refused"%' THEN RAISE EXCEPTION 'refused at commit'; END IF;
			RETURN NULL;
		END $$;
		CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON lightbus_event
		DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit()`); err != nil {
		t.Fatal(err)
	}
	stored := func(t *testing.T, id string) bool {
		t.Helper()
		var found bool
		if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM lightbus_event WHERE id = $1)`, id).Scan(&found); err != nil {
			t.Fatal(err)
		}
		return found
	}
	fanOutOne := func(t *testing.T, ev *gateway.Event) (*fanOut, *stagedEvent, error) {
		t.Helper()
		f := &fanOut{}
		st := f.stage(ev)
		return f, st, db.fanOutTx(ctx, f)
	}
	newEvent := func(t *testing.T, params string) *gateway.Event {
		t.Helper()
		ev, err := gateway.NewEvent("api", "ev", json.RawMessage(params))
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}

	ev := newEvent(t, `{}`)
	f, st, err := fanOutOne(t, ev)
	if err != nil || !f.committed || !st.stored || !stored(t, ev.ID) {
		t.Fatalf("a lone fire: %v, committed in the pipeline %v, stored %v", err, f.committed, st.stored)
	}

	// The same id again: its insert fails, the COMMIT after it never runs.
	again := newEvent(t, `{"again": true}`)
	again.ID = ev.ID
	_, _, err = fanOutOne(t, again)
	if uncertain, _ := commitFailed(err); err == nil || uncertain {
		t.Errorf("a lone fire whose insert fails: %v (a failed COMMIT: %v), want an error before the COMMIT", err, uncertain)
	}

	refused := newEvent(t, `{"refused": true}`)
	f, _, err = fanOutOne(t, refused)
	if uncertain, _ := commitFailed(err); err == nil || !uncertain || !f.committed {
		t.Errorf("a lone fire refused at COMMIT: %v (a failed COMMIT: %v), want a failed COMMIT", err, uncertain)
	}
	if stored(t, refused.ID) {
		t.Error("the fire refused at COMMIT is stored")
	}

	// Nothing is left in a transaction: the pool's connections are idle.
	var open int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND state LIKE 'idle in transaction%'`).Scan(&open); err != nil {
		t.Fatal(err)
	}
	if open != 0 {
		t.Errorf("%d connections idle in a transaction", open)
	}
}
