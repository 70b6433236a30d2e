package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeGateway answers the gateway routes the client commands use with
// canned documents, and records the requests it got.
type fakeGateway struct {
	mu       sync.Mutex
	requests []*recordedRequest
}

type recordedRequest struct {
	Method, Path, Query string
	Header              http.Header
	Body                string
}

func (g *fakeGateway) last() *recordedRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.requests) == 0 {
		return nil
	}
	return g.requests[len(g.requests)-1]
}

const (
	fakeSchemas = `{"schemas": [
		{"api": "auth", "version": 2, "hash": "aa", "service": "auth", "worker_id": "auth-1", "created_at": "2026-11-25T10:00:00Z",
		 "schema": {"api":"auth","events":{"user_registered":{"params_schema":{"type":"object"}}},"rpcs":{}}},
		{"api": "customers", "version": 1, "hash": "bb", "service": "customers", "created_at": "2026-11-25T10:00:00Z",
		 "schema": {"api":"customers","events":{"new_customer":{}},"rpcs":{}}}]}`
	fakeEventID = "01936f6e-8a2b-7c3d-9e4f-5a6b7c8d9e0f"
	fakeWorkers = `{"workers": [{"id": "auth-1", "service": "auth", "base_url": "http://127.0.0.1:40123",
		"apis": ["auth"], "listeners": ["create_user"], "registered_at": "2026-11-25T10:00:00.5Z",
		"heartbeat_at": "2026-11-25T10:00:05Z", "expires_at": "2026-11-25T10:00:20Z"}]}`
	fakeEvents = `{"events": [{"id": "` + fakeEventID + `", "api": "customers", "event": "new_customer",
		"params": {"name": "Sally"}, "created_at": "2026-11-25T10:00:00.123456Z"}], "next_cursor": "` + fakeEventID + `"}`
	fakeEvent = `{"id": "` + fakeEventID + `", "api": "customers", "event": "new_customer",
		"params": {"name": "Sally"}, "created_at": "2026-11-25T10:00:00.123456Z",
		"deliveries": [{"id": 17, "service": "auth", "listener": "create_user", "state": "retryable", "attempt": 2,
			"max_attempts": 25, "scheduled_at": "2026-11-25T10:01:00Z", "attempted_at": "2026-11-25T10:00:30Z",
			"errors": [{"attempt": 1, "at": "2026-11-25T10:00:01Z", "error": "listener answered 500"},
				{"attempt": 2, "at": "2026-11-25T10:00:31Z", "error": "listener answered 503"}]}]}`
)

const fakeDead = `{"id": 42, "event_id": "` + fakeEventID + `", "api": "customers", "event": "new_customer",
	"service": "support.case", "listener": "notify", "state": "dead", "attempt": 2, "max_attempts": 2,
	"scheduled_at": "2026-11-25T10:01:00Z", "finalized_at": "2026-11-25T10:01:01Z",
	"errors": [{"attempt": 1, "at": "2026-11-25T10:00:01Z", "error": "deliver to http://x: connection refused"},
		{"attempt": 2, "at": "2026-11-25T10:01:01Z", "error": "listener answered 500: boom", "status": 500}]}`

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	g.mu.Lock()
	g.requests = append(g.requests, &recordedRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(body)})
	g.mu.Unlock()

	answer := func(status int, doc string) {
		ct := "application/json"
		if status >= 400 {
			ct = "application/problem+json"
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(status)
		io.WriteString(w, doc)
	}
	switch {
	case r.Header.Get("Authorization") == "Bearer lb_revoked":
		w.Header().Set("WWW-Authenticate", `Bearer realm="lightbus"`)
		answer(http.StatusUnauthorized, `{"type": "urn:lightbus:problem:unauthorized", "title": "Unauthorized", "status": 401,
			"code": "unauthorized", "detail": "the API key is unknown or revoked"}`)
	case r.Header.Get("Authorization") == "Bearer lb_reader" && r.Method != http.MethodGet:
		answer(http.StatusForbidden, `{"type": "urn:lightbus:problem:forbidden", "title": "Forbidden", "status": 403,
			"code": "forbidden", "detail": "this key lacks the scope fire:auth"}`)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/events/auth/user_registered":
		answer(http.StatusAccepted, `{"id": "`+fakeEventID+`", "api": "auth", "event": "user_registered",
			"created_at": "2026-11-25T10:00:00.123456Z", "deliveries": 2}`)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/events/auth/bad":
		answer(http.StatusUnprocessableEntity, `{"type": "urn:lightbus:problem:validation", "title": "Invalid parameters",
			"status": 422, "code": "validation", "detail": "the parameters do not match the schema",
			"errors": [{"pointer": "/email", "message": "missing property"}]}`)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/rpc/auth/check_password":
		if strings.Contains(string(body), "wrong") {
			answer(http.StatusInternalServerError, `{"type": "urn:lightbus:problem:remote_error", "title": "Remote error",
				"status": 500, "code": "remote_error", "error_type": "InvalidPassword", "message": "password too short"}`)
			return
		}
		answer(http.StatusOK, `{"result": {"valid": true, "user": "admin"}}`)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/version":
		answer(http.StatusOK, `{"version": "v1.4.0", "revision": "9f2c1e4b", "go": "go1.26.8"}`)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/schema":
		answer(http.StatusOK, fakeSchemas)
	case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/v1/schema/"):
		answer(http.StatusCreated, `{"api": "`+strings.TrimPrefix(r.URL.Path, "/v1/schema/")+`", "version": 4, "hash": "ab",
			"service": "", "created_at": "2026-11-25T10:00:00Z", "schema": `+string(body)+`}`)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/workers":
		answer(http.StatusOK, fakeWorkers)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/tasks":
		answer(http.StatusOK, `{"tasks": [{"service": "auth", "name": "count_users", "kind": "every", "spec": "1m0s",
			"leader_id": "auth-1", "last_tick": "2026-11-25T10:00:00Z", "last_run_at": "2026-11-25T10:00:00.2Z",
			"last_duration_ms": 12, "last_error": "store down", "last_worker_id": "auth-1", "runs": 9, "failures": 1},
			{"service": "auth", "name": "nightly", "kind": "cron", "spec": "CRON_TZ=UTC 0 3 * * *", "runs": 0, "failures": 0}]}`)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/events":
		answer(http.StatusOK, fakeEvents)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/events/"+fakeEventID:
		answer(http.StatusOK, fakeEvent)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/listeners/support.case/notify/dead":
		answer(http.StatusOK, `{"deliveries": [`+fakeDead+`], "next_cursor": "42"}`)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/listeners":
		answer(http.StatusOK, `{"listeners": [{"service": "auth", "name": "create_user", "events": ["customers.new_customer"],
			"endpoints": 2, "policy": {"max_attempts": 25}, "pending": 3, "in_flight": 1, "dead": 4,
			"oldest_undelivered": "2026-11-25T10:00:00Z", "lag_ms": 61500,
			"replay": {"id": 3, "service": "auth", "listener": "create_user", "until": "2026-11-25T10:00:00Z",
				"redeliver": true, "queued": 500, "state": "running", "created_at": "2026-11-25T10:00:00Z"}},
			{"service": "mail", "name": "welcome", "events": ["auth.*"], "endpoints": 0, "policy": {"max_attempts": 5, "ordered": true},
			"pending": 0, "in_flight": 0, "dead": 0, "lag_ms": 0}]}`)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/deliveries/42":
		answer(http.StatusOK, fakeDead)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/deliveries/42/redrive":
		answer(http.StatusOK, strings.Replace(fakeDead, `"dead"`, `"pending"`, 1))
	case r.Method == http.MethodPost && r.URL.Path == "/v1/listeners/support.case/notify/replay":
		answer(http.StatusAccepted, `{"id": 3, "service": "support.case", "listener": "notify", "until": "2026-11-25T10:00:00Z",
			"redeliver": true, "queued": 0, "state": "running", "created_at": "2026-11-25T10:00:00Z"}`)
	case r.Method == http.MethodDelete && r.URL.Path == "/v1/listeners/support.case/notify":
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPost && (r.URL.Path == "/v1/listeners/support.case/notify/redrive" || r.URL.Path == "/v1/listeners/auth/create_user/redrive"):
		answer(http.StatusOK, `{"redriven": 7}`)
	default:
		answer(http.StatusNotFound, `{"type": "urn:lightbus:problem:not_found", "title": "Not found", "status": 404,
			"code": "not_found", "detail": "no such event"}`)
	}
}

// gatewayBundle is a command line pointed at a fake gateway.
func gatewayBundle(t *testing.T) (*testBundle, *fakeGateway) {
	t.Helper()
	g := &fakeGateway{}
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	tb := newTestBundle(t, t.TempDir())
	tb.env["LIGHTBUS_URL"] = srv.URL
	return tb, g
}

func TestFire(t *testing.T) {
	t.Parallel()

	t.Run("Table", func(t *testing.T) {
		t.Parallel()

		tb, g := gatewayBundle(t)
		if err := tb.execute(t, "fire", "auth.user_registered", `{"user": "sally"}`); err != nil {
			t.Fatal(err)
		}
		req := g.last()
		if req.Body != `{"user": "sally"}` {
			t.Errorf("body = %q", req.Body)
		}
		if req.Header.Get("Idempotency-Key") == "" {
			t.Error("no Idempotency-Key")
		}
		want := "ID          " + fakeEventID + "\nEVENT       auth.user_registered\nCREATED     2026-11-25T10:00:00Z\nDELIVERIES  2\n"
		if got := tb.stdout.String(); got != want {
			t.Errorf("stdout:\n%s\nwant:\n%s", got, want)
		}
	})

	t.Run("JSONFromStdin", func(t *testing.T) {
		t.Parallel()

		tb, g := gatewayBundle(t)
		tb.cli.stdin = strings.NewReader(`{"user": "bob"}` + "\n")
		if err := tb.execute(t, "--json", "fire", "auth.user_registered", "-", "--idempotency-key", "k1"); err != nil {
			t.Fatal(err)
		}
		req := g.last()
		if req.Body != `{"user": "bob"}` || req.Header.Get("Idempotency-Key") != "k1" {
			t.Errorf("body %q, key %q", req.Body, req.Header.Get("Idempotency-Key"))
		}
		var res map[string]any
		if err := json.Unmarshal([]byte(tb.stdout.String()), &res); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, tb.stdout.String())
		}
		if res["id"] != fakeEventID || res["deliveries"] != 2.0 {
			t.Errorf("result = %v", res)
		}
	})

	t.Run("NoParams", func(t *testing.T) {
		t.Parallel()

		tb, g := gatewayBundle(t)
		if err := tb.execute(t, "fire", "auth.user_registered"); err != nil {
			t.Fatal(err)
		}
		if body := g.last().Body; body != "{}" {
			t.Errorf("body = %q, want {}", body)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		t.Parallel()

		tb, g := gatewayBundle(t)
		for _, tt := range []struct {
			args []string
			want string
		}{
			{[]string{"fire", "auth.bad", "{}"}, "fire auth.bad: validation (422): the parameters do not match the schema [/email: missing property]"},
			{[]string{"fire", "auth.user_registered", "{nope"}, "the parameters are not valid JSON: {nope"},
			{[]string{"fire", "auth.user_registered", "[1]"}, "must be a JSON object"},
			{[]string{"fire", "noevent", "{}"}, `fire: invalid event name "noevent"`},
			{[]string{"fire"}, "accepts between 1 and 2 arg(s), received 0"},
		} {
			err := tb.execute(t, tt.args...)
			if err == nil || !strings.Contains(errorLine(err), tt.want) {
				t.Errorf("%q: error %v, want it to contain %q", tt.args, err, tt.want)
			}
		}
		if g.last() == nil || g.last().Path != "/v1/events/auth/bad" {
			t.Errorf("bad parameters reached the gateway: %+v", g.last())
		}
	})
}

func TestCall(t *testing.T) {
	t.Parallel()

	t.Run("Result", func(t *testing.T) {
		t.Parallel()

		tb, g := gatewayBundle(t)
		if err := tb.execute(t, "call", "auth.check_password", `{"user": "admin", "password": "secret"}`, "--timeout", "2s"); err != nil {
			t.Fatal(err)
		}
		if got := g.last().Header.Get("Lightbus-Timeout"); got != "2s" {
			t.Errorf("Lightbus-Timeout = %q, want 2s", got)
		}
		want := "{\n  \"valid\": true,\n  \"user\": \"admin\"\n}\n"
		if got := tb.stdout.String(); got != want {
			t.Errorf("stdout = %q, want %q", got, want)
		}
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()

		tb, g := gatewayBundle(t)
		if err := tb.execute(t, "call", "--json", "auth.check_password"); err != nil {
			t.Fatal(err)
		}
		if got := g.last().Header.Get("Lightbus-Timeout"); got != "" {
			t.Errorf("Lightbus-Timeout = %q without --timeout", got)
		}
		var res struct{ Result map[string]any }
		if err := json.Unmarshal([]byte(tb.stdout.String()), &res); err != nil || res.Result["valid"] != true {
			t.Errorf("stdout %q (%v), want {\"result\": {...}}", tb.stdout.String(), err)
		}
	})

	t.Run("RemoteError", func(t *testing.T) {
		t.Parallel()

		tb, _ := gatewayBundle(t)
		err := tb.execute(t, "call", "auth.check_password", `{"password": "wrong"}`)
		want := "call auth.check_password: remote_error (500): InvalidPassword: password too short"
		if err == nil || errorLine(err) != want {
			t.Errorf("error line %q, want %q", errorLine(err), want)
		}
	})
}

func TestWorkers(t *testing.T) {
	t.Parallel()

	tb, g := gatewayBundle(t)
	if err := tb.execute(t, "workers"); err != nil {
		t.Fatal(err)
	}
	if req := g.last(); req.Method != http.MethodGet || req.Path != "/v1/tasks" {
		t.Errorf("request %s %s", req.Method, req.Path)
	}
	want := "ID      SERVICE  BASE URL                APIS  LISTENERS    EXPIRES\n" +
		"auth-1  auth     http://127.0.0.1:40123  auth  create_user  2026-11-25T10:00:20Z\n" +
		"\n" +
		"SERVICE  TASK         SCHEDULE                    LEADER  LAST RUN              TOOK  RUNS  FAILED  LAST ERROR\n" +
		"auth     count_users  every 1m0s                  auth-1  2026-11-25T10:00:00Z  12ms  9     1       store down\n" +
		"auth     nightly      cron CRON_TZ=UTC 0 3 * * *  -       -                     -     0     0       -\n"
	if got := tb.stdout.String(); got != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", got, want)
	}

	tb2, _ := gatewayBundle(t)
	if err := tb2.execute(t, "workers", "--json"); err != nil {
		t.Fatal(err)
	}
	var res struct {
		Workers []struct {
			ID      string `json:"id"`
			BaseURL string `json:"base_url"`
		}
	}
	if err := json.Unmarshal([]byte(tb2.stdout.String()), &res); err != nil || len(res.Workers) != 1 || res.Workers[0].BaseURL != "http://127.0.0.1:40123" {
		t.Errorf("stdout %q (%v)", tb2.stdout.String(), err)
	}
}

func TestEventsList(t *testing.T) {
	t.Parallel()

	tb, g := gatewayBundle(t)
	err := tb.execute(t, "events", "list", "--api", "customers", "--event", "new_customer", "--limit", "5",
		"--since", "2026-11-25T09:00:00Z", "--before", fakeEventID)
	if err != nil {
		t.Fatal(err)
	}
	q := g.last().Query
	for _, want := range []string{"api=customers", "event=new_customer", "limit=5", "since=2026-11-25T09%3A00%3A00Z", "before=" + fakeEventID} {
		if !strings.Contains(q, want) {
			t.Errorf("query %q lacks %q", q, want)
		}
	}
	want := "ID                                    CREATED               EVENT                   PARAMS\n" +
		fakeEventID + "  2026-11-25T10:00:00Z  customers.new_customer  {\"name\":\"Sally\"}\n"
	if got := tb.stdout.String(); got != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", got, want)
	}
	if got := tb.stderr.String(); got != "more: --before "+fakeEventID+"\n" {
		t.Errorf("stderr = %q, want the next cursor", got)
	}

	for _, args := range [][]string{
		{"events", "list", "--limit", "1001"},
		{"events", "list", "--since", "yesterday"},
	} {
		if err := tb.execute(t, args...); err == nil {
			t.Errorf("%q succeeded", args)
		}
	}
}

func TestEventsShow(t *testing.T) {
	t.Parallel()

	tb, _ := gatewayBundle(t)
	if err := tb.execute(t, "events", "show", fakeEventID); err != nil {
		t.Fatal(err)
	}
	out := tb.stdout.String()
	for _, want := range []string{
		"EVENT    customers.new_customer\n",
		"PARAMS\n{\n  \"name\": \"Sally\"\n}\n",
		"17        auth.create_user  retryable  2/25     2026-11-25T10:01:00Z  2026-11-25T10:00:30Z  -          listener answered 503\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}

	tb2, _ := gatewayBundle(t)
	if err := tb2.execute(t, "--json", "events", "show", fakeEventID); err != nil {
		t.Fatal(err)
	}
	var ev struct {
		ID         string
		Deliveries []struct{ State string }
	}
	if err := json.Unmarshal([]byte(tb2.stdout.String()), &ev); err != nil || ev.ID != fakeEventID || len(ev.Deliveries) != 1 || ev.Deliveries[0].State != "retryable" {
		t.Errorf("stdout %q (%v)", tb2.stdout.String(), err)
	}

	err := tb2.execute(t, "events", "show", "01936f6e-0000-7000-8000-000000000000")
	if err == nil || !strings.Contains(errorLine(err), "not_found (404): no such event") {
		t.Errorf("unknown event: %v", err)
	}
}

func TestURLFlag(t *testing.T) {
	t.Parallel()

	tb, g := gatewayBundle(t)
	url := tb.env["LIGHTBUS_URL"]
	tb.env["LIGHTBUS_URL"] = "http://127.0.0.1:1"
	if err := tb.execute(t, "workers", "--url", url); err != nil {
		t.Fatal(err)
	}
	if g.last() == nil {
		t.Error("--url did not override $LIGHTBUS_URL")
	}
	if err := tb.execute(t, "workers", "--url", "ftp://x"); err == nil {
		t.Error("a bad --url was accepted")
	}
}

// Every command sends --token, else $LIGHTBUS_TOKEN, and a 401 or 403 is
// one line that says what to do or which scope is missing.
func TestTokenFlag(t *testing.T) {
	t.Parallel()

	tb, g := gatewayBundle(t)
	if err := tb.execute(t, "workers"); err != nil {
		t.Fatal(err)
	}
	if got := g.last().Header.Values("Authorization"); got != nil {
		t.Errorf("Authorization %q without a token", got)
	}
	tb.env["LIGHTBUS_TOKEN"] = "lb_from_env"
	if err := tb.execute(t, "events", "list"); err != nil {
		t.Fatal(err)
	}
	if got := g.last().Header.Get("Authorization"); got != "Bearer lb_from_env" {
		t.Errorf("Authorization %q, want $LIGHTBUS_TOKEN's", got)
	}
	if err := tb.execute(t, "fire", "auth.user_registered", "{}", "--token", "lb_from_flag"); err != nil {
		t.Fatal(err)
	}
	if got := g.last().Header.Get("Authorization"); got != "Bearer lb_from_flag" {
		t.Errorf("Authorization %q, want --token's", got)
	}

	err := tb.execute(t, "workers", "--token", "lb_revoked")
	if err == nil {
		t.Fatal("a revoked token: want an error")
	}
	if line := errorLine(err); line != "list workers: unauthorized (401): the API key is unknown or revoked (pass an API key with --token or $LIGHTBUS_TOKEN)" {
		t.Errorf("a 401 prints %q", line)
	}
	err = tb.execute(t, "fire", "auth.user_registered", "{}", "--token", "lb_reader")
	if err == nil {
		t.Fatal("a key without the scope: want an error")
	}
	if line := errorLine(err); line != "fire auth.user_registered: forbidden (403): this key lacks the scope fire:auth" {
		t.Errorf("a 403 prints %q", line)
	}
	// The token is not shown by --help.
	tb.env["LIGHTBUS_TOKEN"] = "lb_secret"
	if err := tb.execute(t, "--help"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(tb.stdout.String(), "lb_secret") {
		t.Error("--help shows $LIGHTBUS_TOKEN")
	}
}
