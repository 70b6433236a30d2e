package main

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/webhook"
)

type eventDetail struct {
	ID         string `json:"id"`
	Deliveries []struct {
		Service  string `json:"service"`
		Listener string `json:"listener"`
		State    string `json:"state"`
		Attempt  int    `json:"attempt"`
		Errors   []struct {
			Attempt int    `json:"attempt"`
			Error   string `json:"error"`
		} `json:"errors"`
	} `json:"deliveries"`
}

func TestDeliveryRetriedAfterFailures(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)

	l := newListener(t, 500, 503)
	secret := registerGroup(t, gw, "auth-1", "auth", "create_user", l.srv.URL, "", "customers.new_customer")

	params := `{"name":  "Sally"}`
	var res fireResult
	gw.do(t, "POST", "/v1/events/customers/new_customer", params, nil, &res)
	if res.Deliveries != 1 {
		t.Fatalf("deliveries = %d, want 1", res.Deliveries)
	}
	detail := waitStateWithin(t, gw, res.ID, gateway.DeliveryCompleted, 10*time.Second)
	got := l.received()
	if len(got) != 3 {
		t.Fatalf("listener got %d requests, want 3 (two failures, then success)", len(got))
	}
	for i, d := range got {
		h := d.header
		if h.Get("Lightbus-Attempt") != strconv.Itoa(i+1) || h.Get("Ce-Id") != res.ID || h.Get("Webhook-Id") != res.ID ||
			h.Get("Ce-Type") != "customers.new_customer" || h.Get("Ce-Specversion") != "1.0" || h.Get("Lightbus-Listener") != "auth.create_user" {
			t.Errorf("attempt %d headers: %v", i+1, h)
		}
		if d.body != params {
			t.Errorf("attempt %d body %q, want the stored bytes %q", i+1, d.body, params)
		}
		want, _ := webhook.SignSecret(secret, res.ID, h.Get("Webhook-Timestamp"), []byte(d.body))
		if h.Get("Webhook-Signature") != want {
			t.Errorf("attempt %d signature %q, want %q", i+1, h.Get("Webhook-Signature"), want)
		}
	}
	d := detail.Deliveries[0]
	if d.Attempt != 3 || len(d.Errors) != 2 || !strings.Contains(d.Errors[0].Error, "500") || !strings.Contains(d.Errors[1].Error, "503") {
		t.Errorf("delivery record %+v", d)
	}
}

func TestDeliveryWaitsForAnEndpoint(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)

	l := newListener(t)
	registerGroup(t, gw, "mail-1", "mail", "welcome", l.srv.URL, "", "auth.*")
	// The group outlives its last worker: events keep being queued for it.
	gw.do(t, "DELETE", "/v1/workers/mail-1", "", nil, nil)

	var res fireResult
	gw.do(t, "POST", "/v1/events/auth/user_registered", `{}`, nil, &res)
	if res.Deliveries != 1 {
		t.Fatalf("deliveries = %d, want 1", res.Deliveries)
	}
	time.Sleep(500 * time.Millisecond) // several no-endpoint snoozes (100ms each in tests)
	var detail eventDetail
	gw.do(t, "GET", "/v1/events/"+res.ID, "", nil, &detail)
	// A snoozed delivery shows attempt 1 only while it is running.
	if d := detail.Deliveries[0]; d.Attempt > 1 || len(d.Errors) != 0 || d.State == gateway.DeliveryCompleted {
		t.Fatalf("without an endpoint the delivery must wait without using attempts: %+v", d)
	}
	if n := len(l.received()); n != 0 {
		t.Fatalf("listener got %d requests while deregistered", n)
	}

	registerGroup(t, gw, "mail-2", "mail", "welcome", l.srv.URL, "", "auth.*")
	waitStateWithin(t, gw, res.ID, gateway.DeliveryCompleted, 10*time.Second)
	if got := l.received(); len(got) != 1 || got[0].header.Get("Lightbus-Attempt") != "1" {
		t.Fatalf("listener requests %+v, want one first attempt", got)
	}
}

func TestDeliveryDeadAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, func(c *Config) { c.DeliveryMaxAttempts = 3 })

	l := newListener(t, 500, 500, 500, 500, 500)
	registerGroup(t, gw, "a-1", "audit", "log", l.srv.URL, "", "shop.order_placed")
	var res fireResult
	gw.do(t, "POST", "/v1/events/shop/order_placed", `{}`, nil, &res)
	waitStateWithin(t, gw, res.ID, gateway.DeliveryDead, 10*time.Second)
	if n := len(l.received()); n != 3 {
		t.Fatalf("listener got %d requests, want 3 attempts", n)
	}
}
