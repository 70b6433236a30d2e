package metrics

import (
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway/dispatch"
)

// BenchmarkFireRecorded is what a fire costs the metrics: a counter and a
// histogram observation, with no allocation.
func BenchmarkFireRecorded(b *testing.B) {
	m := New(Config{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.EventFired("customers", "new_customer", "accepted")
			m.FireDone("customers", 3*time.Millisecond)
		}
	})
}

// BenchmarkDeliveryRecorded is what a delivered attempt costs the metrics.
func BenchmarkDeliveryRecorded(b *testing.B) {
	m := New(Config{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.DeliveryDone("billing", "charge", dispatch.AttemptDelivered, 2*time.Millisecond, 40*time.Millisecond)
		}
	})
}
