package postgres_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/store/postgres"
)

var (
	retentionEvents = flag.Int("retention-events", 200_000, "BenchmarkRetention: events seeded over -retention-days days")
	retentionDays   = flag.Int("retention-days", 10, "BenchmarkRetention: days the seeded events span, a partition each")
)

// BenchmarkRetention measures retention on a table of -retention-events
// events (each with an idempotency key, as the Go client fires them) spread
// over -retention-days day partitions ending three days ago, with a 7-day
// retention: the partitions wholly older than the cutoff are dropped, but
// one, which holds an event with a retryable delivery and is kept, its other
// events then deleted in batches of 1000 as before partitioning. It prints
// the time of each, the table and index sizes before and after, and the
// latency of fires from 8 goroutines (group commit on, no listener group)
// while each runs, against the same fires with nothing else running. Each
// run seeds a scratch database of its own and drops it at the end, and
// analyzes the tables as autovacuum would (the test server may run without
// it).
//
//	go test ./store/postgres/ -run '^$' -bench BenchmarkRetention -benchtime 1x -timeout 2h -retention-events 10000000
func BenchmarkRetention(b *testing.B) {
	for range b.N {
		retentionRun(b, *retentionEvents, *retentionDays)
	}
}

// relationSizes are the bytes of lightbus_event's partitions (heap and
// TOAST) and of their indexes, and of lightbus_event_key with its indexes.
type relationSizes struct{ table, indexes, keys int64 }

func (s relationSizes) String() string {
	mb := func(n int64) string { return fmt.Sprintf("%.0f MB", float64(n)/(1<<20)) }
	return fmt.Sprintf("events %s, their indexes %s, keys with their indexes %s", mb(s.table), mb(s.indexes), mb(s.keys))
}

func retentionRun(b *testing.B, events, days int) {
	ctx, bundle := setup(b)
	db, pool := bundle.db, bundle.pool
	db.EnableFireBatching(postgres.FireBatchConfig{Window: time.Millisecond, MaxSize: 64, MaxInFlight: 4})
	defer db.Close()
	exec := func(sql string, args ...any) {
		b.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			b.Fatal(err)
		}
	}
	sizes := func() relationSizes {
		b.Helper()
		var s relationSizes
		if err := pool.QueryRow(ctx, `
			SELECT COALESCE(sum(pg_table_size(relid)), 0)::bigint, COALESCE(sum(pg_indexes_size(relid)), 0)::bigint,
			       pg_total_relation_size('lightbus_event_key')
			FROM pg_partition_tree('lightbus_event') WHERE isleaf`).Scan(&s.table, &s.indexes, &s.keys); err != nil {
			b.Fatal(err)
		}
		return s
	}

	// Partitions: the first one (empty here) goes, then a day each from
	// the first seeded day to the days ahead of today.
	now := time.Now().UTC()
	if _, err := db.DropEventPartitions(ctx, now.AddDate(1, 0, 0), false); err != nil {
		b.Fatal(err)
	}
	first := now.Truncate(24*time.Hour).AddDate(0, 0, -3-days)
	if _, err := db.EnsurePartitions(ctx, first, 24*time.Hour, days+3+2); err != nil {
		b.Fatal(err)
	}
	// The group of the stuck delivery below; the fires of the load have
	// none, so that river_job stays as small as a bus whose deliveries keep
	// up leaves it (see docs/PERFORMANCE.md on the checks' plans).
	register(ctx, b, db, registration("m1", "mail", nil,
		gateway.ListenerDeclaration{Name: "all", Events: []string{"seed.*"}, Path: "/e"}))

	start := time.Now()
	perDay := events / days
	const perTx = 250_000
	for d := range days {
		dayStart := first.AddDate(0, 0, d)
		for from := 0; from < perDay; from += perTx {
			to := min(from+perTx, perDay)
			exec(`
				WITH ev AS (
					INSERT INTO lightbus_event (id, api, name, params, idempotency_key, created_at)
					SELECT (lpad(to_hex(ms), 12, '0') || '7' || substr(h, 1, 3) || '8' || substr(h, 4, 15))::uuid,
					       'seed', 'placed', json_build_object('n', i, 'city', 'London'), 'k' || $4::int || '-' || i,
					       to_timestamp(ms / 1000.0)
					FROM (SELECT i, md5($4::int || '-' || i) AS h,
					             (extract(epoch FROM $1::timestamptz) * 1000)::bigint + (i::bigint * 86400000 / $3::int) AS ms
					      FROM generate_series($2::int, $5::int - 1) AS i) s
					RETURNING id, idempotency_key)
				INSERT INTO lightbus_event_key (api, key, event_id) SELECT 'seed', idempotency_key, id FROM ev`,
				dayStart, from, perDay, d, to)
		}
	}
	// One event of the oldest day but one still owes a delivery.
	stuckDay := first.AddDate(0, 0, 1)
	exec(`INSERT INTO river_job (args, kind, max_attempts, queue, state, scheduled_at)
		SELECT jsonb_build_object('event_id', id::text, 'service', 'mail', 'listener', 'all'), 'lightbus.delivery', 25, 'lightbus_delivery', 'retryable', now() + interval '1 hour'
		FROM lightbus_event WHERE created_at >= $1 ORDER BY created_at LIMIT 1`, stuckDay)
	exec(`VACUUM ANALYZE lightbus_event`)
	exec(`VACUUM ANALYZE lightbus_event_key`)
	before := sizes()
	fmt.Printf("seeded %d events over %d days in %s; %s\n", perDay*days, days, time.Since(start).Round(time.Second), before)

	// Fires from 8 goroutines while fn runs, or for d when fn is nil.
	fires := func(what string, d time.Duration, fn func() error) []time.Duration {
		b.Helper()
		var mu sync.Mutex
		var lat []time.Duration
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					ev, err := gateway.NewEvent("load", "placed", json.RawMessage(`{"n": 1}`))
					if err != nil {
						panic(err)
					}
					t0 := time.Now()
					if _, err := db.FireEvent(context.Background(), ev, time.Hour); err != nil {
						panic(err)
					}
					mu.Lock()
					lat = append(lat, time.Since(t0))
					mu.Unlock()
				}
			}()
		}
		t0 := time.Now()
		var err error
		if fn != nil {
			err = fn()
		} else {
			time.Sleep(d)
		}
		took := time.Since(t0)
		close(stop)
		wg.Wait()
		if err != nil {
			b.Fatalf("%s: %v", what, err)
		}
		slices.Sort(lat)
		q := func(p float64) time.Duration {
			return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(10 * time.Microsecond)
		}
		fmt.Printf("%-34s %9s  fires %6d (%5.0f/s)  p50 %8s  p99 %8s  max %8s\n", what, took.Round(time.Millisecond),
			len(lat), float64(len(lat))/took.Seconds(), q(0.5), q(0.99), lat[len(lat)-1].Round(10*time.Microsecond))
		return lat
	}

	b.ResetTimer()
	fires("fires alone", 10*time.Second, nil)
	// What autovacuum would do (the test server may run without it):
	// river_job's statistics, and its GIN index's pending list flushed.
	exec(`VACUUM ANALYZE river_job`)
	cutoff := now.Truncate(24*time.Hour).AddDate(0, 0, -7) // as a run at midnight
	var dropped postgres.DroppedPartitions
	fires("drop partitions", 0, func() error {
		var err error
		dropped, err = db.DropEventPartitions(ctx, cutoff, false)
		return err
	})
	fmt.Printf("  dropped %d partitions %v, kept %v, busy %v\n", len(dropped.Dropped), dropped.Dropped, dropped.Kept, dropped.Busy)
	exec(`VACUUM ANALYZE river_job`)
	deleted := 0
	fires("delete batches (kept partition)", 0, func() error {
		for {
			n, err := db.PruneEvents(ctx, cutoff, 1000, false)
			if err != nil {
				return err
			}
			deleted += n
			if n < 1000 {
				return nil
			}
		}
	})
	fmt.Printf("  deleted %d events\n", deleted)
	fires("fires alone, after", 10*time.Second, nil)
	b.StopTimer()
	fmt.Printf("after: %s\n", sizes())
	exec(`VACUUM lightbus_event`)
	exec(`VACUUM lightbus_event_key`)
	fmt.Printf("after VACUUM: %s\n", sizes())
}
