package lightbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// postRPC sends one RPC request to bus's endpoints as the gateway does.
func postRPC(t *testing.T, bus *Bus, path, body string, header map[string]string) (*httptest.ResponseRecorder, problemDoc) {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Lightbus-Request-Id", "req-1")
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
		{context.DeadlineExceeded, "error"},
		{custom{errors.New("x")}, "error"},
	} {
		if got := errorType(tc.err); got != tc.want {
			t.Errorf("errorType(%T) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
