package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/internal/testwait"
)

type replayDoc struct {
	ID        int64  `json:"id"`
	State     string `json:"state"`
	Queued    int64  `json:"queued"`
	Redeliver bool   `json:"redeliver"`
	Cursor    string `json:"cursor"`
}

// registerSince registers a worker for the group with the given since.
func registerSince(t *testing.T, gw *testGateway, workerID, name, baseURL, since string) {
	t.Helper()
	body := fmt.Sprintf(`{"service":"audit","base_url":%q,"lease_ttl_ms":60000,"listeners":[{"name":%q,"events":["shop.order_placed"],"path":"/hook","since":%q}]}`,
		baseURL, name, since)
	if resp := gw.do(t, "PUT", "/v1/workers/"+workerID, body, nil, nil); resp.StatusCode != 200 {
		t.Fatalf("register %s: %d", workerID, resp.StatusCode)
	}
}

func deliveredIDs(h *hook) map[string]int {
	m := map[string]int{}
	for _, r := range h.received() {
		m[r.header.Get("Webhook-Id")]++
	}
	return m
}

func TestNewGroupSince(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)

	// Events fired before any group exists are stored all the same.
	var ids []string
	for range 5 {
		ids = append(ids, fireOneAny(t, gw, "shop", "order_placed"))
	}
	fireOneAny(t, gw, "shop", "order_cancelled") // not subscribed
	mid := time.Now().UTC()
	time.Sleep(10 * time.Millisecond) // later events are created after mid (the clock, not an event, is awaited)
	for range 3 {
		ids = append(ids, fireOneAny(t, gw, "shop", "order_placed"))
	}

	hNow := newHook(t, func(n int, w http.ResponseWriter, r *http.Request) {})
	hEarliest := newHook(t, func(n int, w http.ResponseWriter, r *http.Request) {})
	hTime := newHook(t, func(n int, w http.ResponseWriter, r *http.Request) {})
	hID := newHook(t, func(n int, w http.ResponseWriter, r *http.Request) {})
	registerSince(t, gw, "w-now", "now", hNow.srv.URL, "")
	registerSince(t, gw, "w-earliest", "earliest", hEarliest.srv.URL, "earliest")
	registerSince(t, gw, "w-time", "bytime", hTime.srv.URL, mid.Format(time.RFC3339Nano))
	registerSince(t, gw, "w-id", "byid", hID.srv.URL, ids[6])

	after := fireOneAny(t, gw, "shop", "order_placed")
	want := map[*hook][]string{hNow: {after}, hEarliest: append(append([]string{}, ids...), after),
		hTime: append(append([]string{}, ids[5:]...), after), hID: {ids[6], ids[7], after}}
	for h, ids := range want {
		testwait.For(t, 15*time.Second, "the replayed deliveries", func() bool { return len(deliveredIDs(h)) == len(ids) })
	}
	time.Sleep(300 * time.Millisecond) // nothing more arrives
	for h, ids := range want {
		got := deliveredIDs(h)
		if len(got) != len(ids) {
			t.Errorf("%s got %d events, want %d", h.srv.URL, len(got), len(ids))
		}
		for _, id := range ids {
			if got[id] != 1 {
				t.Errorf("%s got event %s %d times, want once", h.srv.URL, id, got[id])
			}
		}
	}

	// since applies only when the group is created.
	registerSince(t, gw, "w-now-2", "now", hNow.srv.URL, "earliest")
	time.Sleep(300 * time.Millisecond)
	if n := len(hNow.received()); n != 1 {
		t.Fatalf("re-registering with since=earliest replayed an existing group: %d deliveries", n)
	}
	expectProblem(t, gw.do(t, "PUT", "/v1/workers/w-bad",
		`{"service":"audit","base_url":"http://127.0.0.1:1","listeners":[{"name":"x","events":["a.b"],"path":"/h","since":"yesterday"}]}`, nil, nil),
		http.StatusBadRequest, "invalid")
}

// fireOneAny fires api.event with empty parameters, whatever listens.
func fireOneAny(t *testing.T, gw *testGateway, api, event string) string {
	t.Helper()
	var res fireResult
	if resp := gw.do(t, "POST", "/v1/events/"+api+"/"+event, `{}`, nil, &res); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("fire: %d", resp.StatusCode)
	}
	return res.ID
}

func TestReplayRewindsAGroup(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	h := newHook(t, func(n int, w http.ResponseWriter, r *http.Request) {})
	registerSince(t, gw, "w1", "log", h.srv.URL, "")
	ids := fireMany(t, gw, 1200) // more than two replay pages of 500
	waitCaughtUp(t, gw, "audit.log", 60*time.Second)
	if n := len(deliveredIDs(h)); n != 1200 {
		t.Fatalf("%d events delivered before the replay", n)
	}

	bus := newBus(t, gw.URL)
	rp, err := bus.Replay(t.Context(), "audit", "log", ids[200])
	if err != nil || rp.ID == 0 || !rp.Redeliver || rp.FromID != ids[200] || rp.State != "running" {
		t.Fatalf("replay: %+v, %v", rp, err)
	}
	testwait.For(t, 60*time.Second, "the replay to finish", func() bool {
		var out struct {
			Listeners []struct {
				Replay *replayDoc `json:"replay"`
			} `json:"listeners"`
		}
		gw.do(t, "GET", "/v1/listeners", "", nil, &out)
		return len(out.Listeners) == 1 && out.Listeners[0].Replay != nil && out.Listeners[0].Replay.State == "done" &&
			out.Listeners[0].Replay.Queued == 1000 && out.Listeners[0].Replay.Cursor == ids[len(ids)-1]
	})
	waitCaughtUp(t, gw, "audit.log", 60*time.Second)
	got := deliveredIDs(h)
	for i, id := range ids {
		want := 1
		if i >= 200 {
			want = 2
		}
		if got[id] != want {
			t.Fatalf("event %d delivered %d times, want %d", i, got[id], want)
		}
	}

	expectProblem(t, gw.do(t, "POST", "/v1/listeners/audit/log/replay", `{}`, nil, nil), http.StatusBadRequest, "invalid")
	expectProblem(t, gw.do(t, "POST", "/v1/listeners/audit/log/replay", `{"since":"soon"}`, nil, nil), http.StatusBadRequest, "invalid")
	expectProblem(t, gw.do(t, "POST", "/v1/listeners/audit/nobody/replay", `{"since":"earliest"}`, nil, nil), http.StatusNotFound, "not_found")
}
