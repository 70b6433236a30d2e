package lightbus

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/internal/webhook"
)

type newCustomerParams struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

var newCustomer = NewEvent[newCustomerParams]("customers", "new_customer")

var testKey = []byte("another test key, 32 bytes long!")

// grantKey gives listener the signing key, as a registration would.
func grantKey(bus *Bus, listener string, key []byte) {
	bus.mu.Lock()
	defer bus.mu.Unlock()
	bus.listeners[listener].key = key
}

// delivery is one event delivery request as the gateway makes it.
type delivery struct {
	listener, ceType, body string
	key                    []byte
	signedAt               time.Time
	signature              string // overrides the computed one
}

func (d delivery) request(ctx context.Context) *http.Request {
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, ListenerPath(d.listener), strings.NewReader(d.body))
	id := "01936f6e-8a2b-7c3d-9e4f-5a6b7c8d9e0f"
	if d.signedAt.IsZero() {
		d.signedAt = time.Now()
	}
	ts := strconv.FormatInt(d.signedAt.Unix(), 10)
	sig := d.signature
	if sig == "" {
		sig = "v1,bm90IGl0 " + webhook.Sign(d.key, id, ts, []byte(d.body)) // a stale signature first
	}
	for k, v := range map[string]string{
		"Content-Type":      "application/json",
		"ce-specversion":    "1.0",
		"ce-id":             id,
		"ce-source":         "/lightbus/customers",
		"ce-type":           d.ceType,
		"ce-time":           "2026-11-25T10:00:00.123456Z",
		"webhook-id":        id,
		"webhook-timestamp": ts,
		"webhook-signature": sig,
		"Lightbus-Attempt":  "3",
		"Lightbus-Listener": "auth." + d.listener,
	} {
		req.Header.Set(k, v)
	}
	return req
}

func (d delivery) send(t *testing.T, bus *Bus) (*httptest.ResponseRecorder, problemDoc) {
	t.Helper()
	rec := httptest.NewRecorder()
	bus.Handler().ServeHTTP(rec, d.request(t.Context()))
	var p problemDoc
	if rec.Code != http.StatusNoContent {
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || rec.Header().Get("Content-Type") != "application/problem+json" {
			t.Fatalf("delivery answered %d with %s", rec.Code, rec.Body)
		}
	}
	return rec, p
}

func TestDelivery(t *testing.T) {
	t.Parallel()

	type bundle struct {
		bus *Bus
		mu  sync.Mutex
		got []EventMessage
		ps  []newCustomerParams
	}
	setup := func(t *testing.T) *bundle {
		tb := &bundle{bus: newTestBus(t, "http://127.0.0.1:1", WithService("auth"))}
		newCustomer.Listen(tb.bus, "create_user", func(ctx context.Context, ev EventMessage, p newCustomerParams) error {
			tb.mu.Lock()
			defer tb.mu.Unlock()
			tb.got, tb.ps = append(tb.got, ev), append(tb.ps, p)
			switch p.Name {
			case "fail":
				return errors.New("database unreachable")
			case "panic":
				panic("boom")
			}
			return nil
		})
		tb.bus.Listen("customers.*", "create_user", func(ctx context.Context, ev EventMessage) error {
			tb.mu.Lock()
			defer tb.mu.Unlock()
			tb.got = append(tb.got, ev)
			return nil
		})
		grantKey(tb.bus, "create_user", testKey)
		return tb
	}

	t.Run("Handled", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		rec, _ := delivery{listener: "create_user", ceType: "customers.new_customer", body: `{"name":"Sally","email":"sally@example.com"}`, key: testKey}.send(t, tb.bus)
		if rec.Code != http.StatusNoContent {
			t.Fatalf("answer = %d %s", rec.Code, rec.Body)
		}
		if got := rec.Header().Get("Lightbus-Worker-Id"); got != tb.bus.WorkerID() {
			t.Errorf("the answer names worker %q, want %q", got, tb.bus.WorkerID())
		}
		want := EventMessage{ID: "01936f6e-8a2b-7c3d-9e4f-5a6b7c8d9e0f", API: "customers", Event: "new_customer",
			Time: time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC), Attempt: 3, Params: json.RawMessage(`{"name":"Sally","email":"sally@example.com"}`)}
		if len(tb.got) != 1 || !tb.got[0].Time.Equal(want.Time) || tb.got[0].ID != want.ID || tb.got[0].API != want.API ||
			tb.got[0].Event != want.Event || tb.got[0].Attempt != want.Attempt || string(tb.got[0].Params) != string(want.Params) {
			t.Errorf("listener got %+v, want %+v", tb.got, want)
		}
		if len(tb.ps) != 1 || tb.ps[0] != (newCustomerParams{"Sally", "sally@example.com"}) {
			t.Errorf("typed params = %+v", tb.ps)
		}
	})

	t.Run("Wildcard", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		rec, _ := delivery{listener: "create_user", ceType: "customers.deleted_customer", body: `{}`, key: testKey}.send(t, tb.bus)
		if rec.Code != http.StatusNoContent || len(tb.got) != 1 || tb.got[0].Event != "deleted_customer" || len(tb.ps) != 0 {
			t.Errorf("answer = %d, got %+v", rec.Code, tb.got)
		}
	})

	t.Run("BadSignature", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		body := `{"name":"Sally"}`
		for name, d := range map[string]delivery{
			"wrong key": {key: []byte("some other key")},
			"stale":     {key: testKey, signedAt: time.Now().Add(-6 * time.Minute)},
			"future":    {key: testKey, signedAt: time.Now().Add(6 * time.Minute)},
			"not v1":    {key: testKey, signature: "v2," + strings.TrimPrefix(webhook.Sign(testKey, "01936f6e-8a2b-7c3d-9e4f-5a6b7c8d9e0f", strconv.FormatInt(time.Now().Unix(), 10), []byte(body)), "v1,")},
			"garbage":   {key: testKey, signature: "v1,!!!"},
		} {
			d.listener, d.ceType, d.body = "create_user", "customers.new_customer", body
			rec, p := d.send(t, tb.bus)
			if rec.Code != 401 || p.Code != CodeUnauthorized {
				t.Errorf("%s: answer = %d %+v, want 401 unauthorized", name, rec.Code, p)
			}
		}
		// A signature made over other bytes than the body.
		req := delivery{listener: "create_user", ceType: "customers.new_customer", body: body, key: testKey}.request(t.Context())
		req.Body = http.NoBody
		rec := httptest.NewRecorder()
		tb.bus.Handler().ServeHTTP(rec, req)
		if rec.Code != 401 {
			t.Errorf("tampered body: answer = %d", rec.Code)
		}
		// No signature at all.
		req = delivery{listener: "create_user", ceType: "customers.new_customer", body: body, key: testKey}.request(t.Context())
		for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature"} {
			req.Header.Del(h)
		}
		rec = httptest.NewRecorder()
		tb.bus.Handler().ServeHTTP(rec, req)
		if rec.Code != 401 || rec.Header().Get("Lightbus-Worker-Id") != tb.bus.WorkerID() {
			t.Errorf("unsigned: answer = %d naming %q", rec.Code, rec.Header().Get("Lightbus-Worker-Id"))
		}
		if len(tb.got) != 0 {
			t.Errorf("the listener ran for %d unsigned deliveries", len(tb.got))
		}
		// Within the tolerance is fine.
		rec, _ = delivery{listener: "create_user", ceType: "customers.new_customer", body: body, key: testKey, signedAt: time.Now().Add(-4 * time.Minute)}.send(t, tb.bus)
		if rec.Code != 204 {
			t.Errorf("a 4 minute old signature: answer = %d", rec.Code)
		}
	})

	t.Run("Failures", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		for _, tc := range []struct {
			body, code string
			status     int
		}{
			{`{"name":"fail"}`, CodeRemoteError, 500},
			{`{"name":"panic"}`, CodeRemoteError, 500},
			{`{"name":42}`, CodeInvalid, 400}, // does not decode into the type
		} {
			rec, p := delivery{listener: "create_user", ceType: "customers.new_customer", body: tc.body, key: testKey}.send(t, tb.bus)
			if rec.Code != tc.status || p.Code != tc.code {
				t.Errorf("%s: answer = %d %+v, want %d %s", tc.body, rec.Code, p, tc.status, tc.code)
			}
		}
	})

	t.Run("Unknown", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		rec, p := delivery{listener: "nobody", ceType: "customers.new_customer", body: `{}`, key: testKey}.send(t, tb.bus)
		if rec.Code != 404 || p.Code != CodeNotFound {
			t.Errorf("unknown listener: answer = %d %+v", rec.Code, p)
		}
		rec, p = delivery{listener: "create_user", ceType: "orders.placed", body: `{}`, key: testKey}.send(t, tb.bus)
		if rec.Code != 404 || p.Code != CodeNotFound {
			t.Errorf("unknown event: answer = %d %+v", rec.Code, p)
		}
	})

	t.Run("NoSecretYet", func(t *testing.T) {
		t.Parallel()
		tb := setup(t)
		grantKey(tb.bus, "create_user", nil)
		rec, p := delivery{listener: "create_user", ceType: "customers.new_customer", body: `{}`, key: testKey}.send(t, tb.bus)
		if rec.Code != 503 || p.Code != CodeUnavailable || rec.Header().Get("Retry-After") != "1" {
			t.Errorf("answer = %d %+v", rec.Code, p)
		}
	})
}

func TestConcurrencyLimit(t *testing.T) {
	t.Parallel()
	bus := newTestBus(t, "http://127.0.0.1:1", WithService("auth"), WithMaxConcurrency(1))
	entered, release := make(chan struct{}), make(chan struct{})
	bus.Listen("customers.new_customer", "create_user", func(ctx context.Context, ev EventMessage) error {
		entered <- struct{}{}
		<-release
		return nil
	})
	bus.Handle("auth.ping", func(ctx context.Context, params json.RawMessage) (any, error) { return "pong", nil })
	grantKey(bus, "create_user", testKey)
	arrived := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Test-Signal") != "" {
			arrived <- struct{}{}
		}
		bus.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	post := func(req *http.Request) *http.Response {
		req.RequestURI = ""
		u := srv.URL + req.URL.Path
		req.URL, _ = req.URL.Parse(u)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return nil
		}
		resp.Body.Close()
		return resp
	}
	d := delivery{listener: "create_user", ceType: "customers.new_customer", body: `{}`, key: testKey}
	first := make(chan int, 1)
	go func() {
		if resp := post(d.request(context.Background())); resp != nil {
			first <- resp.StatusCode
		}
	}()
	<-entered // the only slot is taken

	resp := post(d.request(t.Context()))
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("a delivery over the limit: answer = %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	grantRPCKey(bus, testKey)
	rpc := func(deadline time.Time) *http.Request {
		req := httptest.NewRequest(http.MethodPost, "/lightbus/rpc/auth/ping", strings.NewReader(`{}`))
		req.Header.Set("Lightbus-Deadline", deadline.UTC().Format(time.RFC3339Nano))
		signRPCRequest(req, `{}`, time.Now(), testKey)
		return req
	}
	if resp := post(rpc(time.Now().Add(50 * time.Millisecond))); resp.StatusCode != 503 {
		t.Errorf("an RPC whose deadline passes while waiting for a slot: answer = %d", resp.StatusCode)
	}

	waited := make(chan int, 1)
	go func() {
		req := rpc(time.Now().Add(5 * time.Second))
		req.Header.Set("Test-Signal", "1")
		if resp := post(req); resp != nil {
			waited <- resp.StatusCode
		}
	}()
	<-arrived // the RPC waits for the slot; free it
	close(release)
	if code := <-first; code != 204 {
		t.Errorf("first delivery: answer = %d", code)
	}
	if code := <-waited; code != 200 {
		t.Errorf("an RPC that waited for a slot: answer = %d", code)
	}
}

func TestListenWithPolicy(t *testing.T) {
	t.Parallel()

	bus := newTestBus(t, "http://127.0.0.1:1", WithService("auth"))
	noop := func(context.Context, EventMessage) error { return nil }
	bus.Listen("customers.new_customer", "create_user", noop, WithPolicy(Policy{
		MaxAttempts: 5, BackoffBase: 250 * time.Millisecond, BackoffMax: time.Minute, Timeout: 3 * time.Second, MaxInFlight: 2,
	}))
	bus.Listen("customers.customer_deleted", "create_user", noop) // keeps the group's policy
	bus.Listen("customers.*", "audit", noop, StartFrom("earliest"))

	data, err := json.Marshal(bus.registrationBody("http://127.0.0.1:2"))
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Listeners []map[string]json.RawMessage `json:"listeners"`
	}
	if err := json.Unmarshal(data, &body); err != nil {
		t.Fatal(err)
	}
	if len(body.Listeners) != 2 {
		t.Fatalf("listeners = %s", data)
	}
	if _, ok := body.Listeners[0]["policy"]; ok {
		t.Errorf("audit declares no policy, got %s", body.Listeners[0]["policy"])
	}
	if got := string(body.Listeners[0]["since"]); got != `"earliest"` {
		t.Errorf("audit since = %s, want \"earliest\"", got)
	}
	if _, ok := body.Listeners[1]["since"]; ok {
		t.Errorf("create_user declares no since, got %s", body.Listeners[1]["since"])
	}
	want := `{"max_attempts":5,"backoff":{"base_ms":250,"max_ms":60000},"timeout_ms":3000,"max_in_flight":2}`
	if got := string(body.Listeners[1]["policy"]); got != want {
		t.Errorf("create_user policy = %s, want %s", got, want)
	}
}

// TestListenOrdered: Ordered declares an ordered group, alone or with
// WithPolicy in either order, and does not leak into other groups that
// share a WithPolicy option.
func TestListenOrdered(t *testing.T) {
	t.Parallel()

	bus := newTestBus(t, "http://127.0.0.1:1", WithService("ledger"))
	noop := func(context.Context, EventMessage) error { return nil }
	shared := WithPolicy(Policy{MaxAttempts: 3})
	bus.Listen("accounts.entry_posted", "a_alone", noop, Ordered())
	bus.Listen("accounts.entry_posted", "b_before", noop, Ordered(), shared)
	bus.Listen("accounts.entry_posted", "c_after", noop, shared, Ordered())
	bus.Listen("accounts.entry_posted", "d_plain", noop, shared)

	data, err := json.Marshal(bus.registrationBody("http://127.0.0.1:2"))
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Listeners []struct {
			Name   string          `json:"name"`
			Policy json.RawMessage `json:"policy"`
		} `json:"listeners"`
	}
	if err := json.Unmarshal(data, &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"a_alone":  `{"ordered":true}`,
		"b_before": `{"max_attempts":3,"ordered":true}`,
		"c_after":  `{"max_attempts":3,"ordered":true}`,
		"d_plain":  `{"max_attempts":3}`,
	}
	for _, l := range body.Listeners {
		if got := string(l.Policy); got != want[l.Name] {
			t.Errorf("%s policy = %s, want %s", l.Name, got, want[l.Name])
		}
	}
}

// TestPolicyJSON: a Policy reads and writes the wire form of a listener
// group's policy (GET /v1/listeners), milliseconds and all.
func TestPolicyJSON(t *testing.T) {
	wire := `{"max_attempts":5,"backoff":{"base_ms":200,"max_ms":60000},"timeout_ms":5000,"max_in_flight":4,"ordered":true}`
	var p Policy
	if err := json.Unmarshal([]byte(wire), &p); err != nil {
		t.Fatal(err)
	}
	want := Policy{MaxAttempts: 5, BackoffBase: 200 * time.Millisecond, BackoffMax: time.Minute, Timeout: 5 * time.Second, MaxInFlight: 4, Ordered: true}
	if p != want {
		t.Fatalf("decoded %+v, want %+v", p, want)
	}
	out, err := json.Marshal(p)
	if err != nil || string(out) != wire {
		t.Fatalf("encoded %s (%v), want %s", out, err, wire)
	}
	var zero Policy
	if err := json.Unmarshal([]byte(`{}`), &zero); err != nil || zero != (Policy{}) {
		t.Fatalf("decoded {} as %+v (%v), want the zero policy", zero, err)
	}
}
