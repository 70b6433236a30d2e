package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/lightbus-go/lightbus/gateway"
)

// The handler-level fuzz targets send any bytes a client can send through
// the real route table and service, over the in-memory store (memStore):
// no answer is a 5xx, every refusal is a problem document and stores
// nothing, and what is accepted is what the protocol allows.

// hostileBodies are seeds shared by the targets: bodies from the tests and
// docs, and the hostile ones of cmd/gateway's TestHostileInput.
var hostileBodies = []string{
	`{"name": "Sally"}`,
	`{"user":"sally","email":"sally@example.com","plan":"pro","tags":["a","b"],"n":12}`,
	`{"username": "admin", "password": "secret"}`,
	`{}`, `["sally"]`, `{"user":`, ``, `null`, ` {"a":1} `,
	"{\"a\":\"\xff\"}", "{\"a\":\"\xed\xa0\x80\"}", `{"a":"\u0000\ud800"}`,
	`{"a":1e1000000}`, `{"a":1e400}`, `{"a":1` + strings.Repeat("0", 120) + `}`,
	strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 65),
	`{"a":1}{"b":2}`, "\xef\xbb\xbf{}", "{\"a\":1}\x00",
}

// serve sends one request to h and returns the answer.
func serve(h http.Handler, method, target string, header http.Header, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, bytes.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// checkAnswer fails unless rec is a 2xx or a 4xx problem document, and
// unless a refusal left the store as it was.
func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder, st *memStore, before string) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("answer %d %s", rec.Code, rec.Body)
	}
	if rec.Code < 300 {
		return
	}
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != rec.Code || p.Code == "" || p.Detail == "" ||
		rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("answer %d %s (%s) is not a problem document", rec.Code, rec.Body, rec.Header().Get("Content-Type"))
	}
	if after := st.counts(); after != before {
		t.Fatalf("a refused request stored something: %s, then %s", before, after)
	}
}

// FuzzFireHandler fires any body, names and Idempotency-Key: a 2xx only
// for a JSON object within the bounds, stored as sent.
func FuzzFireHandler(f *testing.F) {
	for _, b := range hostileBodies {
		f.Add("auth", "user_registered", "", []byte(b))
	}
	for _, b := range []string{`{"n":5}`, `{"n":11}`, `{"n":1e1000}`, `{"n":1e400}`, `{"n":2.25}`, `{"s":"ab"}`, `{"a":[1,1.0]}`, `{"a":[1e-400,2]}`, `{"m":1e10000000}`, `{"m":-1e-10000000}`} {
		f.Add("typed", "counted", "k1", []byte(b))
	}
	f.Add("9auth", "x", "", []byte(`{}`))
	f.Add("a.b", "bad-name", "\x7f", []byte(`{}`))
	f.Add(strings.Repeat("a", 201), "e", strings.Repeat("k", 256), []byte(`{}`))
	h, st := newMemHandler(f)
	f.Fuzz(func(t *testing.T, api, event, key string, body []byte) {
		header := http.Header{}
		if key != "" {
			header["Idempotency-Key"] = []string{key}
		}
		before := st.counts()
		rec := serve(h, http.MethodPost, "/v1/events/"+url.PathEscape(api)+"/"+url.PathEscape(event), header, body)
		checkAnswer(t, rec, st, before)
		if rec.Code >= 300 {
			return
		}
		trimmed := bytes.TrimLeft(body, " \t\r\n")
		if rec.Code != http.StatusAccepted || !json.Valid(body) || trimmed[0] != '{' || gateway.CheckJSON("the body", body) != nil {
			t.Fatalf("%q answered %d, want 400 for anything but a JSON object within the bounds", body, rec.Code)
		}
		if ev := st.lastFired[0]; ev.API != api || ev.Name != event || !bytes.Equal(ev.Params, body) || ev.IdempotencyKey != key {
			t.Fatalf("stored %+v, want %s.%s %q with key %q", ev, api, event, body, key)
		}
	})
}

// FuzzBatchHandler fires any batch body: a 2xx only for a JSON array of 1
// to MaxBatchEvents valid events, all stored.
func FuzzBatchHandler(f *testing.F) {
	f.Add([]byte(`[{"api":"shop","event":"order_placed","params":{"n":1}},
		{"api":"shop","event":"order_placed","params":{"n":0},"idempotency_key":"k0"},
		{"api":"billing","event":"paid","params":{}, "idempotency_key":"k1"}]`))
	f.Add([]byte(`[{"api":"typed","event":"counted","params":{"n":11}},{"api":"shop","event":"bad-name","params":{}}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[null]`))
	f.Add([]byte(`{"api":"shop"}`))
	f.Add([]byte(`[{"api":"shop","event":"e","params":{}}] x`))
	f.Add([]byte(`[{"api":"shop","event":"e","params":{},"extra":1}]`))
	for _, b := range hostileBodies {
		f.Add([]byte(`[{"api":"shop","event":"e","params":` + b + `}]`))
	}
	h, st := newMemHandler(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		before := st.counts()
		rec := serve(h, http.MethodPost, "/v1/events", nil, body)
		checkAnswer(t, rec, st, before)
		if rec.Code >= 300 {
			return
		}
		var items []gateway.BatchItem
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if rec.Code != http.StatusAccepted || !json.Valid(body) || gateway.CheckJSON("the batch", body) != nil || dec.Decode(&items) != nil {
			t.Fatalf("%q answered %d, want 400 for anything but a JSON array of events within the bounds", body, rec.Code)
		}
		if _, err := gateway.NewBatch(items); err != nil || len(st.lastFired) != len(items) {
			t.Fatalf("%q answered %d and stored %d events; NewBatch says %v", body, rec.Code, len(st.lastFired), err)
		}
	})
}

// FuzzRegistrationHandler registers any body under any worker id: a 2xx
// only for a registration that validates, and validates again after a
// round trip through JSON.
func FuzzRegistrationHandler(f *testing.F) {
	f.Add("auth-1", []byte(`{"service":"auth","base_url":"http://127.0.0.1:9000","lease_ttl_ms":60000,
		"apis":[{"name":"auth","events":[{"name":"user_registered","params_schema":{"type":"object"}}],
		"rpcs":[{"name":"check_password","timeout_ms":500,"result_schema":{"type":"boolean"}}]}],
		"listeners":[{"name":"create_user","events":["customers.new_customer","billing.*"],"path":"/lightbus/events/create_user",
		"policy":{"max_attempts":7,"backoff":{"base_ms":10,"max_ms":100},"timeout_ms":1500,"max_in_flight":4},"since":"earliest"}]}`))
	f.Add("w1", []byte(`{"service":"audit","base_url":"http://h","listeners":[{"name":"log","events":["shop.*"],"path":"/hook","since":"2024-01-01T00:00:00Z"}]}`))
	f.Add("w1", []byte(`{"service":"hostile","base_url":"http://h","lease_ttl_ms":288230376151726488}`))
	f.Add("w1", []byte(`{"service":"hostile","base_url":"http://h","listeners":[{"name":"log","path":"/\u0000","events":["a.b"]}]}`))
	f.Add("w1", []byte(`{"service":"hostile","base_url":"http://h","apis":[{"name":"a","events":[{"name":"e","params_schema":{"pattern":"("}}]}]}`))
	f.Add("w1", []byte(`{"service":"hostile","base_url":"http://h","apis":[{"name":"a","rpcs":[{"name":"r","timeout_ms":9223372036854}]}]}`))
	f.Add("w1", []byte(`{"service":"audit","base_url":"http://h","instance_id":"i-1","lease_ttl_ms":500}`))
	f.Add("a b", []byte(`{}`))
	for _, b := range hostileBodies {
		f.Add("w1", []byte(b))
	}
	h, st := newMemHandler(f)
	f.Fuzz(func(t *testing.T, workerID string, body []byte) {
		before := st.counts()
		rec := serve(h, http.MethodPut, "/v1/workers/"+url.PathEscape(workerID), nil, body)
		checkAnswer(t, rec, st, before)
		if rec.Code >= 300 {
			return
		}
		reg := st.lastReg
		if rec.Code != http.StatusOK || reg.WorkerID != workerID || !json.Valid(body) || gateway.CheckJSON("the body", body) != nil {
			t.Fatalf("%q answered %d for worker %q", body, rec.Code, reg.WorkerID)
		}
		if err := reg.Validate(); err != nil {
			t.Fatalf("accepted %q, which does not validate again: %v", body, err)
		}
		data, err := json.Marshal(reg)
		if err != nil {
			t.Fatal(err)
		}
		again := gateway.Registration{WorkerID: workerID}
		if err := json.Unmarshal(data, &again); err != nil {
			t.Fatalf("accepted %q, which does not decode again: %v", body, err)
		}
		if err := again.Validate(); err != nil {
			t.Fatalf("accepted %q, which does not validate after a round trip (%s): %v", body, data, err)
		}
	})
}

// FuzzSchemaHandler publishes any schema document: a 2xx only for a
// document whose schemas compile, stored in a form that compiles again.
func FuzzSchemaHandler(f *testing.F) {
	f.Add("auth", []byte(`{"events":{"user_registered":{"params_schema":{"type":"object","required":["user"]}}},
		"rpcs":{"check_password":{"params_schema":{"type":"object"},"result_schema":{"type":"boolean"}}},"service":"auth"}`))
	f.Add("auth", []byte(`{"api":"billing","events":{}}`))
	f.Add("auth", []byte(`{"validate":false,"events":{"e":{"params_schema":true}}}`))
	f.Add("auth", []byte(`{"events":{"e":{"params_schema":{"maximum":1e999999}}}}`))
	f.Add("auth", []byte(`{"events":{"e":{"params_schema":{"$ref":"http://127.0.0.1:1/s.json"}}}}`))
	f.Add("auth", []byte(`{"events":{"e":{"params_schema":{"$ref":"#"}}}}`))
	f.Add("auth", []byte(`{"events":{"e":{"params_schema":{"pattern":"a{1001}"}}}}`))
	f.Add("auth", []byte("{\"events\":{\"\xff\":{}}}"))
	for _, b := range hostileBodies {
		f.Add("auth", []byte(b))
	}
	h, st := newMemHandler(f)
	cache := gateway.NewSchemaCache(gateway.SchemaCacheConfig{Store: st})
	f.Fuzz(func(t *testing.T, api string, body []byte) {
		before := st.counts()
		rec := serve(h, http.MethodPut, "/v1/schema/"+url.PathEscape(api), nil, body)
		checkAnswer(t, rec, st, before)
		if rec.Code >= 300 {
			return
		}
		var sv gateway.SchemaVersion
		if err := json.Unmarshal(rec.Body.Bytes(), &sv); err != nil || sv.API != api || !json.Valid(body) || gateway.CheckJSON("the body", body) != nil {
			t.Fatalf("%q answered %d %s", body, rec.Code, rec.Body)
		}
		if err := gateway.CheckJSON("the stored schema", sv.Schema); err != nil {
			t.Fatalf("stored %s: %v", sv.Schema, err)
		}
		sv.Hash += "-again" // past the cache's compiled form
		if _, err := cache.Compile(&sv); err != nil {
			t.Fatalf("stored %s, which does not compile again: %v", sv.Schema, err)
		}
	})
}
