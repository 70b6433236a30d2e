package metrics

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/gateway/dispatch"
	"github.com/lightbus-go/lightbus/gateway/httpapi"
)

// The metrics are what the HTTP API and the deliverer report to.
var (
	_ httpapi.Recorder          = (*Metrics)(nil)
	_ dispatch.DeliveryObserver = (*Metrics)(nil)
)

// countingSource counts its reads; fail makes them fail.
type countingSource struct {
	reads atomic.Int32
	fail  atomic.Bool
}

func (s *countingSource) ListListeners(ctx context.Context) ([]gateway.ListenerStatus, error) {
	s.reads.Add(1)
	time.Sleep(10 * time.Millisecond) // concurrent scrapes overlap the read
	if s.fail.Load() {
		return nil, errors.New("down")
	}
	return []gateway.ListenerStatus{{Service: "billing", Name: "charge", Pending: 3, Dead: 1, LagMS: 1500}}, nil
}

func (s *countingSource) ListWorkers(ctx context.Context) ([]gateway.Worker, error) {
	return []gateway.Worker{{Service: "billing"}, {Service: "billing"}}, nil
}

func (s *countingSource) QueueCounts(ctx context.Context) ([]dispatch.QueueCount, error) {
	return []dispatch.QueueCount{{Queue: dispatch.QueueDelivery, State: "available", Count: 7}}, nil
}

func TestStateReadOncePerTTL(t *testing.T) {
	t.Parallel()
	src := &countingSource{}
	m := New(Config{Source: src, CacheTTL: time.Hour})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := m.Registry().Gather(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := src.reads.Load(); n != 1 {
		t.Fatalf("8 scrapes read the store %d times, want once", n)
	}
	want := `
# HELP lightbus_listener_lag_seconds Age of the listener group's oldest undelivered event (0 when caught up).
# TYPE lightbus_listener_lag_seconds gauge
lightbus_listener_lag_seconds{listener="charge",service="billing"} 1.5
# HELP lightbus_river_jobs River jobs by queue and state (available, running, retryable, scheduled).
# TYPE lightbus_river_jobs gauge
lightbus_river_jobs{queue="lightbus_delivery",state="available"} 7
# HELP lightbus_workers_live Live (leased) workers by service.
# TYPE lightbus_workers_live gauge
lightbus_workers_live{service="billing"} 2
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"lightbus_listener_lag_seconds", "lightbus_river_jobs", "lightbus_workers_live"); err != nil {
		t.Error(err)
	}
}

func TestStateReadAgainAfterTTL(t *testing.T) {
	t.Parallel()
	src := &countingSource{}
	c := newStateCollector(src, time.Second, time.Second, slog.New(slog.DiscardHandler))
	now := time.Now()
	c.now = func() time.Time { return now }
	testutil.CollectAndCount(c)
	now = now.Add(999 * time.Millisecond)
	testutil.CollectAndCount(c)
	if n := src.reads.Load(); n != 1 {
		t.Fatalf("read %d times within the TTL", n)
	}
	now = now.Add(time.Millisecond)
	src.fail.Store(true)
	if n := testutil.CollectAndCount(c, "lightbus_listener_dead"); n != 0 {
		t.Errorf("a failed read still gives %d dead gauges", n)
	}
	if n := src.reads.Load(); n != 2 {
		t.Fatalf("read %d times after the TTL, want 2", n)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP lightbus_metrics_state_up 1 when the last read of the store's state for the gauges succeeded, else 0.
# TYPE lightbus_metrics_state_up gauge
lightbus_metrics_state_up 0
`), "lightbus_metrics_state_up"); err != nil {
		t.Error(err)
	}
}

func TestMaxSeries(t *testing.T) {
	t.Parallel()
	m := New(Config{MaxSeries: 2})
	m.EventFired("a", "x", "accepted")
	m.EventFired("b", "x", "accepted")
	m.EventFired("c", "x", "accepted") // a third label set: counted as _other
	m.EventFired("d", "y", "invalid")
	m.EventFired("a", "x", "accepted") // known: still its own
	want := `
# HELP lightbus_events_fired_total Events fired, one of a batch included, by API, event and outcome (accepted, replayed, or the error code).
# TYPE lightbus_events_fired_total counter
lightbus_events_fired_total{api="_other",event="_other",outcome="accepted"} 1
lightbus_events_fired_total{api="_other",event="_other",outcome="invalid"} 1
lightbus_events_fired_total{api="a",event="x",outcome="accepted"} 2
lightbus_events_fired_total{api="b",event="x",outcome="accepted"} 1
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "lightbus_events_fired_total"); err != nil {
		t.Error(err)
	}
}

func TestDeliveryDone(t *testing.T) {
	t.Parallel()
	m := New(Config{})
	m.DeliveryDone("billing", "charge", dispatch.AttemptRetried, 20*time.Millisecond, 0)
	m.DeliveryDone("billing", "charge", dispatch.AttemptDelivered, 10*time.Millisecond, 2*time.Second)
	m.DeliveryDone("billing", "charge", dispatch.AttemptCancelled, 0, 0)
	for name, want := range map[string]int{
		"lightbus_deliveries_total":          3,
		"lightbus_delivery_duration_seconds": 1, // one series: two attempts with a request
		"lightbus_fire_to_delivered_seconds": 1,
	} {
		if n := testutil.CollectAndCount(m.Registry(), name); n != want {
			t.Errorf("%s has %d series, want %d", name, n, want)
		}
	}
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "lightbus_fire_to_delivered_seconds" {
			if h := f.GetMetric()[0].GetHistogram(); h.GetSampleCount() != 1 || h.GetSampleSum() != 2 {
				t.Errorf("fire to delivered: %d samples summing to %v, want the one of 2s", h.GetSampleCount(), h.GetSampleSum())
			}
		}
	}
}
