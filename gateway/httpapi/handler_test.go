package httpapi

import (
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/gateway/dispatch"
	"github.com/lightbus-go/lightbus/internal/testhttp"
	"github.com/lightbus-go/lightbus/store/postgres"
	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

// The handler tests drive the HTTP API with httptest over the real service
// and a real Postgres store (no River jobs run: nothing here delivers).

// TestMain gives the handler tests a Postgres server (pgtest). A fuzzing
// run (go test -fuzz, and its worker processes) runs only the fuzz targets,
// which need none: it starts no server, so that each fuzz worker starts at
// once.
func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.fuzz"); f != nil && f.Value.String() != "" {
		os.Exit(m.Run())
	}
	if f := flag.Lookup("test.fuzzworker"); f != nil && f.Value.String() == "true" {
		os.Exit(m.Run())
	}
	pgtest.Main(m)
}

// testServer is the HTTP API over a fresh database, served by httptest.
type testServer struct {
	URL string
}

// setup serves the HTTP API over a fresh database; mutate, when not nil,
// adjusts its configuration.
func setup(t *testing.T, mutate func(*Config)) *testServer {
	t.Helper()
	store, err := postgres.New(pgtest.New(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Service: gateway.NewService(gateway.ServiceConfig{
			Events: store, Workers: store, Listeners: store, Replays: store, Schemas: store,
			SchemaCache: gateway.NewSchemaCache(gateway.SchemaCacheConfig{Store: store}),
			Forwarder:   dispatch.NewForwarder(dispatch.ForwarderConfig{Store: store}),
			Ready:       store.Ready,
		}),
		OpenAPI: []byte("openapi: 3.1.0\n"),
	}
	if mutate != nil {
		mutate(&cfg)
	}
	srv := httptest.NewServer(New(cfg))
	t.Cleanup(srv.Close)
	return &testServer{URL: srv.URL}
}

// do sends a request to the server and decodes a JSON answer into out
// (when not nil).
func (s *testServer) do(t *testing.T, method, path string, body string, header map[string]string, out any) *http.Response {
	t.Helper()
	return testhttp.Do(t, method, s.URL+path, body, header, out)
}

func expectProblem(t *testing.T, resp *http.Response, status int, code string) testhttp.Problem {
	t.Helper()
	return testhttp.ExpectProblem(t, resp, status, code)
}

// eventPage is an answer of GET /v1/events.
type eventPage struct {
	Events     []gateway.Event `json:"events"`
	NextCursor string          `json:"next_cursor"`
}

func TestFireHTTP(t *testing.T) {
	t.Parallel()
	gw := setup(t, func(c *Config) { c.MaxBodyBytes = 1024 })

	var res gateway.FireResult
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
	if len(page.Events) != 1 || page.Events[0].ID != res.ID || string(page.Events[0].Params) != `{"user":"sally"}` {
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
	gw := setup(t, nil)

	var ids []string
	for range 5 {
		var res gateway.FireResult
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
	gw := setup(t, nil)

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

func TestWorkersHTTP(t *testing.T) {
	t.Parallel()
	gw := setup(t, nil)

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
