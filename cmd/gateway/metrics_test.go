package main

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/testwait"
)

// scrape reads GET /metrics (with header, when not nil) into a map from
// each series, as written ("name{label=\"value\",...}"), to its value.
func scrape(t *testing.T, gw *testGateway, header map[string]string) map[string]float64 {
	t.Helper()
	resp := gw.do(t, "GET", "/metrics", "", header, nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	series := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		series[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return series
}

// waitMetric waits until the series reaches at least want, and returns the
// last scrape.
func waitMetric(t *testing.T, gw *testGateway, series string, want float64) map[string]float64 {
	t.Helper()
	var got map[string]float64
	testwait.For(t, 15*time.Second, fmt.Sprintf("%s to reach %v", series, want), func() bool {
		got = scrape(t, gw, nil)
		return got[series] >= want
	})
	return got
}

// TestMetrics scrapes a real gateway's /metrics while events are fired,
// delivered, retried and dead-lettered, endpoints removed, and RPCs called,
// and checks the counters, histograms and gauges that should move.
func TestMetrics(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, func(c *Config) { c.MetricsCacheTTL = 20 * time.Millisecond })

	// A group whose listener always fails (dead after 2 attempts), one that
	// answers 503 once and then 204 (delivered on a retry), and one that
	// answers 410 (its endpoint removed).
	failing, _ := newFailingHook(t, func(w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) })
	registerGroup(t, gw, "w1", "billing", "charge", failing.srv.URL, `{"max_attempts":2}`, "shop.order_placed")
	flaky := newListener(t, http.StatusServiceUnavailable)
	registerGroup(t, gw, "w2", "audit", "record", flaky.srv.URL, "", "shop.order_shipped")
	gone := newListener(t, http.StatusGone)
	registerGroup(t, gw, "w3", "mail", "notify", gone.srv.URL, "", "shop.order_returned")

	dead := fireOne(t, gw, "shop", "order_placed")
	delivered := fireOne(t, gw, "shop", "order_shipped")
	fireOne(t, gw, "shop", "order_returned")
	waitState(t, gw, dead, gateway.DeliveryDead)
	waitState(t, gw, delivered, gateway.DeliveryCompleted)

	// Refused fires: invalid names are counted without them.
	expectProblem(t, gw.do(t, "POST", "/v1/events/Shop!/order_placed", `{}`, nil, nil), 400, "invalid")
	expectProblem(t, gw.do(t, "POST", "/v1/events/shop/order_placed", `[1]`, nil, nil), 400, "invalid")
	if resp := gw.do(t, "POST", "/v1/events", `[{"api":"shop","event":"order_shipped","params":{}}]`, nil, nil); resp.StatusCode != 202 {
		t.Fatalf("batch fire: %d", resp.StatusCode)
	}

	// RPCs: one answered, one to an invalid method name.
	serveAuth(t, gw, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"result":true}`)
	})
	if resp := gw.do(t, "POST", "/v1/rpc/auth/check_password", `{}`, nil, nil); resp.StatusCode != 200 {
		t.Fatalf("call: %d", resp.StatusCode)
	}
	expectProblem(t, gw.do(t, "POST", "/v1/rpc/auth/Check-Password!", `{}`, nil, nil), 400, "invalid")

	m := waitMetric(t, gw, `lightbus_deliveries_total{listener="notify",outcome="endpoint_removed",service="mail"}`, 1)
	m = waitMetric(t, gw, `lightbus_listener_dead{listener="charge",service="billing"}`, 1)
	want := map[string]float64{
		// Fires, by validated names and outcome; the batch's event counted too.
		`lightbus_events_fired_total{api="shop",event="order_placed",outcome="accepted"}`:  1,
		`lightbus_events_fired_total{api="shop",event="order_shipped",outcome="accepted"}`: 2,
		`lightbus_events_fired_total{api="",event="",outcome="invalid"}`:                   1,
		`lightbus_events_fired_total{api="shop",event="order_placed",outcome="invalid"}`:   1,
		`lightbus_fire_duration_seconds_count{api="shop"}`:                                 4,
		`lightbus_fire_duration_seconds_count{api=""}`:                                     2,
		// Deliveries: dead after a retry; delivered after a retry.
		`lightbus_deliveries_total{listener="charge",outcome="retried",service="billing"}`: 1,
		`lightbus_deliveries_total{listener="charge",outcome="dead",service="billing"}`:    1,
		`lightbus_deliveries_total{listener="record",outcome="retried",service="audit"}`:   1,
		`lightbus_deliveries_total{listener="record",outcome="delivered",service="audit"}`: 2,
		`lightbus_delivery_duration_seconds_count{listener="charge",service="billing"}`:    2,
		`lightbus_fire_to_delivered_seconds_count{listener="record",service="audit"}`:      2,
		// RPCs.
		`lightbus_rpc_calls_total{api="auth",method="check_password",outcome="ok"}`: 1,
		`lightbus_rpc_calls_total{api="",method="",outcome="invalid"}`:              1,
		`lightbus_rpc_duration_seconds_count{api="auth",method="check_password"}`:   1,
		// Gauges read from the store, the pool, and the state read's health.
		`lightbus_listener_dead{listener="charge",service="billing"}`:    1,
		`lightbus_listener_pending{listener="charge",service="billing"}`: 0,
		`lightbus_workers_live{service="billing"}`:                       1,
		`lightbus_workers_live{service="auth"}`:                          1,
		`lightbus_db_pool_max_connections`:                               10,
		`lightbus_metrics_state_up`:                                      1,
	}
	// The second shipped event (the batch's) may still be on its way.
	m = waitMetric(t, gw, `lightbus_deliveries_total{listener="record",outcome="delivered",service="audit"}`, 2)
	for series, v := range want {
		if got, ok := m[series]; !ok || got != v {
			t.Errorf("%s = %v (present %t), want %v", series, got, ok, v)
		}
	}
	// The 410 group's delivery waits for an endpoint (pending, or in flight
	// while it looks again), with lag.
	waiting := m[`lightbus_listener_pending{listener="notify",service="mail"}`] + m[`lightbus_listener_in_flight{listener="notify",service="mail"}`]
	if lag := m[`lightbus_listener_lag_seconds{listener="notify",service="mail"}`]; waiting != 1 || lag <= 0 {
		t.Errorf("the waiting group: %v pending or in flight, lag %v", waiting, lag)
	}
	for _, series := range []string{`lightbus_db_pool_acquires_total`, `go_goroutines`, `process_resident_memory_bytes`} {
		if _, ok := m[series]; !ok {
			t.Errorf("%s is missing", series)
		}
	}
	riverJobs := false
	for series := range m {
		if strings.Contains(series, "Shop!") || strings.Contains(series, "Check-Password") {
			t.Errorf("an invalid name became a label value: %s", series)
		}
		riverJobs = riverJobs || strings.HasPrefix(series, `lightbus_river_jobs{queue="lightbus_delivery"`)
	}
	if !riverJobs {
		t.Errorf("no lightbus_river_jobs series for the delivery queue (the 410 group's delivery waits in it)")
	}
}

// TestMetricsNeedRead shows /metrics answering only keys with read.
func TestMetricsNeedRead(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, withAuth)
	expectUnauthorized(t, gw.do(t, "GET", "/metrics", "", nil, nil))
	expectForbidden(t, gw.do(t, "GET", "/metrics", "", bearer(createKey(t, gw, "firer", "fire:*")), nil), "read")
	if m := scrape(t, gw, bearer(createKey(t, gw, "scraper", "read"))); m[`lightbus_metrics_state_up`] != 1 {
		t.Errorf("lightbus_metrics_state_up = %v", m[`lightbus_metrics_state_up`])
	}
}
