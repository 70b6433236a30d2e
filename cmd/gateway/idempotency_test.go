package main

import (
	"context"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/internal/testwait"
)

func TestFireIdempotencyKey(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	l := newListener(t)
	registerGroup(t, gw, "w1", "audit", "log", l.srv.URL, "", "shop.order_placed")

	key := map[string]string{"Idempotency-Key": "order-42"}
	var first, again fireResultRepeat
	resp := gw.do(t, "POST", "/v1/events/shop/order_placed", `{"n":1}`, key, &first)
	if resp.StatusCode != http.StatusAccepted || first.Repeat || resp.Header.Get("Idempotency-Replayed") != "" {
		t.Fatalf("first fire: %d %+v", resp.StatusCode, first)
	}
	resp = gw.do(t, "POST", "/v1/events/shop/order_placed", `{"n":1}`, key, &again)
	if resp.StatusCode != http.StatusOK || !again.Repeat || again.ID != first.ID || again.Deliveries != 1 ||
		resp.Header.Get("Idempotency-Replayed") != "true" {
		t.Fatalf("repeat: %d %+v (%v), want 200 with the first event %s", resp.StatusCode, again, resp.Header, first.ID)
	}
	testwait.For(t, 10*time.Second, "the delivery", func() bool { return len(l.received()) == 1 })
	if got := l.received()[0].header.Get("Idempotency-Key"); got != "order-42" {
		t.Errorf("delivery Idempotency-Key = %q", got)
	}

	expectProblem(t, gw.do(t, "POST", "/v1/events/shop/order_placed", `{"n":2}`, key, nil), http.StatusConflict, "conflict")
	expectProblem(t, gw.do(t, "POST", "/v1/events/shop/order_placed", `{}`,
		map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}, nil), http.StatusBadRequest, "invalid")
	expectProblem(t, gw.do(t, "POST", "/v1/events/shop/order_placed", `{}`,
		map[string]string{"Idempotency-Key": "caf\u00e9"}, nil), http.StatusBadRequest, "invalid")

	var page eventPage
	gw.do(t, "GET", "/v1/events", "", nil, &page)
	if len(page.Events) != 1 {
		t.Fatalf("%d events stored, want 1", len(page.Events))
	}
}

type fireResultRepeat struct {
	ID         string `json:"id"`
	Deliveries int    `json:"deliveries"`
	Repeat     bool   `json:"repeat"`
}

// TestClientFireRetriesWithOneKey drops the answer to the client's first
// fire after the gateway stored the event: the client's retry carries the
// same key and gets the first event back.
func TestClientFireRetriesWithOneKey(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)

	target, _ := url.Parse(gw.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	var fires atomic.Int32
	var keys []string
	front := newHook(t, func(n int, w http.ResponseWriter, r *http.Request) {})
	front.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/v1/events/") {
			keys = append(keys, r.Header.Get("Idempotency-Key"))
			if fires.Add(1) == 1 {
				// Forward, then lose the answer.
				rec := &discardWriter{header: http.Header{}}
				proxy.ServeHTTP(rec, r)
				resetConnection(w)
				return
			}
		}
		proxy.ServeHTTP(w, r)
	})
	bus := newBus(t, front.srv.URL)
	res, err := bus.Fire(context.Background(), "shop.order_placed", map[string]int{"n": 1})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Repeat || fires.Load() != 2 || len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] {
		t.Fatalf("fire = %+v after %d tries with keys %q: want a repeat of the first try with one key", res, fires.Load(), keys)
	}
	var page eventPage
	gw.do(t, "GET", "/v1/events", "", nil, &page)
	if len(page.Events) != 1 || page.Events[0].ID != res.ID {
		t.Fatalf("stored %+v, want the one event %s", page.Events, res.ID)
	}
}

type discardWriter struct{ header http.Header }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}
