package main

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/internal/testwait"
	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

// dedupListener is a listener that de-duplicates by webhook-id, as the
// protocol asks: it counts how many times each event was handled (the side
// effect) and how many requests it got.
type dedupListener struct {
	mu       sync.Mutex
	handled  map[string]int
	requests int
}

func newDedupListener() *dedupListener { return &dedupListener{handled: map[string]int{}} }

// handle records a delivery of id and reports whether it is new.
func (d *dedupListener) handle(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.requests++
	if d.handled[id] > 0 {
		return false
	}
	d.handled[id]++
	return true
}

func (d *dedupListener) counts() (map[string]int, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := make(map[string]int, len(d.handled))
	for k, v := range d.handled {
		m[k] = v
	}
	return m, d.requests
}

// resetConnection drops the request's connection with a reset, without an
// answer.
func resetConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close()
	}
}

// fireMany fires n events of shop.order_placed in batches and returns their ids.
func fireMany(t *testing.T, gw *testGateway, n int) []string {
	t.Helper()
	bus := newBus(t, gw.URL)
	var ids []string
	for len(ids) < n {
		batch := make([]lightbus.BatchEvent, min(500, n-len(ids)))
		for i := range batch {
			batch[i] = lightbus.BatchEvent{Name: "shop.order_placed", Params: map[string]int{"n": len(ids) + i}}
		}
		res, err := bus.FireBatch(t.Context(), batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			ids = append(ids, r.ID)
		}
	}
	return ids
}

// waitCaughtUp waits until the group has nothing pending, in flight or dead.
func waitCaughtUp(t *testing.T, gw *testGateway, group string, timeout time.Duration) {
	t.Helper()
	bus := newBus(t, gw.URL)
	testwait.For(t, timeout, group+" to receive every event", func() bool {
		groups, err := bus.Listeners(context.Background())
		if err != nil {
			return false
		}
		for _, g := range groups {
			if g.Service+"."+g.Name == group {
				if g.Dead > 0 {
					t.Fatalf("%s has %d dead deliveries", group, g.Dead)
				}
				return g.Pending == 0 && g.InFlight == 0
			}
		}
		return false
	})
}

func checkExactlyOnce(t *testing.T, d *dedupListener, ids []string) {
	t.Helper()
	handled, requests := d.counts()
	for _, id := range ids {
		if handled[id] != 1 {
			t.Fatalf("event %s handled %d times after de-duplication, want exactly once", id, handled[id])
		}
	}
	if len(handled) != len(ids) {
		t.Fatalf("%d distinct events handled, want %d", len(handled), len(ids))
	}
	t.Logf("%d events, %d requests", len(ids), requests)
}

// TestAtLeastOnceConnectionLostAfterHandling: the listener handles each event
// and then the connection dies before its answer reaches the gateway. The
// gateway cannot know the event was handled, so it delivers it again; the
// listener's de-duplication by webhook-id makes that harmless.
func TestAtLeastOnceConnectionLostAfterHandling(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)

	d := newDedupListener()
	h := newHook(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if d.handle(r.Header.Get("Webhook-Id")) {
			// Handled, then the connection dies without an answer.
			resetConnection(w)
			return
		}
		w.WriteHeader(http.StatusNoContent) // a duplicate: acknowledge it
	})
	registerGroup(t, gw, "w1", "audit", "log", h.srv.URL, "", "shop.order_placed")
	ids := fireMany(t, gw, 100)
	waitCaughtUp(t, gw, "audit.log", 60*time.Second)
	checkExactlyOnce(t, d, ids)
	if _, requests := d.counts(); requests < 2*len(ids) {
		t.Fatalf("%d requests for %d events: every first attempt lost its answer, so each needs two", requests, len(ids))
	}
}

// TestAtLeastOnceGatewayStoppedMidDelivery stops a gateway while deliveries
// are in flight and starts another on the same database: every event still
// arrives.
func TestAtLeastOnceGatewayStoppedMidDelivery(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))

	start := func(shutdown time.Duration) (*testGateway, func() error) {
		cfg := testConfig()
		cfg.ShutdownTimeout = shutdown
		return launchGateway(t, cfg, dbURL, logger)
	}

	d := newDedupListener()
	var stalled sync.Map
	stall := make(chan struct{})
	h := newHook(t, func(n int, w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("Webhook-Id")
		select {
		case <-stall: // the first gateway is gone: work normally
		default:
			// Hang until the first gateway gives up on the request.
			stalled.Store(id, true)
			<-r.Context().Done()
			return
		}
		d.handle(id)
		w.WriteHeader(http.StatusNoContent)
	})

	gw1, stop1 := start(300 * time.Millisecond)
	registerGroup(t, gw1, "w1", "audit", "log", h.srv.URL, "", "shop.order_placed")
	ids := fireMany(t, gw1, 50)
	testwait.For(t, 15*time.Second, "deliveries in flight", func() bool {
		n := 0
		stalled.Range(func(any, any) bool { n++; return true })
		return n >= 10
	})
	if err := stop1(); err != nil {
		t.Fatalf("first gateway: %v", err)
	}
	close(stall)

	gw2, stop2 := start(5 * time.Second)
	t.Cleanup(func() {
		if err := stop2(); err != nil {
			t.Errorf("second gateway: %v", err)
		}
	})
	waitCaughtUp(t, gw2, "audit.log", 60*time.Second)
	checkExactlyOnce(t, d, ids)
}

// TestAtLeastOnceFlakyListener: 1,000 events to a listener that fails 30% of
// requests at random all arrive.
func TestAtLeastOnceFlakyListener(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)

	d := newDedupListener()
	var mu sync.Mutex
	failures := 0
	h := newHook(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if rand.Float64() < 0.3 {
			mu.Lock()
			failures++
			mu.Unlock()
			switch rand.IntN(3) {
			case 0:
				w.WriteHeader(http.StatusInternalServerError)
			case 1:
				w.Header().Set("Retry-After", "0")
				w.WriteHeader(http.StatusServiceUnavailable)
			default:
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					conn.Close()
				}
			}
			return
		}
		d.handle(r.Header.Get("Webhook-Id"))
		w.WriteHeader(http.StatusOK)
	})
	registerGroup(t, gw, "w1", "audit", "log", h.srv.URL, "", "shop.order_placed")
	ids := fireMany(t, gw, 1000)
	waitCaughtUp(t, gw, "audit.log", 90*time.Second)
	checkExactlyOnce(t, d, ids)
	mu.Lock()
	defer mu.Unlock()
	if failures < 100 {
		t.Fatalf("only %d failures injected: the test did not exercise retries", failures)
	}
}
