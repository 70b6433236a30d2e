package lightbus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// scripted is a gateway that answers every request with one canned answer
// and records the requests.
type scripted struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []*http.Request
	bodies   []string
}

func newScripted(t *testing.T, status int, contentType, body string) *scripted {
	t.Helper()
	s := &scripted{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data := new(bytes.Buffer)
		_, _ = data.ReadFrom(r.Body)
		s.mu.Lock()
		s.requests = append(s.requests, r)
		s.bodies = append(s.bodies, data.String())
		s.mu.Unlock()
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *scripted) last(t *testing.T) (*http.Request, string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.requests) == 0 {
		t.Fatal("no request reached the gateway")
	}
	return s.requests[len(s.requests)-1], s.bodies[len(s.bodies)-1]
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.requests)
}

func TestFire(t *testing.T) {
	t.Parallel()

	t.Run("Stored", func(t *testing.T) {
		t.Parallel()
		gw := newFakeGateway(t)
		bus := newTestBus(t, gw.URL())
		res, err := bus.Fire(t.Context(), "auth.user_registered", map[string]string{"username": "sally"})
		if err != nil {
			t.Fatal(err)
		}
		if res.ID == "" || res.API != "auth" || res.Event != "user_registered" || res.CreatedAt.IsZero() || res.Deliveries != 0 {
			t.Errorf("FireResult = %+v", res)
		}
		if len(gw.events) != 1 || string(gw.events[0].Params) != `{"username":"sally"}` {
			t.Errorf("stored events = %+v", gw.events)
		}
		if len(gw.fireKeys) != 1 || gw.fireKeys[0] == "" {
			t.Errorf("Idempotency-Key = %q, want one non-empty key", gw.fireKeys)
		}
	})

	t.Run("RetriesWithTheSameIdempotencyKey", func(t *testing.T) {
		t.Parallel()
		gw := newFakeGateway(t)
		gw.abortFires, gw.failFires = 1, 1 // a lost connection, then a 503
		bus := newTestBus(t, gw.URL())
		res, err := bus.Fire(t.Context(), "auth.user_registered", nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(gw.fireKeys) != 3 {
			t.Fatalf("fire attempts = %d, want 3", len(gw.fireKeys))
		}
		if k := gw.fireKeys; k[0] == "" || k[1] != k[0] || k[2] != k[0] {
			t.Errorf("Idempotency-Key per attempt = %q, want the same key every time", k)
		}
		if len(gw.events) != 1 || gw.events[0].ID != res.ID {
			t.Errorf("stored %d events, want the one fired", len(gw.events))
		}
		if _, err := bus.Fire(t.Context(), "auth.user_registered", nil); err != nil {
			t.Fatal(err)
		}
		if gw.fireKeys[3] == gw.fireKeys[0] {
			t.Error("a second Fire reused the first one's Idempotency-Key")
		}
	})

	t.Run("IdempotencyKeyOption", func(t *testing.T) {
		t.Parallel()
		gw := newFakeGateway(t)
		bus := newTestBus(t, gw.URL())
		first, err := bus.Fire(t.Context(), "auth.user_registered", nil, IdempotencyKey("order-42"))
		if err != nil {
			t.Fatal(err)
		}
		again, err := bus.Fire(t.Context(), "auth.user_registered", nil, IdempotencyKey("order-42"))
		if err != nil {
			t.Fatal(err)
		}
		if again.ID != first.ID || gw.fireKeys[0] != "order-42" {
			t.Errorf("fires with one key stored %s and %s (keys %q)", first.ID, again.ID, gw.fireKeys)
		}
	})

	t.Run("GivesUp", func(t *testing.T) {
		t.Parallel()
		gw := newFakeGateway(t)
		gw.failFires = 100
		bus := newTestBus(t, gw.URL())
		_, err := bus.Fire(t.Context(), "auth.user_registered", nil)
		if !IsCode(err, CodeUnavailable) {
			t.Fatalf("err = %v, want unavailable", err)
		}
		if len(gw.fireKeys) != bus.fireAttempts {
			t.Errorf("attempts = %d, want %d", len(gw.fireKeys), bus.fireAttempts)
		}
	})

	t.Run("ValidationIsNotRetried", func(t *testing.T) {
		t.Parallel()
		gw := newScripted(t, 422, "application/problem+json", `{"type":"urn:lightbus:problem:validation","title":"Invalid parameters","status":422,
			"detail":"the parameters of auth.user_registered do not match its schema","code":"validation",
			"errors":[{"pointer":"/email","message":"missing property"}]}`)
		bus := newTestBus(t, gw.srv.URL)
		_, err := bus.Fire(t.Context(), "auth.user_registered", map[string]any{})
		var lerr *Error
		if !errors.As(err, &lerr) {
			t.Fatalf("err = %v, want *Error", err)
		}
		if lerr.Status != 422 || lerr.Code != CodeValidation || len(lerr.Violations) != 1 || lerr.Violations[0] != (Violation{Pointer: "/email", Message: "missing property"}) {
			t.Errorf("err = %+v", lerr)
		}
		if !strings.Contains(err.Error(), "/email: missing property") {
			t.Errorf("message %q does not show the violation", err)
		}
		if gw.count() != 1 {
			t.Errorf("attempts = %d, want 1", gw.count())
		}
	})

	t.Run("BadInput", func(t *testing.T) {
		t.Parallel()
		gw := newScripted(t, 202, "application/json", `{}`)
		bus := newTestBus(t, gw.srv.URL)
		for _, tc := range []struct {
			name   string
			params any
		}{
			{"user_registered", nil},           // not qualified
			{"auth.user-registered", nil},      // not an identifier
			{"auth.*", nil},                    // no wildcards in fires
			{"auth.user_registered", []int{1}}, // not an object
			{"auth.user_registered", json.RawMessage(`"x"`)},
		} {
			if _, err := bus.Fire(t.Context(), tc.name, tc.params); err == nil {
				t.Errorf("Fire(%q, %v) succeeded", tc.name, tc.params)
			}
		}
		if gw.count() != 0 {
			t.Errorf("%d bad fires reached the gateway", gw.count())
		}
	})
}

func TestCall(t *testing.T) {
	t.Parallel()

	t.Run("Result", func(t *testing.T) {
		t.Parallel()
		gw := newScripted(t, 200, "application/json", `{"result": {"username": "sally", "created": true}}`)
		bus := newTestBus(t, gw.srv.URL)
		var res struct {
			Username string `json:"username"`
			Created  bool   `json:"created"`
		}
		if err := bus.Call(t.Context(), "support.case.open", map[string]string{"u": "sally"}, &res); err != nil {
			t.Fatal(err)
		}
		if res.Username != "sally" || !res.Created {
			t.Errorf("result = %+v", res)
		}
		req, body := gw.last(t)
		if req.Method != "POST" || req.URL.Path != "/v1/rpc/support.case/open" || body != `{"u":"sally"}` {
			t.Errorf("request = %s %s %s", req.Method, req.URL.Path, body)
		}
		if got := req.Header.Get("Lightbus-Timeout"); got != "" {
			t.Errorf("Lightbus-Timeout = %q without any deadline", got)
		}
		if err := bus.Call(t.Context(), "auth.check_password", nil, nil); err != nil {
			t.Fatal(err)
		}
		if _, body := gw.last(t); body != "{}" {
			t.Errorf("nil params sent %s, want {}", body)
		}
	})

	t.Run("Problems", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name   string
			status int
			body   string
			check  func(t *testing.T, e *Error)
		}{
			{"RemoteError", 500, `{"type":"urn:lightbus:problem:remote_error","title":"Remote error","status":500,
				"detail":"auth.check_password failed","code":"remote_error","error_type":"InvalidPassword","message":"password too short"}`,
				func(t *testing.T, e *Error) {
					if e.Code != CodeRemoteError || e.ErrorType != "InvalidPassword" || e.Message != "password too short" {
						t.Errorf("err = %+v", e)
					}
					if want := "remote_error (500): InvalidPassword: password too short"; e.Error() != want {
						t.Errorf("Error() = %q, want %q", e.Error(), want)
					}
				}},
			{"NoWorker", 503, `{"type":"urn:lightbus:problem:no_worker","title":"No worker available","status":503,
				"detail":"no live worker provides API \"auth\"","code":"no_worker"}`,
				func(t *testing.T, e *Error) {
					if e.Code != CodeNoWorker || e.Status != 503 || e.Detail != `no live worker provides API "auth"` {
						t.Errorf("err = %+v", e)
					}
				}},
			{"Timeout", 504, `{"type":"urn:lightbus:problem:timeout","title":"Timeout","status":504,"code":"timeout"}`,
				func(t *testing.T, e *Error) {
					if e.Code != CodeTimeout || e.Status != 504 {
						t.Errorf("err = %+v", e)
					}
				}},
			{"CodeFromType", 502, `{"type":"urn:lightbus:problem:bad_gateway","title":"Bad gateway","status":502}`,
				func(t *testing.T, e *Error) {
					if e.Code != CodeBadGateway {
						t.Errorf("err = %+v", e)
					}
				}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				gw := newScripted(t, tc.status, "application/problem+json", tc.body)
				bus := newTestBus(t, gw.srv.URL)
				err := bus.Call(t.Context(), "auth.check_password", nil, nil)
				var lerr *Error
				if !errors.As(err, &lerr) {
					t.Fatalf("err = %v, want *Error", err)
				}
				tc.check(t, lerr)
				if !strings.HasPrefix(err.Error(), "lightbus: call auth.check_password: ") {
					t.Errorf("err = %q does not say what failed", err)
				}
				if gw.count() != 1 {
					t.Errorf("%d requests, want 1: calls are never retried", gw.count())
				}
			})
		}
	})

	t.Run("NotAProblem", func(t *testing.T) {
		t.Parallel()
		gw := newScripted(t, 502, "text/html", "<html>upstream down</html>")
		bus := newTestBus(t, gw.srv.URL)
		err := bus.Call(t.Context(), "auth.check_password", nil, nil)
		var lerr *Error
		if !errors.As(err, &lerr) || lerr.Status != 502 || lerr.Code != "" {
			t.Fatalf("err = %#v", err)
		}
		if !strings.Contains(err.Error(), "HTTP 502") || !strings.Contains(err.Error(), "upstream down") {
			t.Errorf("err = %q does not say what happened", err)
		}
	})

	t.Run("BadResult", func(t *testing.T) {
		t.Parallel()
		gw := newScripted(t, 200, "application/json", `{"result": "yes"}`)
		bus := newTestBus(t, gw.srv.URL)
		var ok bool
		if err := bus.Call(t.Context(), "auth.check_password", nil, &ok); err == nil || !strings.Contains(err.Error(), "decoding the result") {
			t.Errorf("err = %v, want a decoding error", err)
		}
	})

	t.Run("Unreachable", func(t *testing.T) {
		t.Parallel()
		gw := newScripted(t, 200, "", "")
		gw.srv.Close()
		bus := newTestBus(t, gw.srv.URL)
		err := bus.Call(t.Context(), "auth.check_password", nil, nil)
		var lerr *Error
		if err == nil || errors.As(err, &lerr) {
			t.Fatalf("err = %v, want a transport error", err)
		}
		if !strings.Contains(err.Error(), "auth.check_password") {
			t.Errorf("err = %q does not say what failed", err)
		}
	})

	t.Run("Timeouts", func(t *testing.T) {
		t.Parallel()
		gw := newScripted(t, 200, "application/json", `{"result": null}`)
		sent := func(t *testing.T) time.Duration {
			t.Helper()
			req, _ := gw.last(t)
			d, err := time.ParseDuration(req.Header.Get("Lightbus-Timeout"))
			if err != nil {
				t.Fatalf("Lightbus-Timeout %q: %v", req.Header.Get("Lightbus-Timeout"), err)
			}
			return d
		}
		bus := newTestBus(t, gw.srv.URL, WithCallTimeout(1500*time.Millisecond))
		if err := bus.Call(t.Context(), "auth.check_password", nil, nil); err != nil {
			t.Fatal(err)
		}
		if d := sent(t); d != 1500*time.Millisecond {
			t.Errorf("WithCallTimeout sent %s", d)
		}
		if err := bus.Call(t.Context(), "auth.check_password", nil, nil, Timeout(2*time.Second)); err != nil {
			t.Fatal(err)
		}
		if d := sent(t); d != 2*time.Second {
			t.Errorf("Timeout sent %s", d)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 700*time.Millisecond)
		defer cancel()
		if err := bus.Call(ctx, "auth.check_password", nil, nil, Timeout(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if d := sent(t); d <= 0 || d > 700*time.Millisecond {
			t.Errorf("a context deadline of 700ms sent %s", d)
		}
		expired, cancel2 := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
		defer cancel2()
		before := gw.count()
		if err := bus.Call(expired, "auth.check_password", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("expired context: err = %v", err)
		}
		if gw.count() != before {
			t.Error("a call with an expired deadline reached the gateway")
		}
	})
}

func TestInspect(t *testing.T) {
	t.Parallel()
	gw := newFakeGateway(t)
	bus := newTestBus(t, gw.URL(), WithService("auth"))
	if _, err := bus.Register(t.Context(), "http://127.0.0.1:1"); err != nil {
		t.Fatal(err)
	}
	workers, err := bus.Workers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(workers) != 1 || workers[0].ID != bus.WorkerID() || workers[0].Service != "auth" || workers[0].ExpiresAt.IsZero() {
		t.Errorf("workers = %+v", workers)
	}

	fired, err := bus.Fire(t.Context(), "auth.user_registered", map[string]string{"username": "sally"})
	if err != nil {
		t.Fatal(err)
	}
	since := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	page, err := bus.Events(t.Context(), EventQuery{API: "auth", Event: "user_registered", Since: since, Before: "0193", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 1 || page.Events[0].ID != fired.ID || string(page.Events[0].Params) != `{"username":"sally"}` {
		t.Errorf("page = %+v", page)
	}
	if want := "api=auth&before=0193&event=user_registered&limit=10&since=2026-11-25T10%3A00%3A00Z"; gw.lastQuery != want {
		t.Errorf("query = %s, want %s", gw.lastQuery, want)
	}

	ev, err := bus.Event(t.Context(), fired.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != fired.ID || len(ev.Deliveries) != 1 || ev.Deliveries[0].State != "completed" || ev.Deliveries[0].FinalizedAt.IsZero() {
		t.Errorf("event = %+v", ev)
	}
	if _, err := bus.Event(t.Context(), "01936f6e-0000-7000-8000-000000000000"); !IsCode(err, CodeNotFound) {
		t.Errorf("unknown event: err = %v, want not_found", err)
	}
}

// The token goes with every request, as a bearer token, from WithToken or
// else $LIGHTBUS_TOKEN. It sets an environment variable, so it cannot run
// in parallel.
func TestToken(t *testing.T) {
	gw := newScripted(t, http.StatusOK, "application/json", `{"workers": []}`)
	ctx := context.Background()

	t.Setenv(EnvToken, "lb_from_the_environment")
	fromEnv, err := Create(WithURL(gw.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fromEnv.Workers(ctx); err != nil {
		t.Fatal(err)
	}
	if r, _ := gw.last(t); r.Header.Get("Authorization") != "Bearer lb_from_the_environment" {
		t.Errorf("Authorization %q, want the token of $LIGHTBUS_TOKEN", r.Header.Get("Authorization"))
	}
	withOption, err := Create(WithURL(gw.srv.URL), WithToken("lb_from_the_option"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := withOption.Workers(ctx); err != nil {
		t.Fatal(err)
	}
	if r, _ := gw.last(t); r.Header.Get("Authorization") != "Bearer lb_from_the_option" {
		t.Errorf("Authorization %q, want WithToken's", r.Header.Get("Authorization"))
	}
	// The worker's registration and deregistration carry it too.
	if err := withOption.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	if r, _ := gw.last(t); r.Method != http.MethodDelete || r.Header.Get("Authorization") != "Bearer lb_from_the_option" {
		t.Errorf("%s with Authorization %q, want DELETE with the token", r.Method, r.Header.Get("Authorization"))
	}

	t.Setenv(EnvToken, "")
	none, err := Create(WithURL(gw.srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := none.Workers(ctx); err != nil {
		t.Fatal(err)
	}
	if r, _ := gw.last(t); r.Header.Values("Authorization") != nil {
		t.Errorf("Authorization %q sent without a token", r.Header.Values("Authorization"))
	}
	if _, err := Create(WithToken("lb_a b")); err == nil {
		t.Error("a token with a space: want an error")
	}
}
