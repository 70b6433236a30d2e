package main

import (
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/gateway"
)

// newClient returns a Go client of gw.
func newClient(t *testing.T, gw *testGateway) *lightbus.Bus {
	t.Helper()
	bus, err := lightbus.Create(lightbus.WithURL(gw.URL), lightbus.WithService("tests"))
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

	var healthy atomic.Bool
	h := newHook(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if healthy.Load() {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusTeapot)
	})
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
