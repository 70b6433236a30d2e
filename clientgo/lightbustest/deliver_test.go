package lightbustest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/clientgo/lightbustest"
)

func TestDeliver(t *testing.T) {
	t.Parallel()

	type bundle struct {
		bus    *lightbus.Bus
		mu     sync.Mutex
		seen   []lightbus.EventMessage
		starts int
	}
	setup := func(t *testing.T) *bundle {
		tb := &bundle{bus: lightbus.MustCreate(lightbus.WithService("customers"), lightbus.WithURL("http://127.0.0.1:1"))}
		// Listeners set up on start, as a service's bus package does.
		tb.bus.OnStart(func(ctx context.Context) error {
			tb.starts++
			userRegistered.Listen(tb.bus, "welcome", func(ctx context.Context, ev lightbus.EventMessage, p registeredParams) error {
				tb.mu.Lock()
				tb.seen = append(tb.seen, ev)
				tb.mu.Unlock()
				switch p.Username {
				case "":
					return fmt.Errorf("%w: no username", lightbus.ErrInvalidParams)
				case "fail":
					return errors.New("mail server down")
				}
				return nil
			})
			return nil
		})
		return tb
	}

	t.Run("Delivered", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		status := lightbustest.Deliver(t, tb.bus, "welcome", "auth.user_registered", registeredParams{Username: "sally", Email: "sally@example.com"})
		if status != http.StatusNoContent {
			t.Fatalf("status = %d, want 204", status)
		}
		ev := tb.seen[0]
		if ev.API != "auth" || ev.Event != "user_registered" || ev.ID == "" || ev.Attempt != 1 || ev.Time.IsZero() ||
			string(ev.Params) != `{"email":"sally@example.com","username":"sally"}` {
			t.Errorf("the listener saw %+v", ev)
		}
		for _, tc := range []struct {
			listener, event string
			params          any
			want            int
		}{
			{"welcome", "auth.user_registered", map[string]string{"username": ""}, http.StatusBadRequest},
			{"welcome", "auth.user_registered", map[string]string{"username": "fail"}, http.StatusInternalServerError},
			{"welcome", "auth.user_deleted", nil, http.StatusNotFound},
		} {
			if got := lightbustest.Deliver(t, tb.bus, tc.listener, tc.event, tc.params); got != tc.want {
				t.Errorf("%s %v: status = %d, want %d", tc.event, tc.params, got, tc.want)
			}
		}
		if tb.starts != 1 {
			t.Errorf("the OnStart hooks ran %d times, want once", tb.starts)
		}
	})

	t.Run("SignatureChecked", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		// The worker checks signatures: an unsigned request is refused, so
		// the 204 above is proof that Deliver signs correctly.
		lightbustest.Deliver(t, tb.bus, "welcome", "auth.user_registered", registeredParams{Username: "a", Email: "a@example.com"})
		rec := postUnsigned(t, tb.bus, lightbus.ListenerPath("welcome"), `{"username":"a","email":"a@example.com"}`)
		if rec != http.StatusUnauthorized {
			t.Errorf("unsigned delivery: status = %d, want 401", rec)
		}
	})
}

func TestInvoke(t *testing.T) {
	t.Parallel()
	errUnknownUser := lightbus.NewError("UnknownUser", "no such user")
	bus := lightbus.MustCreate(lightbus.WithService("auth"), lightbus.WithURL("http://127.0.0.1:1"))
	checkPassword.Handle(bus, func(ctx context.Context, p checkParams) (bool, error) {
		switch p.Username {
		case "ghost":
			return false, fmt.Errorf("looking up %s: %w", p.Username, errUnknownUser)
		case "":
			return false, fmt.Errorf("%w: no username", lightbus.ErrInvalidParams)
		}
		return p.Username == "admin" && p.Password == "secret", nil
	})

	var ok bool
	if err := lightbustest.Invoke(t, bus, "auth.check_password", checkParams{Username: "admin", Password: "secret"}, &ok); err != nil || !ok {
		t.Errorf("admin: %v %v, want true", ok, err)
	}
	err := lightbustest.Invoke(t, bus, "auth.check_password", checkParams{Username: "ghost"}, &ok)
	var lerr *lightbus.Error
	if !errors.Is(err, errUnknownUser) || !errors.As(err, &lerr) || lerr.Code != lightbus.CodeRemoteError || lerr.Message != "looking up ghost: no such user" {
		t.Errorf("ghost: %#v, want remote_error UnknownUser", err)
	}
	err = lightbustest.Invoke(t, bus, "auth.check_password", checkParams{}, &ok)
	if !errors.As(err, &lerr) || lerr.Status != 400 || lerr.Code != lightbus.CodeInvalid || lerr.ErrorType != "InvalidParams" {
		t.Errorf("no username: %#v, want invalid InvalidParams", err)
	}
	if err := lightbustest.Invoke(t, bus, "auth.nothing", nil, nil); !lightbus.IsCode(err, lightbus.CodeNotFound) {
		t.Errorf("unserved RPC: %v, want not_found", err)
	}
	if got := postUnsigned(t, bus, "/lightbus/rpc/auth/check_password", `{"username":"admin","password":"secret"}`); got != http.StatusUnauthorized {
		t.Errorf("unsigned call: status = %d, want 401", got)
	}
}

// postUnsigned posts body to bus's worker handler without a signature and
// returns the answer's status.
func postUnsigned(t *testing.T, bus *lightbus.Bus, path, body string) int {
	t.Helper()
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("ce-type", "auth.user_registered")
	rec := httptest.NewRecorder()
	bus.Handler().ServeHTTP(rec, req)
	return rec.Code
}

// TestDeliverErrorPolicy checks the worker's answers under each error
// policy: a failure, a panic and rejected parameters are 500, 500 and 400
// by default, and all 204 with AcknowledgeAndLog.
func TestDeliverErrorPolicy(t *testing.T) {
	t.Parallel()
	listener := func(ctx context.Context, ev lightbus.EventMessage, p registeredParams) error {
		switch p.Username {
		case "panic":
			panic("the listener panics")
		case "":
			return fmt.Errorf("%w: no username", lightbus.ErrInvalidParams)
		}
		return errors.New("the listener fails")
	}
	bus := lightbus.MustCreate(lightbus.WithService("customers"), lightbus.WithURL("http://127.0.0.1:1"))
	userRegistered.Listen(bus, "retried", listener)
	userRegistered.Listen(bus, "acknowledged", listener, lightbus.OnError(lightbus.AcknowledgeAndLog))
	for _, tc := range []struct {
		username              string
		retried, acknowledged int
	}{
		{"fail", 500, 204},
		{"panic", 500, 204},
		{"", 400, 204},
	} {
		p := registeredParams{Username: tc.username}
		if got := lightbustest.Deliver(t, bus, "retried", "auth.user_registered", p); got != tc.retried {
			t.Errorf("%q to the default group: %d, want %d", tc.username, got, tc.retried)
		}
		if got := lightbustest.Deliver(t, bus, "acknowledged", "auth.user_registered", p); got != tc.acknowledged {
			t.Errorf("%q to the acknowledging group: %d, want %d", tc.username, got, tc.acknowledged)
		}
	}

	defer func() {
		if recover() == nil {
			t.Error("OnError with an unknown policy did not panic")
		}
	}()
	lightbus.OnError(lightbus.ErrorPolicy(7))
}
