package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/testwait"
)

type deliveryRecord struct {
	ID          int64    `json:"id"`
	EventID     string   `json:"event_id"`
	API         string   `json:"api"`
	Event       string   `json:"event"`
	Service     string   `json:"service"`
	Listener    string   `json:"listener"`
	State       string   `json:"state"`
	Attempt     int      `json:"attempt"`
	MaxAttempts int      `json:"max_attempts"`
	Batch       bool     `json:"batch"`
	EventIDs    []string `json:"event_ids"`
	Errors      []struct {
		Attempt int    `json:"attempt"`
		Error   string `json:"error"`
		Status  int    `json:"status"`
	} `json:"errors"`
}

type deadPage struct {
	Deliveries []deliveryRecord `json:"deliveries"`
	NextCursor string           `json:"next_cursor"`
}

func TestDeadLetters(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)

	h, healthy := newFailingHook(t, func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, "boom")
	})
	registerGroup(t, gw, "w1", "billing", "charge", h.srv.URL, `{"max_attempts":2}`, "shop.*")
	a := fireOne(t, gw, "shop", "order_placed")
	b := fireOne(t, gw, "shop", "order_placed")
	c := fireOne(t, gw, "shop", "order_cancelled")
	for _, id := range []string{a, b, c} {
		waitState(t, gw, id, gateway.DeliveryDead)
	}

	// The dead list, newest first, with each attempt's status and snippet.
	var page deadPage
	if resp := gw.do(t, "GET", "/v1/listeners/billing/charge/dead", "", nil, &page); resp.StatusCode != 200 {
		t.Fatalf("list dead: %d", resp.StatusCode)
	}
	if len(page.Deliveries) != 3 || page.Deliveries[0].EventID != c || page.Deliveries[2].EventID != a || page.NextCursor != "" {
		t.Fatalf("dead = %+v", page)
	}
	for _, d := range page.Deliveries {
		if d.State != gateway.DeliveryDead || d.Attempt != 2 || d.MaxAttempts != 2 || len(d.Errors) != 2 ||
			d.Errors[1].Status != 500 || !strings.Contains(d.Errors[1].Error, "boom") || d.API != "shop" {
			t.Errorf("dead delivery %+v", d)
		}
	}
	byEvent := map[string]deliveryRecord{}
	for _, d := range page.Deliveries {
		byEvent[d.EventID] = d
	}

	// Filters and pagination.
	gw.do(t, "GET", "/v1/listeners/billing/charge/dead?event=order_cancelled", "", nil, &page)
	if len(page.Deliveries) != 1 || page.Deliveries[0].EventID != c {
		t.Errorf("event filter: %+v", page)
	}
	gw.do(t, "GET", "/v1/listeners/billing/charge/dead?api=other", "", nil, &page)
	if len(page.Deliveries) != 0 {
		t.Errorf("api filter: %+v", page)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	gw.do(t, "GET", "/v1/listeners/billing/charge/dead?since="+future, "", nil, &page)
	if len(page.Deliveries) != 0 {
		t.Errorf("since filter: %+v", page)
	}
	gw.do(t, "GET", "/v1/listeners/billing/charge/dead?until="+future, "", nil, &page)
	if len(page.Deliveries) != 3 {
		t.Errorf("until filter: %+v", page)
	}
	gw.do(t, "GET", "/v1/listeners/billing/charge/dead?limit=2", "", nil, &page)
	if len(page.Deliveries) != 2 || page.NextCursor == "" {
		t.Fatalf("first page: %+v", page)
	}
	gw.do(t, "GET", "/v1/listeners/billing/charge/dead?limit=2&before="+page.NextCursor, "", nil, &page)
	if len(page.Deliveries) != 1 || page.Deliveries[0].EventID != a || page.NextCursor != "" {
		t.Fatalf("second page: %+v", page)
	}
	expectProblem(t, gw.do(t, "GET", "/v1/listeners/billing/nobody/dead", "", nil, nil), 404, "not_found")
	expectProblem(t, gw.do(t, "GET", "/v1/listeners/billing/charge/dead?since=yesterday", "", nil, nil), 400, "invalid")
	expectProblem(t, gw.do(t, "GET", "/v1/listeners/billing/charge/dead?before=x", "", nil, nil), 400, "invalid")

	// One delivery, also by its id in the event's detail.
	dA := byEvent[a]
	var one deliveryRecord
	if resp := gw.do(t, "GET", fmt.Sprintf("/v1/deliveries/%d", dA.ID), "", nil, &one); resp.StatusCode != 200 ||
		one.EventID != a || one.Event != "order_placed" || one.State != gateway.DeliveryDead || one.Listener != "charge" {
		t.Fatalf("get delivery: %d %+v", resp.StatusCode, one)
	}
	var detail struct {
		Deliveries []deliveryRecord `json:"deliveries"`
	}
	gw.do(t, "GET", "/v1/events/"+a, "", nil, &detail)
	if len(detail.Deliveries) != 1 || detail.Deliveries[0].ID != dA.ID {
		t.Errorf("event detail deliveries %+v, want id %d", detail.Deliveries, dA.ID)
	}
	expectProblem(t, gw.do(t, "GET", "/v1/deliveries/999999", "", nil, nil), 404, "not_found")
	expectProblem(t, gw.do(t, "GET", "/v1/deliveries/abc", "", nil, nil), 400, "invalid")

	// Redriving a delivery gives it a fresh allowance of attempts (not just
	// one more): while the listener still fails it is tried twice more.
	before := len(h.received())
	var redriven deliveryRecord
	if resp := gw.do(t, "POST", fmt.Sprintf("/v1/deliveries/%d/redrive", dA.ID), "", nil, &redriven); resp.StatusCode != 200 ||
		redriven.MaxAttempts != 4 || redriven.State == gateway.DeliveryDead {
		t.Fatalf("redrive: %d %+v", resp.StatusCode, redriven)
	}
	one = waitDelivery(t, gw, dA.ID, gateway.DeliveryDead)
	if one.Attempt != 4 || len(one.Errors) != 4 || len(h.received())-before != 2 {
		t.Fatalf("after redrive while failing: %+v, %d new requests", one, len(h.received())-before)
	}

	// Now the listener works: redrive one, then the rest in bulk.
	healthy.Store(true)
	gw.do(t, "POST", fmt.Sprintf("/v1/deliveries/%d/redrive", dA.ID), "", nil, nil)
	one = waitDelivery(t, gw, dA.ID, gateway.DeliveryCompleted)
	last := h.received()[len(h.received())-1]
	if last.header.Get("Lightbus-Attempt") != "5" || last.header.Get("Webhook-Id") != a {
		t.Errorf("redriven attempt headers %v", last.header)
	}
	expectProblem(t, gw.do(t, "POST", fmt.Sprintf("/v1/deliveries/%d/redrive", dA.ID), "", nil, nil), 409, "conflict")
	expectProblem(t, gw.do(t, "POST", "/v1/deliveries/999999/redrive", "", nil, nil), 404, "not_found")

	var res struct{ Redriven int }
	if resp := gw.do(t, "POST", "/v1/listeners/billing/charge/redrive", `{"event":"order_cancelled"}`, nil, &res); resp.StatusCode != 200 || res.Redriven != 1 {
		t.Fatalf("bulk redrive with a filter: %d %+v", resp.StatusCode, res)
	}
	waitState(t, gw, c, gateway.DeliveryCompleted)
	if gw.do(t, "POST", "/v1/listeners/billing/charge/redrive", ``, nil, &res); res.Redriven != 1 {
		t.Fatalf("bulk redrive of the rest: %+v", res)
	}
	waitState(t, gw, b, gateway.DeliveryCompleted)
	gw.do(t, "GET", "/v1/listeners/billing/charge/dead", "", nil, &page)
	if len(page.Deliveries) != 0 {
		t.Errorf("dead after redriving all: %+v", page)
	}
	expectProblem(t, gw.do(t, "POST", "/v1/listeners/billing/charge/redrive", `{"evnt":"x"}`, nil, nil), 400, "invalid")
	expectProblem(t, gw.do(t, "POST", "/v1/listeners/billing/nobody/redrive", `{}`, nil, nil), 404, "not_found")
}

// waitDelivery waits until delivery id is in state and returns it.
func waitDelivery(t *testing.T, gw *testGateway, id int64, state string) deliveryRecord {
	t.Helper()
	var d deliveryRecord
	testwait.For(t, 15*time.Second, "delivery "+strconv.FormatInt(id, 10)+" to be "+state, func() bool {
		d = deliveryRecord{}
		gw.do(t, "GET", fmt.Sprintf("/v1/deliveries/%d", id), "", nil, &d)
		return d.State == state
	})
	return d
}

func TestRedriveManyInBatches(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)

	var healthy atomic.Bool
	var delivered atomic.Int64
	h := newHook(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if healthy.Load() {
			delivered.Add(1)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.WriteHeader(http.StatusBadRequest)
	})
	registerGroup(t, gw, "w1", "billing", "charge", h.srv.URL, `{"max_attempts":1}`, "shop.*")
	// More dead deliveries than one bulk-redrive batch (1000).
	const n = 1100
	// Fired in two batches: a thousand single fires would make the test
	// slow on a busy machine without testing more.
	item := `{"api":"shop","event":"order_placed","params":{}}`
	for _, size := range []int{n / 2, n - n/2} {
		batch := "[" + strings.Repeat(item+",", size-1) + item + "]"
		if resp := gw.do(t, "POST", "/v1/events", batch, nil, nil); resp.StatusCode != http.StatusAccepted {
			t.Fatalf("batch fire: %d", resp.StatusCode)
		}
	}
	testwait.For(t, 120*time.Second, "every delivery to be dead", func() bool {
		var page deadPage
		gw.do(t, "GET", "/v1/listeners/billing/charge/dead?limit=1000&before=9223372036854775807", "", nil, &page)
		if len(page.Deliveries) < 1000 {
			return false
		}
		gw.do(t, "GET", "/v1/listeners/billing/charge/dead?limit=1000&before="+page.NextCursor, "", nil, &page)
		return len(page.Deliveries) == n-1000
	})
	healthy.Store(true)
	var res struct{ Redriven int }
	gw.do(t, "POST", "/v1/listeners/billing/charge/redrive", `{}`, nil, &res)
	if res.Redriven != n {
		t.Fatalf("redriven %d, want %d", res.Redriven, n)
	}
	testwait.For(t, 120*time.Second, "every redriven delivery to arrive", func() bool { return delivered.Load() >= n })
}
