package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/lightbus-go/lightbus/gateway"
)

func TestProblemFor(t *testing.T) {
	t.Parallel()

	for code, status := range statusByCode {
		p := ProblemFor(gateway.Errorf(code, "something about %s", code))
		if p.Status != status || p.Code != code || p.Type != "urn:lightbus:problem:"+code || p.Title == "" {
			t.Errorf("code %s: got %+v", code, p)
		}
	}
	// Internal errors never reach the caller.
	p := ProblemFor(errors.New("pq: password authentication failed for user secret"))
	if p.Code != gateway.EInternal || p.Status != 500 || p.Detail != "internal error" {
		t.Errorf("plain error: got %+v", p)
	}
	p = ProblemFor(gateway.WrapError(gateway.EInternal, errors.New("secret detail"), "secret message"))
	if p.Detail != "internal error" {
		t.Errorf("internal *Error leaked its message: %+v", p)
	}
	// An expired bound on a dependency is an outage, not a bug.
	p = ProblemFor(fmt.Errorf("fire: %w", context.DeadlineExceeded))
	if p.Code != gateway.EUnavailable || p.Status != 503 || p.Detail == "internal error" {
		t.Errorf("deadline exceeded: got %+v", p)
	}
	p = ProblemFor(&gateway.Error{Code: gateway.ERemote, Message: "handler failed", ErrorType: "InvalidPassword", RemoteMessage: "wrong"})
	if p.ErrorType != "InvalidPassword" || p.Message != "wrong" || p.Status != 500 {
		t.Errorf("remote error: got %+v", p)
	}
}

func TestWriteError(t *testing.T) {
	t.Parallel()

	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/v1/x", nil)
	writeError(rec, req, slog.New(slog.DiscardHandler), gateway.Errorf(gateway.ENoWorker, "no live worker provides API %q", "auth"))
	if rec.Code != 503 || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("got %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if p.Code != gateway.ENoWorker || p.Instance != "/v1/x" || p.Detail != `no live worker provides API "auth"` {
		t.Errorf("problem = %+v", p)
	}
}
