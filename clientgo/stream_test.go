package lightbus

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestFollow: Follow resumes each connection from the last position it
// saw (an event's, or a position alone), passes the filters, retries a
// 503, and returns a 410.
func TestFollow(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string // Last-Event-ID of each connection
	conn := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		conn++
		n := conn
		got = append(got, r.Header.Get("Last-Event-ID"))
		mu.Unlock()
		if q := r.URL.Query(); q.Get("api") != "auth.*" || len(q["where"]) != 2 || r.URL.Path != "/v1/events/stream" {
			t.Errorf("request %s", r.URL)
		}
		problem := func(status int, code string) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"type":"urn:lightbus:problem:%s","title":"x","status":%d,"detail":"d","code":"%s"}`, code, status, code)
		}
		ev := func(id, pos string) string {
			return fmt.Sprintf("id: %s\nevent: lightbus.event\ndata: {\"id\":%q,\"api\":\"auth\",\"event\":\"e\",\"params\":{},\"created_at\":\"2026-01-01T00:00:00Z\"}\n\n", pos, id)
		}
		w.Header().Set("Content-Type", "text/event-stream")
		switch n {
		case 1: // the start, two events, and a partial third cut off
			fmt.Fprint(w, "retry: 1000\nid: p0\n\n"+ev("e1", "p1")+ev("e2", "p2")+"id: p3\nevent: lightbus.event\ndata: {\"id\":\"e3\"")
		case 2:
			problem(503, "unavailable")
		case 3: // a position alone, then an event
			fmt.Fprint(w, "id: p2\n\n: ping\n\nid: p9\n\n"+ev("e3", "p10"))
		default:
			problem(410, "gone")
		}
	}))
	t.Cleanup(srv.Close)
	bus, err := Create(WithURL(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	var events, positions []string
	retries := 0
	err = bus.Follow(t.Context(), FollowQuery{
		API: "auth.*", Where: []string{"a=1", "b>2"},
		OnPosition: func(p string) { positions = append(positions, p) },
		OnRetry:    func(error, time.Duration) { retries++ },
	}, func(ev FollowedEvent) error {
		events = append(events, ev.ID+"@"+ev.Position)
		return nil
	})
	if !IsCode(err, CodeGone) {
		t.Fatalf("Follow = %v, want a gone error", err)
	}
	if fmt.Sprint(events) != "[e1@p1 e2@p2 e3@p10]" || fmt.Sprint(positions) != "[p0 p2 p9]" || retries != 3 {
		t.Errorf("events %v, positions %v, retries %d", events, positions, retries)
	}
	if fmt.Sprint(got) != "[ p2 p2 p10]" {
		t.Errorf("connections resumed from %q, want none, then p2, p2, p10", got)
	}
}
