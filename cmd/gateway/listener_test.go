package main

import (
	"context"
	"errors"
	"testing"
	"time"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/gateway"
)

func TestDeleteListener(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	ctx := context.Background()
	client := newBus(t, gw.URL)

	l := newListener(t)
	registerGroup(t, gw, "audit-1", "audit", "log", l.srv.URL, "", "shop.*")
	// A live worker serves the group: its next heartbeat would re-create it.
	var lbErr *lightbus.Error
	if err := client.DeleteListener(ctx, "audit", "log"); !errors.As(err, &lbErr) || lbErr.Code != lightbus.CodeConflict {
		t.Fatalf("delete a served group: %v, want conflict", err)
	}

	// The worker is gone; events keep being queued for the group.
	gw.do(t, "DELETE", "/v1/workers/audit-1", "", nil, nil)
	var queued fireResult
	gw.do(t, "POST", "/v1/events/shop/order_placed", `{}`, nil, &queued)
	if queued.Deliveries != 1 {
		t.Fatalf("before the delete: %d deliveries, want 1", queued.Deliveries)
	}

	if err := client.DeleteListener(ctx, "audit", "log"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	var fired fireResult
	gw.do(t, "POST", "/v1/events/shop/order_placed", `{}`, nil, &fired)
	if fired.Deliveries != 0 {
		t.Fatalf("after the delete: %d deliveries, want 0", fired.Deliveries)
	}
	// The delivery queued before the delete ends cancelled, never sent.
	waitStateWithin(t, gw, queued.ID, gateway.DeliveryCancelled, 10*time.Second)
	if n := len(l.received()); n != 0 {
		t.Fatalf("the listener got %d requests", n)
	}
	expectProblem(t, gw.do(t, "DELETE", "/v1/listeners/audit/log", "", nil, nil), 404, "not_found")
	expectProblem(t, gw.do(t, "DELETE", "/v1/listeners/audit/bad-name", "", nil, nil), 400, "invalid")
}
