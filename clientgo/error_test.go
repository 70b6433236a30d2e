package lightbus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

func TestTransportError(t *testing.T) {
	t.Parallel()

	t.Run("Refused", func(t *testing.T) {
		t.Parallel()
		// A port nothing listens on: take one, then close it.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		bus := newTestBus(t, "http://"+addr)
		err = bus.Call(t.Context(), "auth.check_password", nil, nil)
		var terr *TransportError
		var uerr *url.Error
		if !errors.As(err, &terr) || terr.Timeout || terr.Method != "POST" || terr.Path != "/v1/rpc/auth/check_password" {
			t.Fatalf("call = %#v, want a *TransportError for the call", err)
		}
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTimeout) || !errors.As(err, &uerr) {
			t.Errorf("call = %v: want ErrUnavailable and the *url.Error in its chain", err)
		}
		if ErrorCode(err) != "" {
			t.Errorf("ErrorCode = %q, want none: the gateway did not answer", ErrorCode(err))
		}
		if typ := errorType(fmt.Errorf("creating a user: %w", err)); typ != "Unavailable" {
			t.Errorf("a handler failing with it is named %q, want Unavailable", typ)
		}
	})

	t.Run("Timeout", func(t *testing.T) {
		t.Parallel()
		stall := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-stall }))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(stall) })
		bus := newTestBus(t, srv.URL, WithHTTPClient(&http.Client{Timeout: 50 * time.Millisecond}))
		err := bus.Call(t.Context(), "auth.check_password", nil, nil)
		var terr *TransportError
		if !errors.As(err, &terr) || !terr.Timeout || !errors.Is(err, ErrTimeout) || errors.Is(err, ErrUnavailable) {
			t.Errorf("call = %#v, want a timed-out *TransportError", err)
		}

		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		err = newTestBus(t, srv.URL).Call(ctx, "auth.check_password", nil, nil)
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("call past the context's deadline = %v, want ErrTimeout and context.DeadlineExceeded", err)
		}
	})

	t.Run("Canceled", func(t *testing.T) {
		t.Parallel()
		stall := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-stall }))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(stall) })
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(20*time.Millisecond, cancel)
		err := newTestBus(t, srv.URL).Call(ctx, "auth.check_password", nil, nil)
		var terr *TransportError
		if !errors.Is(err, context.Canceled) || errors.As(err, &terr) {
			t.Errorf("cancelled call = %#v, want the context's error only", err)
		}
	})
}

func TestErrorIs(t *testing.T) {
	t.Parallel()
	errUserExists := NewError("UserExists", "the user exists already")
	for _, tc := range []struct {
		err    error
		target error
		want   bool
	}{
		{&Error{Status: 500, Code: CodeRemoteError, ErrorType: "UserExists"}, errUserExists, true},
		{&Error{Status: 400, Code: CodeInvalid, ErrorType: "UserExists"}, errUserExists, true},
		{&Error{Status: 500, Code: CodeRemoteError, ErrorType: "Other"}, errUserExists, false},
		{&Error{Status: 400, Code: CodeInvalid}, &RemoteError{}, false},
		{fmt.Errorf("x: %w", errUserExists), NewError("UserExists", "another message"), true},
		{NewError("Other", "x"), errUserExists, false},
		{&Error{Status: 504, Code: CodeTimeout}, ErrTimeout, true},
		{&Error{Status: 503, Code: CodeNoWorker}, ErrUnavailable, true},
		{&Error{Status: 503, Code: CodeUnavailable}, ErrUnavailable, true},
		{&Error{Status: 502, Code: CodeBadGateway}, ErrUnavailable, false},
		{&Error{Status: 504, Code: CodeTimeout}, ErrUnavailable, false},
	} {
		if got := errors.Is(fmt.Errorf("wrapped: %w", tc.err), tc.target); got != tc.want {
			t.Errorf("errors.Is(%v, %v) = %v, want %v", tc.err, tc.target, got, tc.want)
		}
	}
}

func TestHandlerError(t *testing.T) {
	t.Parallel()
	if HandlerError("auth.x", nil) != nil {
		t.Error("HandlerError(nil) is not nil")
	}
	e := HandlerError("auth.create_user", fmt.Errorf("%w: %w", ErrInvalidParams, NewError("UsernameTaken", "taken")))
	if e.Status != 400 || e.Code != CodeInvalid || e.ErrorType != "UsernameTaken" || e.Message != "invalid parameters: taken" {
		t.Errorf("invalid: %+v", e)
	}
	if got := e.Error(); got != "invalid (400): UsernameTaken: invalid parameters: taken" {
		t.Errorf("invalid: Error() = %q", got)
	}
	e = HandlerError("auth.create_user", errors.New("disk full"))
	if e.Status != 500 || e.Code != CodeRemoteError || e.ErrorType != "error" || e.Message != "disk full" {
		t.Errorf("remote: %+v", e)
	}
}
