package main

import (
	"errors"
	"net/http"
	"testing"
	"time"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/testwait"
)

// newClient returns a Go client of gw.
func newClient(t *testing.T, gw *testGateway) *lightbus.Bus {
	t.Helper()
	return newBus(t, gw.URL, lightbus.WithService("tests"))
}

// newBus returns a Go client of the gateway at url.
func newBus(t *testing.T, url string, opts ...lightbus.Option) *lightbus.Bus {
	t.Helper()
	bus, err := lightbus.Create(append([]lightbus.Option{lightbus.WithURL(url)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return bus
}

func TestClientDeadLetters(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	bus := newClient(t, gw)
	ctx := t.Context()

	h, healthy := newFailingHook(t, func(w http.ResponseWriter) { w.WriteHeader(http.StatusTeapot) })
	registerGroup(t, gw, "w1", "support.case", "notify", h.srv.URL, `{"max_attempts":1}`, "shop.*")
	var ids []string
	for _, name := range []string{"shop.order_placed", "shop.order_placed", "shop.order_cancelled"} {
		res, err := bus.Fire(ctx, name, map[string]any{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
	}
	for _, id := range ids {
		waitState(t, gw, id, gateway.DeliveryDead)
	}

	page, err := bus.DeadLetters(ctx, "support.case", "notify", lightbus.DeadQuery{Event: "order_placed", Limit: 1})
	if err != nil || len(page.Deliveries) != 1 || page.NextCursor == "" || page.Deliveries[0].EventID != ids[1] {
		t.Fatalf("DeadLetters = %+v, %v", page, err)
	}
	d := page.Deliveries[0]
	if d.Errors[0].Status != http.StatusTeapot || d.API != "shop" || d.State != "dead" {
		t.Errorf("dead delivery %+v", d)
	}
	page, err = bus.DeadLetters(ctx, "support.case", "notify", lightbus.DeadQuery{Event: "order_placed", Before: page.NextCursor})
	if err != nil || len(page.Deliveries) != 1 || page.Deliveries[0].EventID != ids[0] {
		t.Fatalf("second page = %+v, %v", page, err)
	}
	got, err := bus.Delivery(ctx, d.ID)
	if err != nil || got.ID != d.ID || got.EventID != ids[1] {
		t.Fatalf("Delivery = %+v, %v", got, err)
	}

	healthy.Store(true)
	if got, err = bus.Redrive(ctx, d.ID); err != nil || got.MaxAttempts != 2 {
		t.Fatalf("Redrive = %+v, %v", got, err)
	}
	waitState(t, gw, ids[1], gateway.DeliveryCompleted)
	_, err = bus.Redrive(ctx, d.ID)
	var lerr *lightbus.Error
	if !errors.As(err, &lerr) || lerr.Code != "conflict" {
		t.Errorf("redriving a completed delivery: %v, want a conflict", err)
	}
	n, err := bus.RedriveAll(ctx, "support.case", "notify", lightbus.DeadQuery{})
	if err != nil || n != 2 {
		t.Fatalf("RedriveAll = %d, %v", n, err)
	}
	waitState(t, gw, ids[0], gateway.DeliveryCompleted)
	waitState(t, gw, ids[2], gateway.DeliveryCompleted)
	if _, err := bus.DeadLetters(ctx, "support.case", "nobody", lightbus.DeadQuery{}); !errors.As(err, &lerr) || lerr.Code != "not_found" {
		t.Errorf("unknown group: %v", err)
	}
}

func TestListenerStatus(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	bus := newClient(t, gw)
	ctx := t.Context()

	release := make(chan struct{})
	slow := newHook(t, func(n int, w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusNoContent)
	})
	broken := newHook(t, func(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	registerGroup(t, gw, "w1", "audit", "slow", slow.srv.URL, `{"max_in_flight":1}`, "shop.order_placed")
	registerGroup(t, gw, "w2", "audit", "broken", broken.srv.URL, `{"max_attempts":1}`, "shop.order_placed")
	for range 3 {
		if _, err := bus.Fire(ctx, "shop.order_placed", map[string]any{}); err != nil {
			t.Fatal(err)
		}
	}

	byName := func() map[string]lightbus.ListenerStatus {
		groups, err := bus.Listeners(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]lightbus.ListenerStatus{}
		for _, g := range groups {
			m[g.Service+"."+g.Name] = g
		}
		return m
	}
	var groups map[string]lightbus.ListenerStatus
	testwait.For(t, 15*time.Second, "one delivery in flight, two pending, three dead", func() bool {
		groups = byName()
		s, b := groups["audit.slow"], groups["audit.broken"]
		return s.InFlight == 1 && s.Pending == 2 && s.Dead == 0 && b.Dead == 3 && b.Pending == 0 && b.InFlight == 0
	})
	s, b := groups["audit.slow"], groups["audit.broken"]
	if s.OldestUndelivered.IsZero() || s.LagMS < 0 || s.Endpoints != 1 || len(s.Events) != 1 || s.Events[0] != "shop.order_placed" {
		t.Errorf("slow group %+v", s)
	}
	if !b.OldestUndelivered.IsZero() || b.LagMS != 0 {
		t.Errorf("broken group %+v: dead deliveries are not lag", b)
	}
	time.Sleep(100 * time.Millisecond) // the lag is a clock reading: it must grow by the time waited
	if lag := byName()["audit.slow"].Lag(); lag < 100*time.Millisecond {
		t.Errorf("lag %s, want it to grow while the group is behind", lag)
	}

	close(release)
	testwait.For(t, 15*time.Second, "the slow group to catch up", func() bool {
		s := byName()["audit.slow"]
		return s.Pending == 0 && s.InFlight == 0 && s.LagMS == 0 && s.OldestUndelivered.IsZero()
	})
	var raw struct {
		Listeners []map[string]any `json:"listeners"`
	}
	gw.do(t, "GET", "/v1/listeners", "", nil, &raw)
	if len(raw.Listeners) != 2 || raw.Listeners[0]["name"] != "broken" || raw.Listeners[0]["policy"].(map[string]any)["max_attempts"] != 1.0 {
		t.Errorf("GET /v1/listeners = %+v", raw)
	}
}
