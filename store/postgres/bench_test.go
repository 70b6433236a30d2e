package postgres_test

import (
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/store/postgres"
)

// BenchmarkFireEvent measures storing one event and queuing its deliveries
// in one durable transaction, with 0, 1 and 4 subscribed listener groups,
// serially and from parallel goroutines with and without group commit.
func BenchmarkFireEvent(b *testing.B) {
	for _, groups := range []int{0, 1, 4} {
		for _, mode := range []string{"serial", "parallel", "parallel-batched"} {
			b.Run(fmt.Sprintf("groups=%d/%s", groups, mode), func(b *testing.B) {
				ctx, bundle := setup(b)
				if mode == "parallel-batched" {
					bundle.db.EnableFireBatching(postgres.FireBatchConfig{Window: 500 * time.Microsecond, MaxSize: 64, MaxInFlight: 4})
					defer bundle.db.Close()
				}
				var listeners []gateway.ListenerDeclaration
				for g := range groups {
					listeners = append(listeners, gateway.ListenerDeclaration{
						Name: fmt.Sprintf("g%d", g), Events: []string{"customers.new_customer"}, Path: "/e"})
				}
				register(ctx, b, bundle.db, registration("w1", "bench", nil, listeners...))
				params := json.RawMessage(`{"user":"sally","email":"sally@example.com"}`)
				fire := func() {
					ev, err := gateway.NewEvent("customers", "new_customer", params)
					if err != nil {
						b.Fatal(err)
					}
					if res, err := bundle.db.FireEvent(ctx, ev, time.Hour); err != nil || res.Deliveries != groups {
						b.Fatalf("FireEvent = %+v, %v", res, err)
					}
				}
				measure(b, mode == "serial", fire)
			})
		}
	}
}

// BenchmarkDeliveryTarget measures what a delivery reads before its POST
// with the group cached: its event, read alone (serial) or together with
// the events of deliveries starting at the same time (parallel).
func BenchmarkDeliveryTarget(b *testing.B) {
	for _, mode := range []string{"serial", "parallel"} {
		b.Run(mode, func(b *testing.B) {
			ctx, bundle := setup(b, postgres.WithDeliveryTargetTTL(time.Hour))
			register(ctx, b, bundle.db, registration("w1", "bench", nil, gateway.ListenerDeclaration{
				Name: "g0", Events: []string{"customers.new_customer"}, Path: "/e"}))
			ids := make([]string, 256)
			for i := range ids {
				ev, err := gateway.NewEvent("customers", "new_customer", json.RawMessage(`{"user":"sally"}`))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := bundle.db.FireEvent(ctx, ev, time.Hour); err != nil {
					b.Fatal(err)
				}
				ids[i] = ev.ID
			}
			var next atomic.Uint64
			read := func() {
				id := ids[next.Add(1)%uint64(len(ids))]
				if target, err := bundle.db.DeliveryTarget(ctx, id, "bench", "g0"); err != nil || target.Event.ID != id {
					b.Fatalf("DeliveryTarget(%s) = %+v, %v", id, target, err)
				}
			}
			measure(b, mode == "serial", read)
		})
	}
}

// measure runs op b.N times, one at a time when serial, else from 16
// goroutines a core.
func measure(b *testing.B, serial bool, op func()) {
	b.ReportAllocs()
	b.ResetTimer()
	if serial {
		for b.Loop() {
			op()
		}
		return
	}
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			op()
		}
	})
}

// BenchmarkFireEvents measures a batch fire: n events without keys stored in
// one durable transaction (one op is one batch), with no listener group.
func BenchmarkFireEvents(b *testing.B) {
	for _, n := range []int{4, 16, 100} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			ctx, bundle := setup(b)
			params := json.RawMessage(`{"user":"sally","email":"sally@example.com"}`)
			measure(b, true, func() {
				evs := make([]*gateway.Event, n)
				for i := range evs {
					ev, err := gateway.NewEvent("customers", "new_customer", params)
					if err != nil {
						b.Fatal(err)
					}
					evs[i] = ev
				}
				if _, err := bundle.db.FireEvents(ctx, evs, time.Hour); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

// BenchmarkFireIndexCost measures what migration 00007 costs a fire: the
// xid column with its index, and the GIN index on the parameters, against
// the table as it was before (both dropped) and without the GIN index
// alone. Serial single fires, group-committed parallel fires and batches
// of 100 (COPY).
func BenchmarkFireIndexCost(b *testing.B) {
	variants := []struct{ name, sql string }{
		{"00007", ``},
		{"no-gin", `DROP INDEX lightbus_event_params`},
		{"before-00007", `DROP INDEX lightbus_event_params; ALTER TABLE lightbus_event DROP COLUMN xid`},
	}
	params := json.RawMessage(`{"user":{"name":"sally","address":{"city":"London"}},"email":"sally@example.com","total":42}`)
	for _, mode := range []string{"serial", "parallel-batched", "batch100"} {
		for _, v := range variants {
			b.Run(mode+"/"+v.name, func(b *testing.B) {
				ctx, bundle := setup(b)
				if v.sql != "" {
					if _, err := bundle.pool.Exec(ctx, v.sql); err != nil {
						b.Fatal(err)
					}
				}
				if mode == "parallel-batched" {
					bundle.db.EnableFireBatching(postgres.FireBatchConfig{Window: 500 * time.Microsecond, MaxSize: 64, MaxInFlight: 4})
					defer bundle.db.Close()
				}
				n := 1
				if mode == "batch100" {
					n = 100
				}
				measure(b, mode != "parallel-batched", func() {
					evs := make([]*gateway.Event, n)
					for i := range evs {
						ev, err := gateway.NewEvent("customers", "new_customer", params)
						if err != nil {
							b.Fatal(err)
						}
						evs[i] = ev
					}
					var err error
					if n == 1 {
						_, err = bundle.db.FireEvent(ctx, evs[0], time.Hour)
					} else {
						_, err = bundle.db.FireEvents(ctx, evs, time.Hour)
					}
					if err != nil {
						b.Fatal(err)
					}
				})
			})
		}
	}
}
