package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/cmd/lightbus-bench/bench"
	authbus "github.com/lightbus-go/lightbus/examples/auth/bus"
	customersbus "github.com/lightbus-go/lightbus/examples/customers/bus"
	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/testwait"
	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

// testBootstrapToken is the admin token of the auth tests' gateways.
const testBootstrapToken = "lb_test-bootstrap-token-0123456789abcdef"

// withAuth requires keys and makes the bootstrap admin key.
func withAuth(c *Config) {
	c.Auth = authRequired
	c.BootstrapToken = testBootstrapToken
}

// bearer returns the Authorization header of token.
func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

// createKey makes a key with scopes through the admin API and returns its
// token.
func createKey(t *testing.T, gw *testGateway, name string, scopes ...string) string {
	t.Helper()
	body := fmt.Sprintf(`{"name":%q,"scopes":["%s"]}`, name, strings.Join(scopes, `","`))
	var created struct {
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
		Token  string   `json:"token"`
	}
	resp := gw.do(t, "POST", "/v1/keys", body, bearer(testBootstrapToken), &created)
	if resp.StatusCode != http.StatusCreated || created.Name != name || !strings.HasPrefix(created.Token, "lb_") {
		data, _ := io.ReadAll(resp.Body)
		t.Fatalf("create key %s: %d %s", name, resp.StatusCode, data)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("the answer with a token may be cached: Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
	return created.Token
}

// expectForbidden checks a 403 forbidden naming scope.
func expectForbidden(t *testing.T, resp *http.Response, scope string) {
	t.Helper()
	p := expectProblem(t, resp, http.StatusForbidden, gateway.EForbidden)
	if !strings.HasSuffix(p.Detail, scope) {
		t.Errorf("403 detail %q does not name %s", p.Detail, scope)
	}
	if resp.Header.Get("WWW-Authenticate") != "" {
		t.Errorf("a 403 with WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
	}
}

// expectUnauthorized checks a 401 unauthorized with its challenge.
func expectUnauthorized(t *testing.T, resp *http.Response) {
	t.Helper()
	expectProblem(t, resp, http.StatusUnauthorized, gateway.EUnauthorized)
	if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="lightbus"` {
		t.Errorf("WWW-Authenticate %q", got)
	}
}

// TestAuthScopes shows each scope allowing what it should and refusing the
// rest, with a 403 naming the scope that is missing.
func TestAuthScopes(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, withAuth)
	// billing is known, so that an allowed call waits for a worker (and
	// finds none) rather than being unknown_api.
	if resp := gw.do(t, "PUT", "/v1/schema/billing", `{"rpcs":{"charge":{}}}`, bearer(testBootstrapToken), nil); resp.StatusCode != 201 {
		t.Fatalf("publish billing's schema: %d", resp.StatusCode)
	}

	type request struct{ method, path, body string }
	fire := request{"POST", "/v1/events/billing/charged", `{}`}
	fireSub := request{"POST", "/v1/events/billing.invoices/sent", `{}`}
	batch := request{"POST", "/v1/events", `[{"api":"billing","event":"charged","params":{}},{"api":"shop","event":"sold","params":{}}]`}
	call := request{"POST", "/v1/rpc/billing/charge", `{}`}
	serve := request{"PUT", "/v1/workers/w-serve", `{"service":"billing","base_url":"http://127.0.0.1:9","apis":[{"name":"billing"}]}`}
	listen := request{"PUT", "/v1/workers/w-listen", `{"service":"audit","base_url":"http://127.0.0.1:9",
		"listeners":[{"name":"log","events":["billing.charged","shop.*"],"path":"/log"}]}`}
	deregister := request{"DELETE", "/v1/workers/w-gone", ``}
	read := request{"GET", "/v1/events", ``}
	readSchema := request{"GET", "/v1/schema", ``}
	keys := request{"GET", "/v1/keys", ``}
	publish := request{"PUT", "/v1/schema/billing", `{"events":{"charged":{}}}`}
	deleteGroup := request{"DELETE", "/v1/listeners/audit/nobody", ``}

	for _, tc := range []struct {
		name    string
		scopes  []string
		req     request
		status  int    // when allowed
		missing string // when refused: the scope the 403 names
	}{
		{"fire", []string{"fire:billing"}, fire, 202, ""},
		{"fire by wildcard", []string{"fire:*"}, fire, 202, ""},
		{"fire by admin", []string{"admin"}, fire, 202, ""},
		{"fire another API", []string{"fire:shop", "call:billing"}, fire, 0, "fire:billing"},
		{"fire under a prefix", []string{"fire:billing.*"}, fireSub, 202, ""},
		{"prefix does not cover itself", []string{"fire:billing.*"}, fire, 0, "fire:billing"},
		{"batch", []string{"fire:billing", "fire:shop"}, batch, 202, ""},
		{"batch with an API missing", []string{"fire:billing"}, batch, 0, "fire:shop"},
		{"call", []string{"call:billing"}, call, 503, ""}, // allowed: no worker provides it
		{"call without the scope", []string{"fire:billing", "serve:billing"}, call, 0, "call:billing"},
		{"serve", []string{"serve:billing"}, serve, 200, ""},
		{"serve without the scope", []string{"listen:*", "call:billing"}, serve, 0, "serve:billing"},
		{"listen", []string{"listen:billing", "listen:shop"}, listen, 200, ""},
		{"listen to an API not covered", []string{"listen:billing"}, listen, 0, "listen:shop"},
		{"deregister with serve", []string{"serve:other"}, deregister, 204, ""},
		{"deregister with listen", []string{"listen:other"}, deregister, 204, ""},
		{"deregister with read", []string{"read", "fire:*"}, deregister, 0, "this key lacks a serve or listen scope"},
		{"read", []string{"read"}, read, 200, ""},
		{"read schemas", []string{"read"}, readSchema, 200, ""},
		{"read without the scope", []string{"fire:*", "call:*", "serve:*", "listen:*"}, read, 0, "read"},
		{"keys with read", []string{"read"}, keys, 0, "admin"},
		{"keys with admin", []string{"admin"}, keys, 200, ""},
		{"publish a schema with read", []string{"read", "serve:billing"}, publish, 0, "admin"},
		{"publish a schema with admin", []string{"admin"}, publish, 201, ""},
		{"delete a group with listen", []string{"listen:*", "read"}, deleteGroup, 0, "admin"},
		{"delete a group with admin", []string{"admin"}, deleteGroup, 404, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token := createKey(t, gw, strings.ReplaceAll(tc.name, " ", "-"), tc.scopes...)
			header := bearer(token)
			header["Lightbus-Timeout"] = "100ms"
			resp := gw.do(t, tc.req.method, tc.req.path, tc.req.body, header, nil)
			if tc.missing != "" {
				expectForbidden(t, resp, tc.missing)
				return
			}
			if resp.StatusCode != tc.status {
				data, _ := io.ReadAll(resp.Body)
				t.Fatalf("%s %s: %d %s, want %d", tc.req.method, tc.req.path, resp.StatusCode, data, tc.status)
			}
		})
	}
}

// TestAuthAnswers: no key or a bad one is a 401 with its challenge, a key
// without the scope a 403, the open paths need no key, and neither refusal
// stores anything.
func TestAuthAnswers(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, withAuth)
	reader := createKey(t, gw, "reader", "read")
	firer := createKey(t, gw, "shop-firer", "fire:shop")

	for _, path := range []string{"/healthz", "/readyz", "/openapi.yaml"} {
		if resp := gw.do(t, "GET", path, "", nil, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s without a key: %d, want 200", path, resp.StatusCode)
		}
	}
	for name, header := range map[string]map[string]string{
		"no header":           nil,
		"unknown key":         bearer(gateway.NewToken()),
		"malformed key":       bearer("lb_short"),
		"another scheme":      {"Authorization": "Basic YWRtaW46c2VjcmV0"},
		"the hash for a key":  bearer(strings.Repeat("0", 64)),
		"a key in the header": {"Authorization": testBootstrapToken},
	} {
		t.Run(name, func(t *testing.T) {
			expectUnauthorized(t, gw.do(t, "POST", "/v1/events/billing/charged", `{}`, header, nil))
			expectUnauthorized(t, gw.do(t, "POST", "/v1/events", `[{"api":"billing","event":"charged","params":{}}]`, header, nil))
			expectUnauthorized(t, gw.do(t, "PUT", "/v1/workers/w1", `{"service":"billing","base_url":"http://127.0.0.1:9","apis":[{"name":"billing"}]}`, header, nil))
			expectUnauthorized(t, gw.do(t, "POST", "/v1/keys", `{"name":"sneaky","scopes":["admin"]}`, header, nil))
			expectUnauthorized(t, gw.do(t, "GET", "/v1/events", "", header, nil))
			expectUnauthorized(t, gw.do(t, "GET", "/v1/no/such/route", "", header, nil))
		})
	}
	// 403s.
	expectForbidden(t, gw.do(t, "POST", "/v1/events/billing/charged", `{}`, bearer(firer), nil), "fire:billing")
	expectForbidden(t, gw.do(t, "POST", "/v1/events", `[{"api":"shop","event":"sold","params":{}},{"api":"billing","event":"charged","params":{}}]`, bearer(firer), nil), "fire:billing")
	expectForbidden(t, gw.do(t, "PUT", "/v1/workers/w1", `{"service":"billing","base_url":"http://127.0.0.1:9","apis":[{"name":"billing"}]}`, bearer(reader), nil), "serve:billing")
	expectForbidden(t, gw.do(t, "PUT", "/v1/workers/w2", `{"service":"audit","base_url":"http://127.0.0.1:9","listeners":[{"name":"log","events":["billing.*"],"path":"/l"}]}`, bearer(firer), nil), "listen:billing")
	expectForbidden(t, gw.do(t, "POST", "/v1/keys", `{"name":"sneaky","scopes":["admin"]}`, bearer(reader), nil), "admin")
	expectForbidden(t, gw.do(t, "PUT", "/v1/schema/billing", `{"events":{"charged":{}}}`, bearer(reader), nil), "admin")

	// Nothing was stored.
	admin := bearer(testBootstrapToken)
	var events struct {
		Events []any `json:"events"`
	}
	gw.do(t, "GET", "/v1/events", "", admin, &events)
	var workers struct {
		Workers []any `json:"workers"`
	}
	gw.do(t, "GET", "/v1/workers", "", admin, &workers)
	var groups struct {
		Listeners []any `json:"listeners"`
	}
	gw.do(t, "GET", "/v1/listeners", "", admin, &groups)
	var keys struct {
		Keys []gateway.APIKey `json:"keys"`
	}
	gw.do(t, "GET", "/v1/keys", "", admin, &keys)
	if len(events.Events) != 0 || len(workers.Workers) != 0 || len(groups.Listeners) != 0 || len(keys.Keys) != 3 {
		t.Errorf("refused requests left %d events, %d workers, %d groups, %d keys (want 3: bootstrap, reader, shop-firer)",
			len(events.Events), len(workers.Workers), len(groups.Listeners), len(keys.Keys))
	}
	if resp := gw.do(t, "GET", "/v1/schema/billing", "", admin, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a refused schema was stored: GET /v1/schema/billing answered %d", resp.StatusCode)
	}
}

// TestAuthKeysAPI creates, lists and revokes keys over HTTP. A revoked key
// is refused at once by the replica that revoked it and within a second by
// another replica on the same database; revoking again is a 204, an
// unknown name a 404.
func TestAuthKeysAPI(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	gw1 := startGatewayOn(t, dbURL, withAuth)
	gw2 := startGatewayOn(t, dbURL, withAuth)
	admin := bearer(testBootstrapToken)

	for _, bad := range []string{
		`{"name":"x","scopes":["fire:billing*"]}`,
		`{"name":"x","scopes":["delete:*"]}`,
		`{"name":"x","scopes":["read:*"]}`,
		`{"name":"x","scopes":[]}`,
		`{"name":"bad name","scopes":["read"]}`,
		`{"name":"x","scopes":["read"],"token":"lb_mine"}`,
	} {
		expectProblem(t, gw1.do(t, "POST", "/v1/keys", bad, admin, nil), http.StatusBadRequest, gateway.EInvalid)
	}
	token := createKey(t, gw1, "ci", "read", "fire:shop.*")
	expectProblem(t, gw1.do(t, "POST", "/v1/keys", `{"name":"ci","scopes":["read"]}`, admin, nil), http.StatusConflict, gateway.EConflict)

	var listed struct {
		Keys []map[string]any `json:"keys"`
	}
	gw2.do(t, "GET", "/v1/keys", "", admin, &listed)
	if len(listed.Keys) != 2 || listed.Keys[1]["name"] != "ci" || fmt.Sprint(listed.Keys[1]["scopes"]) != "[read fire:shop.*]" {
		t.Fatalf("keys = %v", listed.Keys)
	}
	for _, k := range listed.Keys {
		for member := range k {
			if member != "name" && member != "scopes" && member != "created_at" {
				t.Errorf("a key is listed with %q", member)
			}
		}
	}

	// Both replicas know the key (and cache it).
	for _, gw := range []*testGateway{gw1, gw2} {
		if resp := gw.do(t, "GET", "/v1/events", "", bearer(token), nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("the new key on %s: %d", gw.URL, resp.StatusCode)
		}
	}
	if resp := gw1.do(t, "DELETE", "/v1/keys/ci", "", admin, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	revoked := time.Now()
	expectUnauthorized(t, gw1.do(t, "GET", "/v1/events", "", bearer(token), nil))
	// "Within a second": a request the other replica gets a second after
	// the revocation is refused, however slow the machine. The wait is
	// the guarantee's own bound, not a stand-in for an event.
	time.Sleep(time.Until(revoked.Add(time.Second)))
	if resp := gw2.do(t, "GET", "/v1/events", "", bearer(token), nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a second after the revocation the other replica answered the revoked key %d, want 401", resp.StatusCode)
	}

	if resp := gw2.do(t, "DELETE", "/v1/keys/ci", "", admin, nil); resp.StatusCode != http.StatusNoContent {
		t.Errorf("revoking twice: %d, want 204", resp.StatusCode)
	}
	expectProblem(t, gw2.do(t, "DELETE", "/v1/keys/nobody", "", admin, nil), http.StatusNotFound, gateway.ENotFound)
	listed.Keys = nil
	gw1.do(t, "GET", "/v1/keys", "", admin, &listed)
	if listed.Keys[1]["revoked_at"] == nil {
		t.Errorf("the revoked key is listed without revoked_at: %v", listed.Keys[1])
	}
	// Its name is not free again.
	expectProblem(t, gw1.do(t, "POST", "/v1/keys", `{"name":"ci","scopes":["read"]}`, admin, nil), http.StatusConflict, gateway.EConflict)
}

// TestAuthBootstrap: the bootstrap token is an admin key, made once however
// many replicas start with it.
func TestAuthBootstrap(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	gw1 := startGatewayOn(t, dbURL, withAuth)
	gw2 := startGatewayOn(t, dbURL, withAuth)
	var keys struct {
		Keys []gateway.APIKey `json:"keys"`
	}
	resp := gw2.do(t, "GET", "/v1/keys", "", bearer(testBootstrapToken), &keys)
	if resp.StatusCode != http.StatusOK || len(keys.Keys) != 1 || keys.Keys[0].Name != "bootstrap" || fmt.Sprint(keys.Keys[0].Scopes) != "[admin]" {
		t.Fatalf("keys after two starts with a bootstrap token: %d %+v", resp.StatusCode, keys.Keys)
	}
	admin := createKey(t, gw1, "made-with-bootstrap", "admin")

	// Once revoked, the bootstrap key stays revoked, also for a replica that
	// starts with the token afterwards.
	if resp := gw2.do(t, "DELETE", "/v1/keys/bootstrap", "", bearer(admin), nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("revoke the bootstrap key: %d", resp.StatusCode)
	}
	gw3 := startGatewayOn(t, dbURL, withAuth)
	expectUnauthorized(t, gw3.do(t, "GET", "/v1/keys", "", bearer(testBootstrapToken), nil))

	// Without one, no key exists and nothing is allowed.
	bare := startGateway(t, func(c *Config) { c.Auth = authRequired })
	expectUnauthorized(t, bare.do(t, "GET", "/v1/keys", "", bearer(testBootstrapToken), nil))
}

// TestAuthRateLimit: a key over its rate is answered 429 with Retry-After;
// other keys, the open paths and (with authentication off) keyless
// requests are not held back.
func TestAuthRateLimit(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, func(c *Config) {
		withAuth(c)
		c.RateLimit = 0.5 // one request every 2 s
		c.RateBurst = 2
	})
	busy := createKey(t, gw, "busy", "read") // the bootstrap key's first request
	for i := range 2 {
		if resp := gw.do(t, "GET", "/v1/events", "", bearer(busy), nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d of the burst: %d", i+1, resp.StatusCode)
		}
	}
	resp := gw.do(t, "GET", "/v1/events", "", bearer(busy), nil)
	expectProblem(t, resp, http.StatusTooManyRequests, gateway.ERateLimited)
	if ra := resp.Header.Get("Retry-After"); ra != "2" && ra != "1" {
		t.Errorf("Retry-After %q, want whole seconds until the next token (2)", ra)
	}
	if resp := gw.do(t, "GET", "/v1/keys", "", bearer(testBootstrapToken), nil); resp.StatusCode != http.StatusOK {
		t.Errorf("another key was held back: %d", resp.StatusCode)
	}
	for range 5 {
		if resp := gw.do(t, "GET", "/healthz", "", bearer(busy), nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("an open path was limited: %d", resp.StatusCode)
		}
	}

	open := startGateway(t, func(c *Config) { c.RateLimit, c.RateBurst = 0.5, 1 })
	for i := range 5 {
		if resp := open.do(t, "GET", "/v1/events", "", nil, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("keyless request %d with authentication off: %d", i+1, resp.StatusCode)
		}
	}
}

// TestAuthClients runs the example services as workers with keys of their
// own (the worker runtime registers, heartbeats and deregisters with them)
// and fires with the Go client.
func TestAuthClients(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, withAuth)
	ctx := context.Background()
	authKey := createKey(t, gw, "auth-worker", "serve:auth", "fire:auth")
	customersKey := createKey(t, gw, "customers-worker", "serve:customers", "listen:customers", "call:auth")
	reader := createKey(t, gw, "reader", "read", "fire:customers")

	keyless, err := lightbus.Create(lightbus.WithURL(gw.URL), lightbus.WithToken(""))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keyless.Workers(ctx); !lightbus.IsCode(err, lightbus.CodeUnauthorized) {
		t.Fatalf("the client without a key: %v, want unauthorized", err)
	}
	// A worker whose key cannot serve its API stops at its first
	// registration.
	wrong := authbus.New(append(workerOptions(gw, 2*time.Second), lightbus.WithToken(reader))...)
	if err := wrong.Run(ctx); !lightbus.IsCode(err, lightbus.CodeForbidden) || !strings.Contains(err.Error(), "serve:auth") {
		t.Fatalf("a worker with the wrong key: %v, want forbidden naming serve:auth", err)
	}

	// A long lease: a worker left registered would stay listed.
	stopAuth := startBus(authbus.New(append(workerOptions(gw, time.Minute), lightbus.WithToken(authKey))...))
	stopCustomers := startBus(customersbus.New(append(workerOptions(gw, time.Minute), lightbus.WithToken(customersKey))...))
	t.Cleanup(func() { _, _ = stopAuth(), stopCustomers() })
	client, err := lightbus.Create(lightbus.WithURL(gw.URL), lightbus.WithToken(reader))
	if err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 10*time.Second, "both workers to register", func() bool {
		workers, err := client.Workers(ctx)
		return err == nil && len(workers) == 2
	})
	if _, err := customersbus.NewCustomer.Fire(ctx, client, customersbus.NewCustomerParams{Name: "Sally", Email: "sally@example.com"}); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 15*time.Second, "auth.user_registered for sally", func() bool {
		page, err := client.Events(ctx, lightbus.EventQuery{API: "auth", Event: "user_registered"})
		return err == nil && len(page.Events) == 1
	})
	for _, stop := range []func() error{stopAuth, stopCustomers} {
		if err := stop(); err != nil {
			t.Errorf("a worker stopped with %v", err)
		}
	}
	if workers, err := client.Workers(ctx); err != nil || len(workers) != 0 {
		t.Errorf("after the workers stopped: %d workers, %v; want them deregistered", len(workers), err)
	}
}

// TestAuthDefault sets environment variables, so it cannot run in
// parallel: keys are required with DATABASE_URL, not with the development
// Postgres, unless LIGHTBUS_AUTH says otherwise.
func TestAuthDefault(t *testing.T) {
	for _, tc := range []struct {
		databaseURL, auth string
		required          bool
	}{
		{"", "", false},
		{"postgres://db.example/lightbus", "", true},
		{"postgres://db.example/lightbus", "off", false},
		{"", "required", true},
	} {
		t.Setenv("DATABASE_URL", tc.databaseURL)
		t.Setenv("LIGHTBUS_AUTH", tc.auth)
		cfg, err := loadConfig()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.authRequired() != tc.required {
			t.Errorf("DATABASE_URL=%q LIGHTBUS_AUTH=%q: required %v, want %v", tc.databaseURL, tc.auth, cfg.authRequired(), tc.required)
		}
	}
	t.Setenv("LIGHTBUS_AUTH", "maybe")
	if _, err := loadConfig(); err == nil || !strings.Contains(err.Error(), "LIGHTBUS_AUTH") {
		t.Errorf("LIGHTBUS_AUTH=maybe: %v", err)
	}
}

// With authentication off the gateway says so, once, at start.
func TestAuthOffWarning(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	for _, required := range []bool{false, true} {
		var log bytes.Buffer
		cfg := testConfig()
		if required {
			withAuth(&cfg)
		}
		a, err := newApp(context.Background(), cfg, dbURL, slog.New(slog.NewTextHandler(&log, nil)))
		if err != nil {
			t.Fatal(err)
		}
		a.close(context.Background())
		n := strings.Count(log.String(), "the bus is open to anyone who can reach it")
		warnings := strings.Count(log.String(), "level=WARN")
		switch {
		case !required && (n != 1 || warnings != 1):
			t.Errorf("auth off: %d open-bus lines, %d warnings, want one:\n%s", n, warnings, log.String())
		case required && n != 0:
			t.Errorf("auth required, yet:\n%s", log.String())
		}
	}
}

// TestKeysCommand runs `gateway keys` in-process. It sets DATABASE_URL, so
// it cannot run in parallel.
func TestKeysCommand(t *testing.T) {
	dbURL := pgtest.NewURL(t)
	t.Setenv("DATABASE_URL", dbURL)
	ctx := context.Background()
	keys := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := run(ctx, append([]string{"keys"}, args...), &stdout, &stderr)
		return stdout.String(), err
	}

	out, err := keys("create", "--name", "ci", "--scope", "fire:shop.*", "--scope", "read")
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSuffix(out, "\n")
	if gateway.ValidateToken(token) != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("keys create printed %q, want the token alone", out)
	}
	out, err = keys("list")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^NAME +SCOPES +CREATED +REVOKED\nci +fire:shop\.\* read +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ +-\n$`).MatchString(out) ||
		strings.Contains(out, token) {
		t.Errorf("keys list:\n%s", out)
	}
	out, err = keys("create", "--name", "ci2", "--scope", "read", "--json")
	var created gateway.CreatedKey
	if err != nil || json.Unmarshal([]byte(out), &created) != nil || created.Name != "ci2" || gateway.ValidateToken(created.Token) != nil {
		t.Fatalf("keys create --json = %q, %v", out, err)
	}
	out, err = keys("list", "--json")
	var listed struct{ Keys []gateway.APIKey }
	if err != nil || json.Unmarshal([]byte(out), &listed) != nil || len(listed.Keys) != 2 || listed.Keys[0].Name != "ci" ||
		strings.Contains(out, token) {
		t.Fatalf("keys list --json = %q, %v", out, err)
	}
	if out, err := keys("revoke", "--json", "ci2"); err != nil || out != "{\n  \"revoked\": \"ci2\"\n}\n" {
		t.Fatalf("keys revoke --json = %q, %v", out, err)
	}
	for _, args := range [][]string{
		{},
		{"rotate"},
		{"create", "--name", "x"},
		{"create", "--scope", "read"},
		{"create", "--name", "x", "--scope", "fire:"},
		{"create", "--name", "ci", "--scope", "read"}, // taken
		{"revoke"},
		{"revoke", "nobody"},
		{"list", "extra"},
	} {
		if _, err := keys(args...); err == nil {
			t.Errorf("keys %q: want an error", args)
		}
	}

	// The key works against a gateway on the database, until revoked.
	gw := startGatewayOn(t, dbURL, func(c *Config) { c.Auth = authRequired })
	if resp := gw.do(t, "GET", "/v1/events", "", bearer(token), nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("the key made by keys create: %d", resp.StatusCode)
	}
	if out, err := keys("revoke", "ci"); err != nil || out != "revoked ci\n" {
		t.Fatalf("keys revoke = %q, %v", out, err)
	}
	testwait.For(t, time.Second, "the gateway to refuse the revoked key", func() bool {
		return gw.do(t, "GET", "/v1/events", "", bearer(token), nil).StatusCode == http.StatusUnauthorized
	})
	out, err = keys("list")
	if err != nil || strings.Count(out, "\n") != 3 || strings.Contains(out, "Z  -\n") {
		t.Errorf("keys list after revoking:\n%s (%v)", out, err)
	}
}

// TestAuthBench drives a gateway that requires keys with the load tool:
// with --token its fires, calls and its worker's registration pass;
// without, it stops at the registration.
func TestAuthBench(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, withAuth)
	token := createKey(t, gw, "bench", "fire:*", "call:*", "serve:*", "listen:*")
	ctx := context.Background()
	load := bench.Load{Concurrency: 4, Requests: 50, Duration: time.Minute}

	for _, scenario := range []string{bench.ScenarioFire, bench.ScenarioRPC} {
		r, err := bench.Run(ctx, scenario, bench.Options{URL: gw.URL, Token: token, Load: load, Groups: []int{1}})
		if err != nil {
			t.Fatalf("%s with a key: %v", scenario, err)
		}
		for _, res := range r.Results {
			if res.Summary.Errors != 0 {
				t.Errorf("%s %s: %d errors: %s", scenario, res.Name, res.Summary.Errors, res.Summary.FirstError)
			}
		}
	}
	_, err := bench.Run(ctx, bench.ScenarioFire, bench.Options{URL: gw.URL, Load: load, Groups: []int{1}})
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("fire without a key: %v, want the registration refused with 401", err)
	}
}

// The development bootstrap token of docker-compose.yml is one the
// gateway accepts, and only a default: the environment overrides it.
func TestComposeBootstrapToken(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`LIGHTBUS_BOOTSTRAP_TOKEN: \$\{LIGHTBUS_BOOTSTRAP_TOKEN:-(lb_[^}]*)\}`).FindSubmatch(data)
	if m == nil {
		t.Fatal("docker-compose.yml does not take LIGHTBUS_BOOTSTRAP_TOKEN from the environment with a default")
	}
	if err := gateway.ValidateToken(string(m[1])); err != nil {
		t.Errorf("the default bootstrap token %q: %v", m[1], err)
	}
}
