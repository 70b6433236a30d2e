package lightbustest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/internal/testhook"
	"github.com/lightbus-go/lightbus/internal/webhook"
)

// Deliver delivers the event ("customers.new_customer") with params to
// bus's listener group listener, in process and without a gateway: it
// POSTs to the worker's handler ([lightbus.Bus.Handler]) the request the
// gateway would send (attempt 1, CloudEvents and Standard Webhooks
// headers), signed with the group's key, and returns the answer's status:
// 204 when the listener returned nil, 400 when its error wraps
// lightbus.ErrInvalidParams, 500 when it failed or panicked (204 for both
// when the group acknowledges errors, see lightbus.OnError), 404 when the
// group does not listen to the event. The body of any other answer than 204 goes to
// t.Log.
//
// When bus has no listener group listener yet, Deliver first runs bus's
// OnStart hooks (once per bus), as the worker does before it registers; so
// do not also Run a bus given to Deliver. With no group after that, Deliver
// fails t. A group the gateway registered keeps its key: Deliver signs with
// it.
func Deliver(t testing.TB, bus *lightbus.Bus, listener, event string, params any) int {
	t.Helper()
	key := listenerKey(t, bus, listener)
	body, err := encodeParams(params)
	if err != nil {
		t.Fatalf("lightbustest: deliver %s: %v", event, err)
	}
	api, _, _ := strings.Cut(event, ".")
	id := newID()
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, lightbus.ListenerPath(listener), bytes.NewReader(body))
	h := req.Header
	h["Content-Type"] = []string{"application/json"}
	h["Ce-Specversion"] = []string{"1.0"}
	h["Ce-Id"] = []string{id}
	h["Ce-Source"] = []string{"/lightbus/" + api}
	h["Ce-Type"] = []string{event}
	h["Ce-Time"] = []string{now.UTC().Format(time.RFC3339Nano)}
	h[webhook.HeaderID] = []string{id}
	h[webhook.HeaderTimestamp] = []string{ts}
	h[webhook.HeaderSignature] = []string{webhook.Sign(key, id, ts, body)}
	h["Lightbus-Attempt"] = []string{"1"}
	h["Lightbus-Listener"] = []string{listener}
	rec := httptest.NewRecorder()
	bus.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent {
		t.Logf("lightbustest: deliver %s to %s: %d %s", event, listener, rec.Code, rec.Body)
	}
	return rec.Code
}

// listenerKey returns the signing key of bus's listener group, running the
// OnStart hooks first when the group does not exist yet.
func listenerKey(t testing.TB, bus *lightbus.Bus, listener string) []byte {
	t.Helper()
	if key, ok := testhook.ListenerKey(bus, listener); ok {
		return key
	}
	if err := testhook.Start(t.Context(), bus); err != nil {
		t.Fatalf("lightbustest: the OnStart hooks of %s failed: %v", bus.Service(), err)
	}
	key, ok := testhook.ListenerKey(bus, listener)
	if !ok {
		t.Fatalf("lightbustest: %s has no listener group %q, even after its OnStart hooks", bus.Service(), listener)
	}
	return key
}

// Invoke calls the RPC name ("auth.check_password") of bus's worker with
// params, in process and without a gateway: it POSTs to the worker's
// handler the request the gateway would forward, signed with the worker's
// RPC key, and decodes the result into result (a pointer; nil discards
// it). It returns nil, or the *lightbus.Error the worker answered, as a
// caller through the gateway would get it (CodeRemoteError with ErrorType
// and Message, CodeInvalid, CodeNotFound). Invoke does not run the OnStart
// hooks.
func Invoke(t testing.TB, bus *lightbus.Bus, name string, params, result any) error {
	t.Helper()
	body, err := encodeParams(params)
	if err != nil {
		t.Fatalf("lightbustest: invoke %s: %v", name, err)
	}
	api, method, ok := strings.Cut(name, ".")
	if !ok {
		t.Fatalf("lightbustest: invoke %q: want api.method", name)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	deadline, _ := ctx.Deadline()
	requestID := newID()
	id := api + "/" + method + "/" + requestID
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/lightbus/rpc/"+api+"/"+method, bytes.NewReader(body))
	h := req.Header
	h["Content-Type"] = []string{"application/json"}
	h["Lightbus-Request-Id"] = []string{requestID}
	h["Lightbus-Deadline"] = []string{deadline.UTC().Format(time.RFC3339Nano)}
	h[webhook.HeaderID] = []string{id}
	h[webhook.HeaderTimestamp] = []string{ts}
	h[webhook.HeaderSignature] = []string{webhook.Sign(testhook.RPCKey(bus), id, ts, body)}
	rec := httptest.NewRecorder()
	bus.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return problem(rec)
	}
	var answer struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
		t.Fatalf("lightbustest: invoke %s: the worker answered %s: %v", name, rec.Body, err)
	}
	if result != nil {
		if err := json.Unmarshal(answer.Result, result); err != nil {
			t.Fatalf("lightbustest: invoke %s: decoding the result %s: %v", name, answer.Result, err)
		}
	}
	return nil
}

// problem decodes a worker's problem answer into a *lightbus.Error.
func problem(rec *httptest.ResponseRecorder) *lightbus.Error {
	var p struct {
		Title     string               `json:"title"`
		Detail    string               `json:"detail"`
		Code      string               `json:"code"`
		ErrorType string               `json:"error_type"`
		Message   string               `json:"message"`
		Errors    []lightbus.Violation `json:"errors"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		return &lightbus.Error{Status: rec.Code, Detail: "not a problem document: " + rec.Body.String()}
	}
	return &lightbus.Error{Status: rec.Code, Code: p.Code, Title: p.Title, Detail: p.Detail, ErrorType: p.ErrorType, Message: p.Message, Violations: p.Errors}
}
