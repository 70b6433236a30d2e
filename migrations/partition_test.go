package migrations_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/migrations"
	"github.com/lightbus-go/lightbus/store/postgres"
)

// TestEventTablePartitioned: migration 11 makes an existing event table
// the first partition of the partitioned one, without losing an event, a
// key, a column, an index or a delivery; fires then land in it, and a key
// taken before the migration is still taken. Its Down puts every event back
// in one table.
func TestEventTablePartitioned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, provider := migratedTo(t, 9)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	// Three events of the old table, one with a key and a trace, each with
	// a delivery job.
	ids := []string{"01936f6e-0000-7000-8000-000000000001", "01936f6e-0000-7000-8000-000000000002", "01936f6e-0000-7000-8000-000000000003"}
	exec(`INSERT INTO lightbus_event (id, api, name, params, idempotency_key, created_at, traceparent) VALUES
		($1, 'shop', 'placed', '{"n": 1,  "x":1}', 'k1', now() - interval '1 day', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'),
		($2, 'shop', 'placed', '{"n": 2}', NULL, now(), NULL),
		($3, 'shop', 'paid', '{"n": 3}', NULL, now(), NULL)`, ids[0], ids[1], ids[2])
	exec(`INSERT INTO lightbus_listener (service, name, secret, max_attempts) VALUES ('mail', 'all', 'whsec_x', 5)`)
	exec(`INSERT INTO lightbus_subscription (api, event, service, listener) VALUES ('shop', '*', 'mail', 'all')`)
	for _, id := range ids {
		exec(`INSERT INTO river_job (args, kind, max_attempts, queue, state)
			VALUES (jsonb_build_object('event_id', $1::text, 'service', 'mail', 'listener', 'all'), 'lightbus.delivery', 5, 'lightbus_delivery', 'retryable')`, id)
	}
	var xids string
	if err := pool.QueryRow(ctx, `SELECT string_agg(xid::text, ',' ORDER BY id) FROM lightbus_event`).Scan(&xids); err != nil {
		t.Fatal(err)
	}

	if err := migrations.Up(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}

	var kind string
	if err := pool.QueryRow(ctx, `SELECT relkind::text FROM pg_class WHERE oid = 'lightbus_event'::regclass`).Scan(&kind); err != nil || kind != "p" {
		t.Fatalf("lightbus_event is of kind %q (%v), want partitioned", kind, err)
	}
	rows, _ := pool.Query(ctx, `SELECT c.relname || ' ' || pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'lightbus_event'::regclass ORDER BY 1`)
	parts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != 2 || parts[0] != "lightbus_event_default DEFAULT" || !strings.HasPrefix(parts[1], "lightbus_event_legacy FOR VALUES FROM (MINVALUE) TO ('") {
		t.Fatalf("partitions %q, want the old table from MINVALUE and the DEFAULT one", parts)
	}
	// Every index of the parent, each the old table's own index, attached
	// (not built anew: it keeps its name).
	rows, _ = pool.Query(ctx, `SELECT p.relname || '>' || c.relname FROM pg_inherits i
		JOIN pg_class p ON p.oid = i.inhparent JOIN pg_class c ON c.oid = i.inhrelid
		WHERE p.relkind = 'I' AND c.relname LIKE 'lightbus_event_legacy%'
		  AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'lightbus_event'::regclass) ORDER BY 1`)
	indexes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := "lightbus_event_api_name_id>lightbus_event_legacy_api_name_id lightbus_event_created_at>lightbus_event_legacy_created_at " +
		"lightbus_event_params>lightbus_event_legacy_params lightbus_event_pkey>lightbus_event_legacy_pkey lightbus_event_xid_id>lightbus_event_legacy_xid_id"
	if strings.Join(indexes, " ") != want {
		t.Fatalf("indexes %q, want %q", indexes, want)
	}
	var after, params, tp string
	if err := pool.QueryRow(ctx, `SELECT string_agg(xid::text, ',' ORDER BY id), min(params::text), min(traceparent) FROM lightbus_event_legacy`).
		Scan(&after, &params, &tp); err != nil {
		t.Fatal(err)
	}
	if after != xids || params != `{"n": 1,  "x":1}` || tp == "" {
		t.Fatalf("events after: xids %s (want %s), params %s, traceparent %q", after, xids, params, tp)
	}

	// The store on it: the deliveries are the events' still, a fire lands,
	// the key taken before is taken.
	db, err := postgres.New(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	detail, err := db.GetEvent(ctx, ids[0])
	if err != nil || len(detail.Deliveries) != 1 || detail.IdempotencyKey != "k1" {
		t.Fatalf("GetEvent after the migration = %+v, %v; want its delivery and key", detail, err)
	}
	repeat, err := gateway.NewEvent("shop", "placed", json.RawMessage(`{"n": 1,  "x":1}`))
	if err != nil {
		t.Fatal(err)
	}
	repeat.IdempotencyKey = "k1"
	res, err := db.FireEvent(ctx, repeat, 48*time.Hour)
	if err != nil || !res.Repeat || res.ID != ids[0] || res.Deliveries != 1 {
		t.Fatalf("fire with the old key = %+v, %v; want a repeat of %s", res, err, ids[0])
	}
	fresh, err := gateway.NewEvent("shop", "placed", json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := db.FireEvent(ctx, fresh, time.Hour); err != nil || res.Repeat || res.Deliveries != 1 {
		t.Fatalf("a fire after the migration = %+v, %v", res, err)
	}
	if _, err := db.EnsurePartitions(ctx, time.Now().Add(72*time.Hour), 24*time.Hour, 0); err != nil {
		t.Fatal(err)
	}

	// Down: one table again, every event in it, the key unique.
	if _, err := provider.Down(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT relkind::text, (SELECT count(*) FROM lightbus_event) FROM pg_class WHERE oid = 'lightbus_event'::regclass`).
		Scan(&kind, &n); err != nil || kind != "r" || n != 4 {
		t.Fatalf("after Down: kind %q, %d events, %v; want a table of 4", kind, n, err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO lightbus_event (id, api, name, params, idempotency_key) VALUES ($1, 'shop', 'x', '{}', 'k1')`,
		"01936f6e-0000-7000-8000-000000000009"); err == nil {
		t.Fatal("after Down, a second event took key k1")
	}
}
