package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/gateway/dispatch"
)

// hangingStore is a database that stops answering: every call waits for its
// context.
type hangingStore struct {
	gateway.EventStore
	gateway.WorkerStore
}

func (hangingStore) FireEvent(ctx context.Context, ev *gateway.Event, window time.Duration) (*gateway.FireResult, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (hangingStore) FireEvents(ctx context.Context, evs []*gateway.Event, window time.Duration) ([]*gateway.FireResult, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (hangingStore) ListWorkers(ctx context.Context) ([]gateway.Worker, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (hangingStore) RPCTargets(ctx context.Context, api, method string) ([]gateway.RPCTarget, time.Duration, error) {
	<-ctx.Done()
	return nil, 0, ctx.Err()
}

func TestStoreTimeout(t *testing.T) {
	t.Parallel()

	store := hangingStore{}
	srv := New(Config{Service: gateway.NewService(gateway.ServiceConfig{Events: store, Workers: store, StoreTimeout: 100 * time.Millisecond,
		Forwarder: dispatch.NewForwarder(dispatch.ForwarderConfig{Store: store, StoreTimeout: 100 * time.Millisecond})})})
	for _, req := range []*http.Request{
		httptest.NewRequest(http.MethodPost, "/v1/events/a/e", strings.NewReader(`{}`)),
		httptest.NewRequest(http.MethodGet, "/v1/workers", nil),
		httptest.NewRequest(http.MethodPost, "/v1/rpc/a/m", strings.NewReader(`{}`)),
	} {
		done := make(chan *httptest.ResponseRecorder, 1)
		go func() {
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			done <- rec
		}()
		select {
		case rec := <-done:
			var p Problem
			_ = json.Unmarshal(rec.Body.Bytes(), &p)
			if rec.Code != http.StatusServiceUnavailable || p.Code != gateway.EUnavailable {
				t.Errorf("%s %s with a hanging database: %d %s, want 503 unavailable", req.Method, req.URL.Path, rec.Code, rec.Body)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s %s hangs with a hanging database", req.Method, req.URL.Path)
		}
	}
}

// An RPC's result goes back as the worker sent it, inside {"result": ...},
// with its length.
func TestWriteResult(t *testing.T) {
	t.Parallel()
	for _, result := range []string{`null`, `7`, `{"a": [1, 2],  "s": "<é>\n"}`} {
		rec := httptest.NewRecorder()
		writeResult(rec, json.RawMessage(result))
		body := rec.Body.String()
		var got struct{ Result json.RawMessage }
		if err := json.Unmarshal([]byte(body), &got); err != nil || string(got.Result) != result {
			t.Errorf("result %s: body %q (%v)", result, body, err)
		}
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" ||
			rec.Header().Get("Content-Length") != fmt.Sprint(len(body)) {
			t.Errorf("result %s: %d %v", result, rec.Code, rec.Header())
		}
	}
}

// Every JSON body goes through one decoder, with one vocabulary of errors.
func TestDecodeJSON(t *testing.T) {
	t.Parallel()
	h := New(Config{MaxBodyBytes: 64})
	type target struct {
		A int `json:"a"`
	}
	for _, tc := range []struct {
		name, body string
		d          decoding
		code       string
		detail     string
	}{
		{"Valid", `{"a": 1}` + "\n", decoding{what: "the thing", want: "a JSON object"}, "", ""},
		{"Empty", " ", decoding{what: "the thing", want: "a JSON object"}, gateway.EInvalid, "the thing is empty: want a JSON object"},
		{"EmptyOptional", "", decoding{what: "the thing", want: "a JSON object", optional: true}, "", ""},
		{"WrongType", `[1]`, decoding{what: "the thing", want: "a JSON object"}, gateway.EInvalid, "the thing must be a JSON object"},
		{"Unknown", `{"b": 1}`, decoding{what: "the thing", want: "a JSON object"}, gateway.EInvalid, `the thing is not valid JSON: unknown field "b"`},
		{"UnknownLenient", `{"b": 1}`, decoding{what: "the thing", want: "a JSON object", lenient: true}, "", ""},
		{"Trailing", `{"a": 1} {"a": 2}`, decoding{what: "the thing", want: "a JSON object"}, gateway.EInvalid, "the thing is not valid JSON: data after the JSON value"},
		{"Broken", `{"a":`, decoding{what: "the thing", want: "a JSON object"}, gateway.EInvalid, "the thing is not valid JSON: unexpected EOF"},
		{"TooLarge", `{"a": 1, "pad": "` + strings.Repeat("x", 64) + `"}`, decoding{what: "the thing", want: "a JSON object", lenient: true}, gateway.ETooLarge, "the thing is larger than 64 bytes"},
		{"TooDeep", `{"a": 1, "b": ` + strings.Repeat("[", gateway.MaxJSONDepth) + strings.Repeat("]", gateway.MaxJSONDepth) + `}`, decoding{what: "the thing", want: "a JSON object", lenient: true, limit: 1024}, gateway.EInvalid, "the thing nests deeper than 64 levels"},
		{"Number", `{"a": 1, "b": 1e401}`, decoding{what: "the thing", want: "a JSON object", lenient: true}, gateway.EInvalid, "the thing holds a number whose exponent is beyond ±400"},
		{"NotUTF8", "{\"a\": 1, \"b\": \"\xff\"}", decoding{what: "the thing", want: "a JSON object", lenient: true}, gateway.EInvalid, "the thing is not valid UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var dst target
			req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
			err := h.decodeJSON(httptest.NewRecorder(), req, tc.d, &dst)
			if gateway.ErrorCode(err) != tc.code || (err != nil && gateway.ErrorMessage(err) != tc.detail) {
				t.Fatalf("decode %q: %v (%s), want %q %q", tc.body, err, gateway.ErrorCode(err), tc.code, tc.detail)
			}
		})
	}
}

// A Lightbus-Timeout in seconds is a positive, finite number that fits a
// duration; anything else is refused explicitly, not by how a float
// happens to convert on this machine.
func TestParseTimeout(t *testing.T) {
	t.Parallel()
	for h, want := range map[string]time.Duration{"": 0, "2s": 2 * time.Second, "1.5": 1500 * time.Millisecond, "9223372036": 9223372036 * time.Second} {
		if got, err := parseTimeout(h); err != nil || got != want {
			t.Errorf("parseTimeout(%q) = %s, %v; want %s", h, got, err, want)
		}
	}
	for _, h := range []string{"NaN", "Inf", "-Inf", "1e300", "9223372037", "-0", "0", "-1", "soon", "0x10"} {
		_, err := parseTimeout(h)
		if gateway.ErrorCode(err) != gateway.EInvalid || !strings.Contains(err.Error(), h) {
			t.Errorf("parseTimeout(%q) = %v, want invalid naming it", h, err)
		}
		if err != nil && strings.Contains(err.Error(), "must be positive") && h != "-0" && h != "0" && h != "-1" {
			t.Errorf("parseTimeout(%q) = %v: refused by an accident of float conversion", h, err)
		}
	}
}
