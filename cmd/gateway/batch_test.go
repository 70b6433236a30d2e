package main

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/internal/testwait"
)

type batchAnswer struct {
	Results []struct {
		Index      int    `json:"index"`
		ID         string `json:"id"`
		API        string `json:"api"`
		Event      string `json:"event"`
		Deliveries int    `json:"deliveries"`
		Repeat     bool   `json:"repeat"`
	} `json:"results"`
}

func countEvents(t *testing.T, gw *testGateway) int {
	t.Helper()
	var page eventPage
	gw.do(t, "GET", "/v1/events?limit=1000", "", nil, &page)
	return len(page.Events)
}

func TestFireBatch(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, func(c *Config) { c.MaxBatchBytes = 64 << 10 })
	l := newListener(t)
	registerGroup(t, gw, "w1", "audit", "log", l.srv.URL, "", "shop.*")

	gw.do(t, "POST", "/v1/events/shop/order_placed", `{"n":0}`, map[string]string{"Idempotency-Key": "k0"}, nil)
	var res batchAnswer
	resp := gw.do(t, "POST", "/v1/events", `[
		{"api":"shop","event":"order_placed","params":{"n":1}},
		{"api":"shop","event":"order_placed","params":{"n":0},"idempotency_key":"k0"},
		{"api":"billing","event":"paid","params":{}, "idempotency_key":"k1"},
		{"api":"billing","event":"paid","params":{}, "idempotency_key":"k1"}]`, nil, &res)
	if resp.StatusCode != http.StatusAccepted || len(res.Results) != 4 {
		t.Fatalf("batch: %d %+v", resp.StatusCode, res)
	}
	r := res.Results
	if r[0].Index != 0 || r[0].Repeat || r[0].Deliveries != 1 || r[1].Index != 1 || !r[1].Repeat ||
		r[2].Repeat || r[2].Deliveries != 0 || !r[3].Repeat || r[3].ID != r[2].ID || r[3].API != "billing" {
		t.Fatalf("results %+v: want new, repeat of k0, new, repeat within the batch", r)
	}
	if n := countEvents(t, gw); n != 3 {
		t.Fatalf("%d events stored, want 3", n)
	}
	testwait.For(t, 10*time.Second, "the batch's delivery", func() bool { return len(l.received()) == 2 })

	// Any invalid item rejects the whole batch, naming each bad item.
	p := expectProblem(t, gw.do(t, "POST", "/v1/events", `[
		{"api":"shop","event":"ok","params":{}},
		{"api":"shop","event":"bad name","params":{}},
		{"api":"shop","event":"ok","params":[1]},
		{"api":"shop","event":"ok"}]`, nil, nil), http.StatusBadRequest, "invalid")
	if !strings.Contains(p.Detail, "3 of 4") {
		t.Errorf("detail %q", p.Detail)
	}
	var doc struct {
		Errors []struct{ Pointer string } `json:"errors"`
	}
	resp = gw.do(t, "POST", "/v1/events", `[{"api":"shop","event":"ok","params":{}},{"api":"","event":"ok","params":{}},{"api":"shop","event":"ok","params":{},"idempotency_key":"`+strings.Repeat("x", 300)+`"}]`, nil, &doc)
	if resp.StatusCode != 400 || len(doc.Errors) != 2 || doc.Errors[0].Pointer != "/1/api" || doc.Errors[1].Pointer != "/2/idempotency_key" {
		t.Errorf("violations %+v", doc)
	}
	// A conflicting key anywhere rolls the whole batch back.
	p = expectProblem(t, gw.do(t, "POST", "/v1/events", `[
		{"api":"shop","event":"order_placed","params":{"n":9}},
		{"api":"shop","event":"order_placed","params":{"n":2},"idempotency_key":"k0"}]`, nil, nil), http.StatusConflict, "conflict")
	if !strings.Contains(p.Detail, "event 1") {
		t.Errorf("detail %q should name the item", p.Detail)
	}
	if n := countEvents(t, gw); n != 3 {
		t.Fatalf("%d events stored after rejected batches, want still 3", n)
	}

	for body, code := range map[string]string{
		`{"api":"shop"}`: "invalid",
		`[]`:             "invalid",
		`[{"api":"shop","event":"e","params":{},"extra":1}]`: "invalid",
	} {
		expectProblem(t, gw.do(t, "POST", "/v1/events", body, nil, nil), http.StatusBadRequest, code)
	}
	many := "[" + strings.Repeat(`{"api":"a","event":"e","params":{}},`, 1000) + `{"api":"a","event":"e","params":{}}]`
	expectProblem(t, gw.do(t, "POST", "/v1/events", many, nil, nil), http.StatusBadRequest, "invalid")
	big := fmt.Sprintf(`[{"api":"a","event":"e","params":{"s":%q}}]`, strings.Repeat("x", 70<<10))
	expectProblem(t, gw.do(t, "POST", "/v1/events", big, nil, nil), http.StatusRequestEntityTooLarge, "too_large")
}

func TestClientFireBatch(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	bus := newClient(t, gw)

	events := make([]lightbus.BatchEvent, 1000)
	for i := range events {
		events[i] = lightbus.BatchEvent{Name: "shop.order_placed", Params: map[string]int{"n": i}}
	}
	events[7].IdempotencyKey = "seven"
	res, err := bus.FireBatch(t.Context(), events)
	if err != nil || len(res) != 1000 {
		t.Fatalf("FireBatch = %d results, %v", len(res), err)
	}
	if n := countEvents(t, gw); n != 1000 {
		t.Fatalf("%d events stored, want 1000", n)
	}
	again, err := bus.FireBatch(t.Context(), []lightbus.BatchEvent{{Name: "shop.order_placed", Params: map[string]int{"n": 7}, IdempotencyKey: "seven"}})
	if err != nil || len(again) != 1 || !again[0].Repeat || again[0].ID != res[7].ID {
		t.Fatalf("repeat = %+v, %v; want event %s", again, err, res[7].ID)
	}
	_, err = bus.FireBatch(t.Context(), []lightbus.BatchEvent{{Name: "shop.ok"}, {Name: "shop.ok", Params: []int{1}}})
	var lerr *lightbus.Error
	if err == nil {
		t.Fatal("a batch with a non-object params: want an error")
	}
	if errors.As(err, &lerr) {
		t.Fatalf("the client should reject params that are not an object before sending: %v", err)
	}
}
