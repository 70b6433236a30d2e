package main

import (
	"net/http"
	"strings"
	"testing"
)

type fireResult struct {
	ID         string `json:"id"`
	API        string `json:"api"`
	Event      string `json:"event"`
	CreatedAt  string `json:"created_at"`
	Deliveries int    `json:"deliveries"`
}

type eventPage struct {
	Events []struct {
		ID     string         `json:"id"`
		API    string         `json:"api"`
		Event  string         `json:"event"`
		Params map[string]any `json:"params"`
	} `json:"events"`
	NextCursor string `json:"next_cursor"`
}

func TestFireHTTP(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, func(c *Config) { c.MaxBodyBytes = 1024 })

	var res fireResult
	resp := gw.do(t, "POST", "/v1/events/auth/user_registered", `{"user":"sally"}`, nil, &res)
	if resp.StatusCode != http.StatusAccepted || res.ID == "" || res.API != "auth" || res.Event != "user_registered" || res.Deliveries != 0 {
		t.Fatalf("fire: %d %+v", resp.StatusCode, res)
	}

	// Bad input gets a clear problem and stores nothing.
	for _, tc := range []struct {
		path, body string
		status     int
		code       string
	}{
		{"/v1/events/auth/user_registered", `{"user":`, 400, "invalid"},
		{"/v1/events/auth/user_registered", `["sally"]`, 400, "invalid"},
		{"/v1/events/auth/user_registered", ``, 400, "invalid"},
		{"/v1/events/auth/bad-name", `{}`, 400, "invalid"},
		{"/v1/events/9auth/x", `{}`, 400, "invalid"},
		{"/v1/events/auth/user_registered", `{"pad":"` + strings.Repeat("x", 2000) + `"}`, 413, "too_large"},
	} {
		resp := gw.do(t, "POST", tc.path, tc.body, nil, nil)
		p := expectProblem(t, resp, tc.status, tc.code)
		if p.Type != "urn:lightbus:problem:"+tc.code || p.Detail == "" {
			t.Errorf("%s %q: problem %+v", tc.path, tc.body, p)
		}
	}
	var page eventPage
	gw.do(t, "GET", "/v1/events", "", nil, &page)
	if len(page.Events) != 1 || page.Events[0].ID != res.ID || page.Events[0].Params["user"] != "sally" {
		t.Fatalf("after bad fires the store holds %+v, want only the first event", page.Events)
	}

	var detail struct {
		ID         string           `json:"id"`
		Deliveries []map[string]any `json:"deliveries"`
	}
	resp = gw.do(t, "GET", "/v1/events/"+res.ID, "", nil, &detail)
	if resp.StatusCode != 200 || detail.ID != res.ID || detail.Deliveries == nil {
		t.Fatalf("get event: %d %+v", resp.StatusCode, detail)
	}
	expectProblem(t, gw.do(t, "GET", "/v1/events/01936f6e-0000-7000-8000-000000000000", "", nil, nil), 404, "not_found")
	expectProblem(t, gw.do(t, "GET", "/v1/events/nope", "", nil, nil), 400, "invalid")
	expectProblem(t, gw.do(t, "GET", "/v1/events?limit=0", "", nil, nil), 400, "invalid")
	expectProblem(t, gw.do(t, "GET", "/v1/events?since=yesterday", "", nil, nil), 400, "invalid")
	expectProblem(t, gw.do(t, "GET", "/v1/nothing", "", nil, nil), 404, "not_found")
	expectProblem(t, gw.do(t, "DELETE", "/v1/events", "", nil, nil), 400, "invalid")
}

func TestListEventsHTTPPagination(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)

	var ids []string
	for range 5 {
		var res fireResult
		gw.do(t, "POST", "/v1/events/shop/order_placed", `{}`, nil, &res)
		ids = append(ids, res.ID)
	}
	var seen []string
	cursor := ""
	for range 10 {
		var page eventPage
		gw.do(t, "GET", "/v1/events?api=shop&limit=2&before="+cursor, "", nil, &page)
		for _, e := range page.Events {
			seen = append(seen, e.ID)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	if len(seen) != 5 {
		t.Fatalf("paged through %d events, want 5: %v", len(seen), seen)
	}
	for i := range seen {
		if seen[i] != ids[4-i] {
			t.Fatalf("order %v, want newest first %v", seen, ids)
		}
	}
}

func TestHealthHTTP(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)

	var status map[string]string
	if resp := gw.do(t, "GET", "/healthz", "", nil, &status); resp.StatusCode != 200 || status["status"] != "ok" {
		t.Fatalf("healthz: %d %v", resp.StatusCode, status)
	}
	if resp := gw.do(t, "GET", "/readyz", "", nil, &status); resp.StatusCode != 200 || status["status"] != "ready" {
		t.Fatalf("readyz: %d %v", resp.StatusCode, status)
	}
	resp := gw.do(t, "GET", "/openapi.yaml", "", nil, nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/yaml") {
		t.Fatalf("openapi.yaml: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestDebugVarsOptIn(t *testing.T) {
	t.Parallel()

	off := startGateway(t, nil)
	expectProblem(t, off.do(t, "GET", "/debug/vars", "", nil, nil), 404, "not_found")

	on := startGateway(t, func(c *Config) { c.DebugVars = true })
	var vars struct {
		Goroutines int            `json:"goroutines"`
		Memstats   map[string]any `json:"memstats"`
	}
	if resp := on.do(t, "GET", "/debug/vars", "", nil, &vars); resp.StatusCode != 200 || vars.Goroutines <= 0 || vars.Memstats == nil {
		t.Fatalf("debug vars: %d %+v", resp.StatusCode, vars)
	}
	var status map[string]string
	if resp := on.do(t, "GET", "/healthz", "", nil, &status); resp.StatusCode != 200 {
		t.Fatalf("healthz behind the debug mux: %d", resp.StatusCode)
	}
}

func TestWorkersHTTP(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)

	reg := `{"service":"auth","base_url":"http://127.0.0.1:1","lease_ttl_ms":60000,
		"apis":[{"name":"auth","rpcs":[{"name":"check_password"}]}],
		"listeners":[{"name":"audit","events":["customers.*"],"path":"/lightbus/events/audit"}]}`
	var res struct {
		Worker struct {
			ID      string   `json:"id"`
			Service string   `json:"service"`
			APIs    []string `json:"apis"`
		} `json:"worker"`
		Listeners []struct {
			Name   string `json:"name"`
			Secret string `json:"secret"`
		} `json:"listeners"`
		HeartbeatIntervalMS int `json:"heartbeat_interval_ms"`
	}
	resp := gw.do(t, "PUT", "/v1/workers/auth-1", reg, nil, &res)
	if resp.StatusCode != 200 || res.Worker.ID != "auth-1" || len(res.Listeners) != 1 || !strings.HasPrefix(res.Listeners[0].Secret, "whsec_") || res.HeartbeatIntervalMS != 20000 {
		t.Fatalf("register: %d %+v", resp.StatusCode, res)
	}
	var list struct {
		Workers []struct{ ID string } `json:"workers"`
	}
	gw.do(t, "GET", "/v1/workers", "", nil, &list)
	if len(list.Workers) != 1 || list.Workers[0].ID != "auth-1" {
		t.Fatalf("workers = %+v", list)
	}
	// Another service cannot take over a live API.
	expectProblem(t, gw.do(t, "PUT", "/v1/workers/x-1", strings.Replace(reg, `"service":"auth"`, `"service":"intruder"`, 1), nil, nil), 409, "conflict")
	expectProblem(t, gw.do(t, "PUT", "/v1/workers/auth-1", `{"service":"auth","base_url":"nope"}`, nil, nil), 400, "invalid")
	expectProblem(t, gw.do(t, "PUT", "/v1/workers/auth-1", `{`, nil, nil), 400, "invalid")
	expectProblem(t, gw.do(t, "PUT", "/v1/workers/bad%20id", reg, nil, nil), 400, "invalid")

	if resp := gw.do(t, "DELETE", "/v1/workers/auth-1", "", nil, nil); resp.StatusCode != 204 {
		t.Fatalf("deregister: %d", resp.StatusCode)
	}
	if resp := gw.do(t, "DELETE", "/v1/workers/auth-1", "", nil, nil); resp.StatusCode != 204 {
		t.Fatalf("deregister again: %d", resp.StatusCode)
	}
	gw.do(t, "GET", "/v1/workers", "", nil, &list)
	if len(list.Workers) != 0 {
		t.Fatalf("after deregistering: %+v", list)
	}
}
