package postgres_test

import (
	"encoding/json"
	"fmt"
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
				b.ReportAllocs()
				b.ResetTimer()
				if mode == "serial" {
					for b.Loop() {
						fire()
					}
					return
				}
				b.SetParallelism(16)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						fire()
					}
				})
			})
		}
	}
}
