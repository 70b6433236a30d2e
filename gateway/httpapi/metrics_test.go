package httpapi

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
)

// labelRecorder keeps what a Recorder is told, as "kind api event outcome".
type labelRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (r *labelRecorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, s)
}

func (r *labelRecorder) EventFired(api, event, outcome string) {
	r.add(fmt.Sprintf("fired %q %q %s", api, event, outcome))
}

func (r *labelRecorder) FireDone(api string, took time.Duration) {
	r.add(fmt.Sprintf("fire_done %q", api))
}

func (r *labelRecorder) CallDone(api, method, outcome string, took time.Duration) {
	r.add(fmt.Sprintf("call %q %q %s", api, method, outcome))
}

func (r *labelRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := r.seen
	r.seen = nil
	return seen
}

// TestRecorderLabels shows fires and calls reported with their names once
// valid, and with empty names (never the raw input) when not.
func TestRecorderLabels(t *testing.T) {
	t.Parallel()
	rec := &labelRecorder{}
	s := setup(t, func(c *Config) {
		c.Recorder = rec
		c.MaxBodyBytes = 64
	})
	timeout := map[string]string{"Lightbus-Timeout": "50ms"}
	for _, tc := range []struct {
		method, path, body string
		header             map[string]string
		want               []string
	}{
		{"POST", "/v1/events/shop/order_placed", `{}`, nil,
			[]string{`fired "shop" "order_placed" accepted`, `fire_done "shop"`}},
		{"POST", "/v1/events/Shop%21/order_placed", `{}`, nil,
			[]string{`fired "" "" invalid`, `fire_done ""`}},
		{"POST", "/v1/events/shop/Order-Placed", `{}`, nil,
			[]string{`fired "" "" invalid`, `fire_done ""`}},
		{"POST", "/v1/events/" + strings.Repeat("a", 300) + "/x", `{}`, nil,
			[]string{`fired "" "" invalid`, `fire_done ""`}},
		{"POST", "/v1/events/shop/order_placed", `[1]`, nil, // valid names, invalid body
			[]string{`fired "shop" "order_placed" invalid`, `fire_done "shop"`}},
		{"POST", "/v1/events/shop%20x/y", strings.Repeat(" ", 100), nil, // too large, invalid names
			[]string{`fired "" "" too_large`, `fire_done ""`}},
		{"POST", "/v1/events", `[{"api":"Bad!","event":"x","params":{}}]`, nil,
			[]string{`fired "" "" invalid`, `fire_done ""`}},
		{"POST", "/v1/events", `[{"api":"shop","event":"a","params":{}},{"api":"shop","event":"b","params":{}}]`, nil,
			[]string{`fired "shop" "a" accepted`, `fired "shop" "b" accepted`, `fire_done ""`}},
		{"POST", "/v1/rpc/auth/Check%21", `{}`, nil,
			[]string{`call "" "" invalid`}},
		{"POST", "/v1/rpc/au%20th/check", `{}`, nil,
			[]string{`call "" "" invalid`}},
		{"POST", "/v1/rpc/auth/check", `{}`, timeout,
			[]string{`call "auth" "check" no_worker`}},
	} {
		resp := s.do(t, tc.method, tc.path, tc.body, tc.header, nil)
		_, _ = io.Copy(io.Discard, resp.Body)
		got := rec.take()
		if strings.Join(got, "; ") != strings.Join(tc.want, "; ") {
			t.Errorf("%s %s (%d): recorded %q, want %q", tc.method, tc.path, resp.StatusCode, got, tc.want)
		}
	}
}

// TestMetricsRoute shows GET /metrics serving Config.Metrics, and 404 when
// there is none.
func TestMetricsRoute(t *testing.T) {
	t.Parallel()
	s := setup(t, func(c *Config) {
		c.Metrics = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "lightbus_up 1\n") })
	})
	resp := s.do(t, "GET", "/metrics", "", nil, nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(body) != "lightbus_up 1\n" {
		t.Errorf("GET /metrics: %d %q", resp.StatusCode, body)
	}
	expectProblem(t, setup(t, nil).do(t, "GET", "/metrics", "", nil, nil), http.StatusNotFound, gateway.ENotFound)
}
