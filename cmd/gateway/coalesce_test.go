package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/gateway/dispatch"
	"github.com/lightbus-go/lightbus/internal/testwait"
)

// batchFire fires n events shop.order_placed {"n": i, "fail": i is even}
// in one batch and returns their ids.
func batchFire(t *testing.T, gw *testGateway, n int) []string {
	t.Helper()
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(`{"api":"shop","event":"order_placed","params":{"n":%d,"fail":%t}}`, i, i%2 == 0)
	}
	var res batchAnswer
	if resp := gw.do(t, "POST", "/v1/events", "["+strings.Join(items, ",")+"]", nil, &res); resp.StatusCode != http.StatusAccepted || len(res.Results) != n {
		t.Fatalf("batch fire: %d %+v", resp.StatusCode, res)
	}
	ids := make([]string, n)
	for i, r := range res.Results {
		ids[i] = r.ID
	}
	return ids
}

// attemptsByEvent records, per event id, the Lightbus-Attempt of each
// request a listener got.
type attemptsByEvent struct {
	mu  sync.Mutex
	got map[string][]int
}

func (a *attemptsByEvent) add(r *http.Request) {
	n, _ := strconv.Atoi(r.Header.Get("Lightbus-Attempt"))
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.got == nil {
		a.got = map[string][]int{}
	}
	a.got[r.Header.Get("Webhook-Id")] = append(a.got[r.Header.Get("Webhook-Id")], n)
}

func (a *attemptsByEvent) of(id string) []int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]int(nil), a.got[id]...)
}

// failingOn answers 500 to an event fired with "fail": true (with first,
// to its first attempt only), else 204.
func failingOn(first bool, attempts *attemptsByEvent) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		attempts.add(r)
		var p struct {
			Fail bool `json:"fail"`
		}
		_ = json.NewDecoder(r.Body).Decode(&p)
		if p.Fail && (!first || r.Header.Get("Lightbus-Attempt") == "1") {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, "boom")
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// eventDeliveries returns the deliveries of event id by group.
func eventDeliveries(t *testing.T, gw *testGateway, id string) map[string][]deliveryRecord {
	t.Helper()
	var detail struct {
		Deliveries []deliveryRecord `json:"deliveries"`
	}
	gw.do(t, "GET", "/v1/events/"+id, "", nil, &detail)
	m := map[string][]deliveryRecord{}
	for _, d := range detail.Deliveries {
		m[d.Service+"."+d.Listener] = append(m[d.Service+"."+d.Listener], d)
	}
	return m
}

// TestBatchFireCoalescedDeliveries fires ten events in one batch to two
// groups: one job per group is queued; the group "audit.log" fails the
// first attempt of half of them, which are retried as deliveries of their
// own (Lightbus-Attempt 2) and delivered; the group "billing.charge"
// (max_attempts 1) fails them for good: they are dead letters, and a
// redrive delivers one. Every event shows its deliveries by group.
func TestBatchFireCoalescedDeliveries(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	var logAttempts, chargeAttempts attemptsByEvent
	log := httptest.NewServer(failingOn(true, &logAttempts))
	t.Cleanup(log.Close)
	var healthy atomic.Bool
	charge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if healthy.Load() {
			chargeAttempts.add(r)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		failingOn(false, &chargeAttempts)(w, r)
	}))
	t.Cleanup(charge.Close)
	registerGroup(t, gw, "w1", "audit", "log", log.URL, `{"max_attempts":3}`, "shop.order_placed")
	registerGroup(t, gw, "w2", "billing", "charge", charge.URL, `{"max_attempts":1}`, "shop.order_placed")

	ids := batchFire(t, gw, 10)
	testwait.For(t, 30*time.Second, "every event delivered to audit.log and settled for billing.charge", func() bool {
		for i, id := range ids {
			d := eventDeliveries(t, gw, id)
			want := gateway.DeliveryCompleted
			if i%2 == 0 {
				want = gateway.DeliveryDead
			}
			if len(d["audit.log"]) != 1 || d["audit.log"][0].State != gateway.DeliveryCompleted ||
				len(d["billing.charge"]) != 1 || d["billing.charge"][0].State != want {
				return false
			}
		}
		return true
	})

	// One job per group for the ten events, and one delivery job of its
	// own per failed delivery (five per group).
	var batches, singles int
	if err := gw.app.pool.QueryRow(t.Context(), `SELECT count(*) FILTER (WHERE kind = $1), count(*) FILTER (WHERE kind = $2) FROM river_job`,
		dispatch.DeliveryBatchKind, dispatch.DeliveryKind).Scan(&batches, &singles); err != nil {
		t.Fatal(err)
	}
	if batches != 2 || singles != 10 {
		t.Errorf("%d delivery batches and %d delivery jobs, want 2 (one per group) and 10 (the failed deliveries)", batches, singles)
	}

	batchIDs := map[string]int64{}
	for i, id := range ids {
		d := eventDeliveries(t, gw, id)
		l, c := d["audit.log"][0], d["billing.charge"][0]
		if i%2 == 1 {
			// Delivered in the batch: the batch is its delivery.
			if got := logAttempts.of(id); len(got) != 1 || got[0] != 1 {
				t.Errorf("event %d: audit.log got attempts %v, want [1]", i, got)
			}
			if l.Attempt != 1 || len(l.Errors) != 0 || c.State != gateway.DeliveryCompleted {
				t.Errorf("event %d delivered in its batch: %+v %+v", i, l, c)
			}
			if !l.Batch || !c.Batch {
				t.Errorf("event %d delivered in its batch, not marked batch: %+v %+v", i, l, c)
			}
			if prev, ok := batchIDs[l.Service]; ok && prev != l.ID {
				t.Errorf("event %d: delivery %d, another event of the same batch %d", i, l.ID, prev)
			}
			batchIDs[l.Service] = l.ID
			continue
		}
		if l.Batch || c.Batch {
			t.Errorf("event %d failed in its batch: its deliveries are its own, not the batch's: %+v %+v", i, l, c)
		}
		// Failed in the batch, then retried on its own.
		if got := logAttempts.of(id); len(got) != 2 || got[0] != 1 || got[1] != 2 {
			t.Errorf("event %d: audit.log got attempts %v, want [1 2]", i, got)
		}
		if l.Attempt != 2 || len(l.Errors) != 1 || l.Errors[0].Attempt != 1 || l.Errors[0].Status != 500 ||
			!strings.Contains(l.Errors[0].Error, "boom") {
			t.Errorf("event %d retried: %+v", i, l)
		}
		if c.Attempt != 1 || c.MaxAttempts != 1 || len(c.Errors) != 1 || c.Errors[0].Status != 500 {
			t.Errorf("event %d dead: %+v", i, c)
		}
		// The retried delivery is one of its own, as GET /v1/deliveries shows.
		var one deliveryRecord
		if resp := gw.do(t, "GET", fmt.Sprintf("/v1/deliveries/%d", l.ID), "", nil, &one); resp.StatusCode != 200 ||
			one.EventID != id || one.State != gateway.DeliveryCompleted || one.Attempt != 2 {
			t.Errorf("event %d: GET /v1/deliveries/%d: %d %+v", i, l.ID, resp.StatusCode, one)
		}
	}

	// The batch's id, as the events delivered in it show it, reads as the
	// batch: completed, holding the five it delivered (the odd ones), never
	// dead, so never redriven.
	var delivered []string
	for i, id := range ids {
		if i%2 == 1 {
			delivered = append(delivered, id)
		}
	}
	var batch deliveryRecord
	if resp := gw.do(t, "GET", fmt.Sprintf("/v1/deliveries/%d", batchIDs["audit"]), "", nil, &batch); resp.StatusCode != 200 ||
		!batch.Batch || batch.State != gateway.DeliveryCompleted || !slices.Equal(batch.EventIDs, delivered) ||
		batch.EventID != delivered[0] || batch.API != "shop" || batch.Event != "order_placed" || batch.Service != "audit" {
		t.Errorf("GET /v1/deliveries/%d (a batch): %d %+v, want the completed batch holding %v", batchIDs["audit"], resp.StatusCode, batch, delivered)
	}
	var problem struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}
	if resp := gw.do(t, "POST", fmt.Sprintf("/v1/deliveries/%d/redrive", batchIDs["audit"]), "", nil, &problem); resp.StatusCode != http.StatusConflict ||
		!strings.Contains(problem.Detail, "delivery batch") {
		t.Errorf("redrive of a batch: %d %+v, want 409 saying it is a delivery batch", resp.StatusCode, problem)
	}

	// The dead ones are dead letters, with the batch's attempt recorded.
	var page deadPage
	gw.do(t, "GET", "/v1/listeners/billing/charge/dead", "", nil, &page)
	if len(page.Deliveries) != 5 {
		t.Fatalf("dead letters %+v, want the 5 failed events", page)
	}
	for _, d := range page.Deliveries {
		if d.Attempt != 1 || len(d.Errors) != 1 || d.Errors[0].Status != 500 || d.API != "shop" || d.Event != "order_placed" {
			t.Errorf("dead letter %+v", d)
		}
	}
	// A redrive delivers one, as its second attempt.
	healthy.Store(true)
	redriven := page.Deliveries[0]
	if resp := gw.do(t, "POST", fmt.Sprintf("/v1/deliveries/%d/redrive", redriven.ID), "", nil, nil); resp.StatusCode != 200 {
		t.Fatalf("redrive: %d", resp.StatusCode)
	}
	testwait.For(t, 30*time.Second, "the redriven delivery to complete", func() bool {
		d := eventDeliveries(t, gw, redriven.EventID)["billing.charge"]
		return len(d) == 1 && d[0].State == gateway.DeliveryCompleted
	})
	if got := chargeAttempts.of(redriven.EventID); len(got) != 2 || got[1] != 2 {
		t.Errorf("redriven event got attempts %v, want [1 2]", got)
	}
}

// TestCoalescedDeliveryReaders: while a batch waits (its group has no live
// endpoint), the group's counts and lag show its events and pruning keeps
// them; once delivered they are pruned.
func TestCoalescedDeliveryReaders(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, func(c *Config) {
		c.EventRetention = 300 * time.Millisecond
		c.PruneInterval = 100 * time.Millisecond
	})
	var attempts attemptsByEvent
	h := newHook(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		attempts.add(r)
		w.WriteHeader(http.StatusNoContent)
	})
	registerGroup(t, gw, "w1", "audit", "log", h.srv.URL, "", "shop.order_placed")
	gw.do(t, "DELETE", "/v1/workers/w1", "", nil, nil) // the group stays, without endpoint

	ids := batchFire(t, gw, 5)
	type status struct {
		Service         string     `json:"service"`
		Name            string     `json:"name"`
		Pending         int        `json:"pending"`
		InFlight        int        `json:"in_flight"`
		OldestUndeliver string     `json:"oldest_undelivered"`
		LagMS           int64      `json:"lag_ms"`
		Replay          *replayDoc `json:"replay"`
	}
	group := func() status {
		var out struct {
			Listeners []status `json:"listeners"`
		}
		gw.do(t, "GET", "/v1/listeners", "", nil, &out)
		if len(out.Listeners) != 1 {
			t.Fatalf("listeners %+v", out)
		}
		return out.Listeners[0]
	}
	// Past the retention, with prune runs in between.
	pastRetention := time.Now().Add(500 * time.Millisecond)
	testwait.For(t, 30*time.Second, "two prune runs past the events' retention", func() bool {
		var runs int
		if err := gw.app.pool.QueryRow(t.Context(), `SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'completed' AND attempted_at > $2`,
			dispatch.PruneKind, pastRetention).Scan(&runs); err != nil {
			t.Fatal(err)
		}
		return runs >= 2
	})
	s := group()
	if s.Pending+s.InFlight != 5 || s.OldestUndeliver == "" || s.LagMS < 300 {
		t.Errorf("group with a waiting batch of 5: %+v, want 5 pending or in flight and a lag past 300ms", s)
	}
	for _, id := range ids {
		d := eventDeliveries(t, gw, id)["audit.log"]
		if len(d) != 1 || (d[0].State != gateway.DeliveryPending && d[0].State != gateway.DeliveryScheduled && d[0].State != gateway.DeliveryRunning) {
			t.Errorf("event %s while its batch waits: %+v", id, d)
		}
	}

	// An endpoint: the batch is delivered, and then its events pruned.
	registerGroup(t, gw, "w1", "audit", "log", h.srv.URL, "", "shop.order_placed")
	for _, id := range ids {
		testwait.For(t, 30*time.Second, "event "+id+" to be delivered and pruned", func() bool {
			return len(attempts.of(id)) == 1 && gw.do(t, "GET", "/v1/events/"+id, "", nil, nil).StatusCode == http.StatusNotFound
		})
	}
	if s := group(); s.Pending != 0 || s.InFlight != 0 || s.LagMS != 0 {
		t.Errorf("group caught up: %+v", s)
	}
}

// TestCoalescedReplay: a replay of retained events queues its page as one
// batch and delivers it. (A gateway of its own, with the default retention:
// the events must outlast the replay however slow the machine.)
func TestCoalescedReplay(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	var attempts attemptsByEvent
	h := newHook(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		attempts.add(r)
		w.WriteHeader(http.StatusNoContent)
	})
	registerGroup(t, gw, "w1", "audit", "log", h.srv.URL, "", "shop.order_placed")
	type replayStatus struct {
		Replay *replayDoc `json:"replay"`
	}
	group := func() replayStatus {
		var out struct {
			Listeners []replayStatus `json:"listeners"`
		}
		gw.do(t, "GET", "/v1/listeners", "", nil, &out)
		if len(out.Listeners) != 1 {
			t.Fatalf("listeners %+v", out)
		}
		return out.Listeners[0]
	}

	// A replay of retained events queues one batch for its page.
	more := batchFire(t, gw, 4)
	testwait.For(t, 30*time.Second, "the new events delivered", func() bool {
		for _, id := range more {
			if len(attempts.of(id)) != 1 {
				return false
			}
		}
		return true
	})
	var before int
	if err := gw.app.pool.QueryRow(t.Context(), `SELECT count(*) FROM river_job WHERE kind = $1`, dispatch.DeliveryBatchKind).Scan(&before); err != nil {
		t.Fatal(err)
	}
	bus := newBus(t, gw.URL)
	if _, err := bus.Replay(t.Context(), "audit", "log", more[0]); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 30*time.Second, "the replay delivered", func() bool {
		for _, id := range more {
			if len(attempts.of(id)) != 2 {
				return false
			}
		}
		s := group()
		return s.Replay != nil && s.Replay.State == "done" && s.Replay.Queued == 4
	})
	var after int
	if err := gw.app.pool.QueryRow(t.Context(), `SELECT count(*) FROM river_job WHERE kind = $1`, dispatch.DeliveryBatchKind).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != before+1 {
		t.Errorf("the replay of 4 events queued %d delivery batches, want 1", after-before)
	}
}
