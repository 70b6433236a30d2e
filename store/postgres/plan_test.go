package postgres_test

import (
	"flag"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/store/postgres"
)

// seedMillion turns TestMillionEventPlans on: it is a measuring tool (a
// few minutes), not part of the default run. docs/INSPECTING.md shows its
// output and the command.
var (
	seedMillion = flag.Bool("seed-million", false, "TestMillionEventPlans: seed events into a scratch database and print the plans and timings of the listing and stream queries")
	seedEvents  = flag.Int("seed-events", 1_000_000, "how many events -seed-million seeds")
)

// TestMillionEventPlans seeds a scratch database with -seed-events events
// (20 APIs, 10 event names, parameters with a nested city out of 50 and a
// total out of 1000; ids UUIDv7 over about a day, 50,000 events per
// transaction) and prints EXPLAIN (ANALYZE, BUFFERS) and the median time of
// 5 runs for the typical queries, as the store builds them.
//
//	go test -run TestMillionEventPlans -v -timeout 30m ./store/postgres/ -seed-million
func TestMillionEventPlans(t *testing.T) {
	if !*seedMillion {
		t.Skip("a measuring tool: run with -seed-million")
	}
	ctx, bundle := setup(t)
	n := *seedEvents
	start := time.Now()
	const perTx = 50_000
	for from := 0; from < n; from += perTx {
		to := min(from+perTx, n)
		_, err := bundle.pool.Exec(ctx, `
			INSERT INTO lightbus_event (id, api, name, params, created_at)
			SELECT (lpad(to_hex((extract(epoch FROM ts) * 1000)::bigint), 12, '0') || '7' || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid,
			       (ARRAY['auth','auth.admin','shop','shop.eu','shop.us','billing','billing.tax','support','support.case','crm',
			              'crm.lead','mail','search','media','media.image','ads','stats','geo','chat','jobs'])[1 + i % 20],
			       (ARRAY['user_registered','user_deleted','order_placed','order_cancelled','invoice_sent',
			              'page_viewed','message_sent','file_uploaded','job_done','user_updated'])[1 + (i / 20) % 10],
			       json_build_object('user', json_build_object('id', i, 'address', json_build_object('city',
			                 (ARRAY['London','Paris','Berlin','Madrid','Rome'])[1 + i % 5] || (CASE WHEN i % 50 < 5 THEN '' ELSE (i % 50)::text END))),
			                 'total', i % 1000, 'plan', (ARRAY['free','pro','team'])[1 + i % 3]),
			       ts
			FROM (SELECT i, md5(i::text) AS h, now() - ($2::int - i) * interval '86 milliseconds' AS ts
			      FROM generate_series($1::int, $2::int - 1) AS i) s`, from, to)
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bundle.pool.Exec(ctx, `VACUUM ANALYZE lightbus_event`); err != nil {
		t.Fatal(err)
	}
	var size string
	if err := bundle.pool.QueryRow(ctx, `SELECT pg_size_pretty(sum(pg_total_relation_size(relid))) FROM pg_partition_tree('lightbus_event')`).Scan(&size); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("seeded %d events in %s; lightbus_event's partitions with their indexes: %s\n\n", n, time.Since(start).Round(time.Second), size)

	var behind gateway.StreamCursor // the stream ten minutes back
	var id string
	var xid uint64
	if err := bundle.pool.QueryRow(ctx, `SELECT id::text, xid::text::bigint FROM lightbus_event WHERE created_at < now() - interval '10 minutes' ORDER BY created_at DESC LIMIT 1`).Scan(&id, &xid); err != nil {
		t.Fatal(err)
	}
	behind = gateway.StreamCursor{XID: xid, ID: uuid.MustParse(id), Time: time.Now()}
	where := func(s ...string) []gateway.Condition {
		c, err := gateway.ParseConditions(s)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	explain := func(name, sql string, args []any) {
		rows, err := bundle.pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+sql, append([]any{pgx.QueryExecModeExec}, args...)...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		fmt.Printf("-- %s\n%s\n\n", name, strings.Join(plan, "\n"))
	}
	timed := func(name string, run func() error) {
		var times []time.Duration
		for range 5 {
			start := time.Now()
			if err := run(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			times = append(times, time.Since(start))
		}
		slices.Sort(times)
		fmt.Printf("== %s: median %s of 5 (min %s, max %s)\n", name, times[2].Round(10*time.Microsecond),
			times[0].Round(10*time.Microsecond), times[4].Round(10*time.Microsecond))
	}
	for _, c := range []struct {
		name string
		f    gateway.EventFilter
	}{
		{"newest page: GET /v1/events", gateway.EventFilter{}},
		{"api wildcard: ?api=shop.*", gateway.EventFilter{API: "shop.*"}},
		{"event wildcard: ?event=*_placed", gateway.EventFilter{Event: "*_placed"}},
		{"both wildcards, 1.5%: ?api=*.case&event=user_*", gateway.EventFilter{API: "*.case", Event: "user_*"}},
		{"exact names: ?api=auth&event=user_registered", gateway.EventFilter{API: "auth", Event: "user_registered"}},
		{"where equality, 2%: ?where=user.address.city=London", gateway.EventFilter{Where: where("user.address.city=London")}},
		{"rare where equality, 1 event: ?where=user.id=123456", gateway.EventFilter{Where: where("user.id=123456")}},
		{"where numeric + api, 0.2%: ?api=billing&where=total>=950", gateway.EventFilter{API: "billing", Where: where("total>=950")}},
	} {
		q := gateway.EventQuery{EventFilter: c.f, Limit: 100}
		var got int
		timed(c.name, func() error {
			evs, err := bundle.db.ListEvents(ctx, q)
			got = len(evs)
			return err
		})
		fmt.Printf("(%d events)\n", got)
		if len(c.f.Where) > 0 {
			sql, args := postgres.ListEventsSQL(q, postgres.RecentScan)
			explain("first try: the newest events", sql, args)
		}
		sql, args := postgres.ListEventsSQL(q, 0)
		explain("the whole query", sql, args)
	}
	f := gateway.EventFilter{API: "shop"}
	timed("stream read of 500, 10 minutes behind: /v1/events/stream?api=shop", func() error {
		_, _, err := bundle.db.StreamEvents(ctx, behind, f, 500)
		return err
	})
	sql, args := postgres.StreamEventsSQL(behind, f, 500)
	explain("stream read", sql, args)
}
