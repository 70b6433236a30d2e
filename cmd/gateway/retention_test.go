package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/testwait"
)

func TestRetentionPrunesDeliveredEvents(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, func(c *Config) {
		c.EventRetention = 300 * time.Millisecond
		c.PruneInterval = 100 * time.Millisecond
		c.PruneBatch = 2
	})
	ok := newHook(t, func(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	broken := newHook(t, func(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusInternalServerError) })
	registerGroup(t, gw, "w1", "audit", "log", ok.srv.URL, "", "shop.order_placed")
	registerGroup(t, gw, "w2", "billing", "charge", broken.srv.URL, `{"max_attempts":1}`, "shop.order_cancelled")

	var delivered []string
	for range 5 {
		delivered = append(delivered, fireOne(t, gw, "shop", "order_placed"))
	}
	dead := fireOne(t, gw, "shop", "order_cancelled")
	waitState(t, gw, dead, gateway.DeliveryDead)
	for _, id := range delivered {
		testwait.For(t, 20*time.Second, "event "+id+" to be pruned", func() bool {
			return gw.do(t, "GET", "/v1/events/"+id, "", nil, nil).StatusCode == http.StatusNotFound
		})
	}
	// The event with a dead delivery is kept, with its dead letter.
	if resp := gw.do(t, "GET", "/v1/events/"+dead, "", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("event with a dead delivery: %d, want it kept", resp.StatusCode)
	}
	var page deadPage
	gw.do(t, "GET", "/v1/listeners/billing/charge/dead", "", nil, &page)
	if len(page.Deliveries) != 1 || page.Deliveries[0].EventID != dead || page.Deliveries[0].Event != "order_cancelled" {
		t.Fatalf("dead letters %+v", page)
	}
}
