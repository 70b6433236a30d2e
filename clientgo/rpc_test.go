package lightbus

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/internal/webhook"
)

// grantRPCKey gives bus the RPC signing key, as a registration would.
func grantRPCKey(bus *Bus, key []byte) {
	bus.mu.Lock()
	defer bus.mu.Unlock()
	bus.rpcKey = key
}

// signRPCRequest signs req, an RPC request with body, as the gateway does:
// webhook-id "{api}/{method}/{request id}", signed at at with each of keys.
func signRPCRequest(req *http.Request, body string, at time.Time, keys ...[]byte) {
	id := strings.TrimPrefix(req.URL.Path, "/lightbus/rpc/") + "/req-1"
	ts := strconv.FormatInt(at.Unix(), 10)
	req.Header.Set("webhook-id", id)
	req.Header.Set("webhook-timestamp", ts)
	req.Header.Set("webhook-signature", webhook.SignAll(keys, id, ts, []byte(body)))
}

// postRPC sends one RPC request to bus's endpoints as the gateway does,
// signed with testKey (which bus is granted); header is set last.
func postRPC(t *testing.T, bus *Bus, path, body string, header map[string]string) (*httptest.ResponseRecorder, problemDoc) {
	t.Helper()
	grantRPCKey(bus, testKey)
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Lightbus-Request-Id", "req-1")
	signRPCRequest(req, body, time.Now(), testKey)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	bus.Handler().ServeHTTP(rec, req)
	var p problemDoc
	if rec.Code != 200 {
		if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s answered %d with Content-Type %q", path, rec.Code, ct)
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatalf("%s answered %d with %s", path, rec.Code, rec.Body)
		}
		if p.Status != rec.Code || p.Type != problemTypePrefix+p.Code || p.Title == "" {
			t.Errorf("problem %+v does not match status %d", p, rec.Code)
		}
	}
	return rec, p
}

type checkPasswordParams struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

var checkPassword = NewRPC[checkPasswordParams, bool]("auth", "check_password")

func TestHandleRPC(t *testing.T) {
	t.Parallel()

	setup := func(t *testing.T) *Bus {
		bus := newTestBus(t, "http://127.0.0.1:1", WithService("auth"))
		checkPassword.Handle(bus, func(ctx context.Context, p checkPasswordParams) (bool, error) {
			switch p.Username {
			case "error":
				return false, errors.New("database unreachable")
			case "typed":
				return false, NewError("InvalidPassword", "password too short")
			case "wrapped":
				return false, fmt.Errorf("opening users: %w", &fs.PathError{Op: "open", Path: "users.db", Err: os.ErrNotExist})
			case "invalid":
				return false, fmt.Errorf("%w: username %q is reserved", ErrInvalidParams, p.Username)
			case "taken":
				return false, fmt.Errorf("%w: %w", ErrInvalidParams, NewError("UsernameTaken", "taken"))
			case "panic":
				panic("boom")
			case "deadline":
				dl, ok := ctx.Deadline()
				return ok && dl.Equal(time.Date(2030, 1, 2, 3, 4, 5, 600000000, time.UTC)), nil
			}
			return p.Username == "admin" && p.Password == "secret", nil
		})
		bus.Handle("auth.raw", func(ctx context.Context, params json.RawMessage) (any, error) {
			return params, nil
		})
		bus.Handle("auth.unencodable", func(ctx context.Context, params json.RawMessage) (any, error) {
			return func() {}, nil
		})
		return bus
	}

	t.Run("Result", func(t *testing.T) {
		t.Parallel()
		bus := setup(t)
		rec, _ := postRPC(t, bus, "/lightbus/rpc/auth/check_password", `{"username":"admin","password":"secret"}`, nil)
		if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"result":true}` || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("answer = %d %s", rec.Code, rec.Body)
		}
		rec, _ = postRPC(t, bus, "/lightbus/rpc/auth/raw", ` {"a": [1, 2]} `, nil)
		if rec.Code != 200 || rec.Body.String() != `{"result":{"a":[1,2]}}` {
			t.Errorf("raw answer = %d %s", rec.Code, rec.Body)
		}
	})

	t.Run("RemoteErrors", func(t *testing.T) {
		t.Parallel()
		bus := setup(t)
		for _, tc := range []struct{ user, errorType, message string }{
			{"error", "error", "database unreachable"},
			{"typed", "InvalidPassword", "password too short"},
			{"wrapped", "PathError", "opening users: open users.db: file does not exist"},
			{"panic", "panic", "panic: boom"},
		} {
			rec, p := postRPC(t, bus, "/lightbus/rpc/auth/check_password", `{"username":"`+tc.user+`"}`, nil)
			if rec.Code != 500 || p.Code != CodeRemoteError || p.ErrorType != tc.errorType || p.Message != tc.message {
				t.Errorf("%s: answer = %d %+v, want remote_error %s: %s", tc.user, rec.Code, p, tc.errorType, tc.message)
			}
		}
		rec, p := postRPC(t, bus, "/lightbus/rpc/auth/unencodable", `{}`, nil)
		if rec.Code != 500 || p.Code != CodeRemoteError || p.ErrorType != "UnsupportedTypeError" {
			t.Errorf("unencodable result: answer = %d %+v", rec.Code, p)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		bus := setup(t)
		for _, tc := range []struct{ path, body string }{
			{"/lightbus/rpc/auth/check_password", `[1]`},                    // not an object
			{"/lightbus/rpc/auth/check_password", `{"username":`},           // not JSON
			{"/lightbus/rpc/auth/check_password", `{"username": 42}`},       // does not decode into the type
			{"/lightbus/rpc/auth/check_password", `{"username":"invalid"}`}, // handler says so
			{"/lightbus/rpc/auth/raw", ``},
		} {
			rec, p := postRPC(t, bus, tc.path, tc.body, nil)
			if rec.Code != 400 || p.Code != CodeInvalid {
				t.Errorf("%s %s: answer = %d %+v, want 400 invalid", tc.path, tc.body, rec.Code, p)
			}
		}
		// A handler's refusal keeps its error's type and message.
		for _, tc := range []struct{ user, errorType, message string }{
			{"invalid", "InvalidParams", `invalid parameters: username "invalid" is reserved`},
			{"taken", "UsernameTaken", "invalid parameters: taken"},
		} {
			rec, p := postRPC(t, bus, "/lightbus/rpc/auth/check_password", `{"username":"`+tc.user+`"}`, nil)
			if rec.Code != 400 || p.Code != CodeInvalid || p.ErrorType != tc.errorType || p.Message != tc.message {
				t.Errorf("%s: answer = %d %+v, want invalid %s: %s", tc.user, rec.Code, p, tc.errorType, tc.message)
			}
		}
		rec, p := postRPC(t, bus, "/lightbus/rpc/auth/check_password", `{}`, map[string]string{"Lightbus-Deadline": "tomorrow"})
		if rec.Code != 400 || p.Code != CodeInvalid {
			t.Errorf("bad deadline: answer = %d %+v", rec.Code, p)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		t.Parallel()
		bus := setup(t)
		rec, p := postRPC(t, bus, "/lightbus/rpc/auth/delete_everything", `{}`, nil)
		if rec.Code != 404 || p.Code != CodeNotFound || !strings.Contains(p.Detail, "auth.delete_everything") {
			t.Errorf("answer = %d %+v, want 404 not_found", rec.Code, p)
		}
	})

	t.Run("Deadline", func(t *testing.T) {
		t.Parallel()
		bus := setup(t)
		rec, _ := postRPC(t, bus, "/lightbus/rpc/auth/check_password", `{"username":"deadline"}`,
			map[string]string{"Lightbus-Deadline": "2030-01-02T03:04:05.6Z"})
		if rec.Code != 200 || rec.Body.String() != `{"result":true}` {
			t.Errorf("the handler's context does not end at Lightbus-Deadline: %d %s", rec.Code, rec.Body)
		}
	})
}

// TestRPCSignature: the worker runs only RPCs the gateway signed for that
// procedure with the worker's secret, recently; it names itself on every
// answer.
func TestRPCSignature(t *testing.T) {
	t.Parallel()
	bus := newTestBus(t, "http://127.0.0.1:1", WithService("auth"))
	var ran int
	var mu sync.Mutex
	bus.Handle("auth.ping", func(ctx context.Context, params json.RawMessage) (any, error) {
		mu.Lock()
		defer mu.Unlock()
		ran++
		return "pong", nil
	})
	bus.Handle("auth.delete_everything", func(ctx context.Context, params json.RawMessage) (any, error) {
		mu.Lock()
		defer mu.Unlock()
		ran++
		return "deleted", nil
	})
	grantRPCKey(bus, testKey)
	other := []byte("some other key that is 32 bytes.")
	send := func(path string, prepare func(*http.Request)) (*httptest.ResponseRecorder, problemDoc) {
		t.Helper()
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, path, strings.NewReader(`{}`))
		req.Header.Set("Lightbus-Request-Id", "req-1")
		prepare(req)
		rec := httptest.NewRecorder()
		bus.Handler().ServeHTTP(rec, req)
		if got := rec.Header().Get("Lightbus-Worker-Id"); got != bus.WorkerID() {
			t.Errorf("%s answered %d naming worker %q, want %q", path, rec.Code, got, bus.WorkerID())
		}
		var p problemDoc
		if rec.Code != 200 {
			_ = json.Unmarshal(rec.Body.Bytes(), &p)
		}
		return rec, p
	}

	for name, prepare := range map[string]func(*http.Request){
		"unsigned": func(req *http.Request) {},
		"forged":   func(req *http.Request) { signRPCRequest(req, `{}`, time.Now(), other) },
		"stale": func(req *http.Request) {
			signRPCRequest(req, `{}`, time.Now().Add(-webhook.DefaultTolerance-time.Minute), testKey)
		},
		"future": func(req *http.Request) {
			signRPCRequest(req, `{}`, time.Now().Add(webhook.DefaultTolerance+time.Minute), testKey)
		},
		"other body": func(req *http.Request) {
			signRPCRequest(req, `{"a":1}`, time.Now(), testKey)
		},
		"another procedure's signature": func(req *http.Request) {
			// A request signed for auth.ping, replayed to auth.delete_everything.
			ts := strconv.FormatInt(time.Now().Unix(), 10)
			req.Header.Set("webhook-id", "auth/ping/req-1")
			req.Header.Set("webhook-timestamp", ts)
			req.Header.Set("webhook-signature", webhook.Sign(testKey, "auth/ping/req-1", ts, []byte(`{}`)))
		},
	} {
		rec, p := send("/lightbus/rpc/auth/delete_everything", prepare)
		if rec.Code != 401 || p.Code != CodeUnauthorized || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: answer = %d %s, want 401 unauthorized", name, rec.Code, rec.Body)
		}
	}
	// An unsigned request learns nothing, not even which RPCs exist.
	if rec, p := send("/lightbus/rpc/auth/nothing_here", func(*http.Request) {}); rec.Code != 401 || p.Code != CodeUnauthorized {
		t.Errorf("unsigned call of an unknown rpc: answer = %d %+v, want 401", rec.Code, p)
	}
	if ran != 0 {
		t.Fatalf("%d rejected requests ran their handler", ran)
	}

	// During a rotation the gateway signs with the new and the previous
	// secret: a worker holding either accepts.
	rec, _ := send("/lightbus/rpc/auth/ping", func(req *http.Request) { signRPCRequest(req, `{}`, time.Now(), other, testKey) })
	if rec.Code != 200 || rec.Body.String() != `{"result":"pong"}` {
		t.Errorf("signed with another key and the worker's: answer = %d %s", rec.Code, rec.Body)
	}
	rec, _ = send("/lightbus/rpc/auth/ping", func(req *http.Request) {
		signRPCRequest(req, `{}`, time.Now().Add(-webhook.DefaultTolerance+time.Minute), testKey)
	})
	if rec.Code != 200 {
		t.Errorf("signed within the tolerance: answer = %d %s", rec.Code, rec.Body)
	}
	if rec, p := send("/lightbus/rpc/auth/nothing_here", func(req *http.Request) { signRPCRequest(req, `{}`, time.Now(), testKey) }); rec.Code != 404 || p.Code != CodeNotFound {
		t.Errorf("signed call of an unknown rpc: answer = %d %+v, want 404", rec.Code, p)
	}
}

// TestRPCBeforeRegistration: an RPC that arrives before the worker has its
// key waits for the registration answer briefly, then gets 503.
func TestRPCBeforeRegistration(t *testing.T) {
	t.Parallel()
	bus := newTestBus(t, "http://127.0.0.1:1", WithService("auth"))
	bus.Handle("auth.ping", func(ctx context.Context, params json.RawMessage) (any, error) { return "pong", nil })
	newRequest := func(ctx context.Context) *http.Request {
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/lightbus/rpc/auth/ping", strings.NewReader(`{}`))
		signRPCRequest(req, `{}`, time.Now(), testKey)
		return req
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	rec := httptest.NewRecorder()
	bus.Handler().ServeHTTP(rec, newRequest(ctx))
	if rec.Code != 503 || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("an RPC before any registration: answer = %d %s", rec.Code, rec.Body)
	}
	done := make(chan *httptest.ResponseRecorder)
	go func() {
		rec := httptest.NewRecorder()
		bus.Handler().ServeHTTP(rec, newRequest(t.Context()))
		done <- rec
	}()
	time.Sleep(20 * time.Millisecond)
	bus.mu.Lock()
	bus.setRPCKey("whsec_" + base64.StdEncoding.EncodeToString(testKey))
	bus.mu.Unlock()
	granted := time.Now()
	if rec := <-done; rec.Code != 200 {
		t.Fatalf("an RPC that raced the registration answer: %d %s", rec.Code, rec.Body)
	}
	if d := time.Since(granted); d > rpcKeyWait/2 {
		t.Fatalf("the waiting RPC ran %s after the key came, want at once", d)
	}
}

func TestHandlePanicsOnMistakes(t *testing.T) {
	t.Parallel()
	bus := newTestBus(t, "http://127.0.0.1:1")
	h := func(ctx context.Context, params json.RawMessage) (any, error) { return nil, nil }
	bus.Handle("auth.check_password", h)
	for name, fn := range map[string]func(){
		"duplicate":   func() { bus.Handle("auth.check_password", h) },
		"unqualified": func() { bus.Handle("check_password", h) },
		"bad name":    func() { bus.Handle("auth.check-password", h) },
		"nil handler": func() { bus.Handle("auth.other", nil) },
		"bad event":   func() { bus.DeclareEvent("auth.*") },
		"bad handle":  func() { NewRPC[int, int]("auth", "") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn()
		}()
	}
}

func TestErrorType(t *testing.T) {
	t.Parallel()
	type custom struct{ error }
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errors.New("x"), "error"},
		{fmt.Errorf("x: %w", errors.New("y")), "error"},
		{NewError("InvalidPassword", "x"), "InvalidPassword"},
		{fmt.Errorf("x: %w", NewError("InvalidPassword", "x")), "InvalidPassword"},
		{&fs.PathError{Op: "open", Path: "x", Err: os.ErrNotExist}, "PathError"},
		{&json.UnsupportedTypeError{}, "UnsupportedTypeError"},
		{context.DeadlineExceeded, "Timeout"},
		{fmt.Errorf("x: %w", context.Canceled), "Canceled"},
		{custom{errors.New("x")}, "error"},
		{fmt.Errorf("x: %w", &url.Error{Op: "Post", URL: "u", Err: errors.New("y")}), "url.Error"},
		{fmt.Errorf("x: %w", &Error{Status: 503, Code: CodeNoWorker}), "NoWorker"},
		{fmt.Errorf("x: %w", &Error{Status: 500, Code: CodeRemoteError, ErrorType: "InvalidPassword"}), "InvalidPassword"},
		{&TransportError{Err: errors.New("refused")}, "Unavailable"},
		{&TransportError{Timeout: true, Err: errors.New("slow")}, "Timeout"},
		{errors.Join(errors.New("x"), NewError("UserExists", "y")), "UserExists"},
	} {
		if got := errorType(tc.err); got != tc.want {
			t.Errorf("errorType(%T) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
