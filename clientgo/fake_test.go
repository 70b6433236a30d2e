package lightbus

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/internal/testwait"
	"github.com/lightbus-go/lightbus/internal/webhook"
)

// fakeGateway is a minimal in-process gateway: it registers workers, stores
// fired events and delivers them (signed) to subscribed listeners, and
// forwards RPCs to a registered worker, following docs/PROTOCOL.md.
type fakeGateway struct {
	srv    *httptest.Server
	secret string
	key    []byte

	mu          sync.Mutex
	workers     map[string]fakeWorker // live registrations by id
	puts        []string              // worker id of every PUT
	deletes     []string              // worker id of every DELETE
	fireKeys    []string              // Idempotency-Key of every fire attempt
	events      []StoredEvent         // stored events, oldest first
	byKey       map[string]FireResult // answers by Idempotency-Key
	failPuts    int                   // answer the next PUTs 503
	failFires   int                   // answer the next fires 503
	abortFires  int                   // drop the connection of the next fires
	conflict    bool                  // answer PUTs 409
	lastQuery   string                // raw query of the latest GET /v1/events
	heartbeatMS int64
	schemas     map[string]Schema // published schemas by API
	calls       int               // RPCs received

	delivered chan fakeDelivery // outcome of each delivery attempt
}

type fakeWorker struct {
	reg          registrationBody
	registeredAt time.Time
}

type fakeDelivery struct {
	listener string
	status   int
}

func newFakeGateway(t testing.TB) *fakeGateway {
	t.Helper()
	f := startFakeGateway()
	t.Cleanup(f.srv.Close)
	return f
}

// startFakeGateway starts a fake gateway outside of a test (for the
// examples, in TestMain); close its srv when done.
func startFakeGateway() *fakeGateway {
	key := []byte("a test signing key of 32 bytes!!")
	f := &fakeGateway{
		secret:      "whsec_" + base64.StdEncoding.EncodeToString(key),
		key:         key,
		workers:     map[string]fakeWorker{},
		byKey:       map[string]FireResult{},
		schemas:     map[string]Schema{},
		heartbeatMS: 50,
		delivered:   make(chan fakeDelivery, 100),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/workers/{id}", f.register)
	mux.HandleFunc("DELETE /v1/workers/{id}", f.deregister)
	mux.HandleFunc("GET /v1/workers", f.listWorkers)
	mux.HandleFunc("POST /v1/events/{api}/{event}", f.fire)
	mux.HandleFunc("GET /v1/events", f.listEvents)
	mux.HandleFunc("GET /v1/events/{id}", f.getEvent)
	mux.HandleFunc("POST /v1/rpc/{api}/{method}", f.call)
	mux.HandleFunc("GET /v1/schema", f.listSchemas)
	mux.HandleFunc("GET /v1/schema/{api}", f.getSchema)
	mux.HandleFunc("GET /v1/schema/{api}/versions", f.schemaVersions)
	mux.HandleFunc("PUT /v1/schema/{api}", f.putSchema)
	f.srv = httptest.NewServer(mux)
	return f
}

func (f *fakeGateway) URL() string { return f.srv.URL }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeGateway) register(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var reg registrationBody
	if err := json.NewDecoder(r.Body).Decode(&reg); err != nil {
		writeProblem(w, 400, CodeInvalid, err.Error(), nil)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts = append(f.puts, id)
	if f.failPuts > 0 {
		f.failPuts--
		writeProblem(w, 503, CodeUnavailable, "the database is down", nil)
		return
	}
	if f.conflict {
		writeProblem(w, 409, CodeConflict, `API "auth" is provided by service "other"`, nil)
		return
	}
	now := time.Now().UTC()
	fw, ok := f.workers[id]
	if !ok {
		fw.registeredAt = now
	}
	fw.reg = reg
	f.workers[id] = fw
	res := Registration{Worker: f.worker(id, fw, now), Listeners: []ListenerGrant{}, HeartbeatIntervalMS: f.heartbeatMS, RPCSecret: f.secret}
	for _, l := range reg.Listeners {
		res.Listeners = append(res.Listeners, ListenerGrant{Service: reg.Service, Name: l.Name, Events: l.Events, Secret: f.secret})
	}
	writeJSON(w, 200, res)
}

func (f *fakeGateway) worker(id string, fw fakeWorker, now time.Time) Worker {
	wk := Worker{ID: id, Service: fw.reg.Service, BaseURL: fw.reg.BaseURL, APIs: []string{}, Listeners: []string{},
		RegisteredAt: fw.registeredAt, HeartbeatAt: now, ExpiresAt: now.Add(time.Duration(fw.reg.LeaseTTLMS) * time.Millisecond)}
	for _, a := range fw.reg.APIs {
		wk.APIs = append(wk.APIs, a.Name)
	}
	for _, l := range fw.reg.Listeners {
		wk.Listeners = append(wk.Listeners, l.Name)
	}
	return wk
}

func (f *fakeGateway) deregister(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deletes = append(f.deletes, r.PathValue("id"))
	delete(f.workers, r.PathValue("id"))
	w.WriteHeader(http.StatusNoContent)
}

func (f *fakeGateway) listWorkers(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []Worker{}
	for id, fw := range f.workers {
		out = append(out, f.worker(id, fw, time.Now().UTC()))
	}
	writeJSON(w, 200, map[string]any{"workers": out})
}

// forget drops every registration, as a gateway that lost its state.
func (f *fakeGateway) forget() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.workers)
}

func (f *fakeGateway) fire(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	key := r.Header.Get("Idempotency-Key")
	f.mu.Lock()
	f.fireKeys = append(f.fireKeys, key)
	if f.abortFires > 0 {
		f.abortFires--
		f.mu.Unlock()
		panic(http.ErrAbortHandler) // the client sees the connection drop
	}
	if f.failFires > 0 {
		f.failFires--
		f.mu.Unlock()
		writeProblem(w, 503, CodeUnavailable, "the database is down", nil)
		return
	}
	if res, ok := f.byKey[key]; ok && key != "" {
		f.mu.Unlock()
		writeJSON(w, 202, res)
		return
	}
	ev := StoredEvent{ID: newUUID(), API: r.PathValue("api"), Event: r.PathValue("event"), Params: body, CreatedAt: time.Now().UTC(),
		TraceParent: r.Header.Get("traceparent"), TraceState: r.Header.Get("tracestate")}
	f.events = append(f.events, ev)
	type target struct{ url, listener string }
	var targets []target
	groups := map[string]bool{}
	for _, fw := range f.workers {
		for _, l := range fw.reg.Listeners {
			group := fw.reg.Service + "." + l.Name
			if !groups[group] && (slices.Contains(l.Events, ev.API+"."+ev.Event) || slices.Contains(l.Events, ev.API+".*")) {
				groups[group] = true
				targets = append(targets, target{fw.reg.BaseURL + l.Path, group})
			}
		}
	}
	res := FireResult{ID: ev.ID, API: ev.API, Event: ev.Event, CreatedAt: ev.CreatedAt, Deliveries: len(targets)}
	f.byKey[key] = res
	f.mu.Unlock()
	for _, tg := range targets {
		go f.deliver(tg.url, tg.listener, ev)
	}
	writeJSON(w, 202, res)
}

// deliver POSTs ev to a listener endpoint, signed as the gateway does, and
// again while the worker answers 503 (a delivery that raced the answer to
// its registration, which holds the signing secret; the gateway retries it
// too), for up to 5 s.
func (f *fakeGateway) deliver(url, listener string, ev StoredEvent) {
	status := 0
	for range 250 {
		if status = f.deliverOnce(url, listener, ev); status != http.StatusServiceUnavailable {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.delivered <- fakeDelivery{listener: listener, status: status}
}

// deliverOnce makes one delivery attempt and returns the listener's
// status, 0 when it gave none.
func (f *fakeGateway) deliverOnce(url, listener string, ev StoredEvent) int {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(ev.Params))
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	for k, v := range map[string]string{
		"Content-Type":      "application/json",
		"ce-specversion":    "1.0",
		"ce-id":             ev.ID,
		"ce-source":         "/lightbus/" + ev.API,
		"ce-type":           ev.API + "." + ev.Event,
		"ce-time":           ev.CreatedAt.Format(time.RFC3339Nano),
		"webhook-id":        ev.ID,
		"webhook-timestamp": ts,
		"webhook-signature": webhook.Sign(f.key, ev.ID, ts, ev.Params),
		"Lightbus-Attempt":  "1",
		"Lightbus-Listener": listener,
		// Passed on as the gateway does when it exports no spans.
		"traceparent": ev.TraceParent,
		"tracestate":  ev.TraceState,
	} {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	status := 0
	if resp, err := http.DefaultClient.Do(req); err == nil {
		status = resp.StatusCode
		resp.Body.Close()
	}
	return status
}

func (f *fakeGateway) listEvents(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastQuery = r.URL.RawQuery
	out := slices.Clone(f.events)
	slices.Reverse(out)
	writeJSON(w, 200, EventPage{Events: out, NextCursor: ""})
}

func (f *fakeGateway) getEvent(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ev := range f.events {
		if ev.ID == r.PathValue("id") {
			ev.Deliveries = []Delivery{{Service: "auth", Listener: "create_user", State: "completed", Attempt: 1, MaxAttempts: 25,
				ScheduledAt: ev.CreatedAt, AttemptedAt: ev.CreatedAt, FinalizedAt: ev.CreatedAt, Errors: []DeliveryError{}}}
			writeJSON(w, 200, ev)
			return
		}
	}
	writeProblem(w, 404, CodeNotFound, "no such event", nil)
}

func (f *fakeGateway) call(w http.ResponseWriter, r *http.Request) {
	api, method := r.PathValue("api"), r.PathValue("method")
	f.mu.Lock()
	f.calls++
	f.mu.Unlock()
	timeout := 5 * time.Second
	if s := r.Header.Get("Lightbus-Timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			writeProblem(w, 400, CodeInvalid, "bad Lightbus-Timeout", nil)
			return
		}
		timeout = d
	}
	body, _ := io.ReadAll(r.Body)
	deadline := time.Now().Add(timeout)
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()
	// As the gateway does, a call waits for a live worker until its
	// deadline.
	var base, workerID string
	for base, workerID = f.workerFor(api); base == ""; base, workerID = f.workerFor(api) {
		select {
		case <-ctx.Done():
			writeProblem(w, 503, CodeNoWorker, "no live worker provides API "+strconv.Quote(api), nil)
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/lightbus/rpc/"+api+"/"+method, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Lightbus-Deadline", deadline.UTC().Format(time.RFC3339Nano))
	reqID := newUUID()
	req.Header.Set("Lightbus-Request-Id", reqID)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("webhook-id", api+"/"+method+"/"+reqID)
	req.Header.Set("webhook-timestamp", ts)
	req.Header.Set("webhook-signature", webhook.Sign(f.key, api+"/"+method+"/"+reqID, ts, body))
	for _, h := range []string{"traceparent", "tracestate"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v) // passed on as the gateway does
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			writeProblem(w, 504, CodeTimeout, "the worker did not answer in time", nil)
			return
		}
		writeProblem(w, 502, CodeBadGateway, "the worker could not be reached", nil)
		return
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("Lightbus-Worker-Id") != workerID {
		writeProblem(w, 502, CodeBadGateway, "the answer is not from worker "+workerID, nil)
		return
	}
	var p problemDoc
	_ = json.Unmarshal(out, &p)
	if resp.StatusCode == 200 || p.Code == CodeRemoteError || p.Code == CodeInvalid || p.Code == CodeNotFound {
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(out)
		return
	}
	writeProblem(w, 502, CodeBadGateway, "the worker answered "+resp.Status, nil)
}

// workerFor returns the base URL and id of a registered worker providing
// api, or "".
func (f *fakeGateway) workerFor(api string) (baseURL, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id, fw := range f.workers {
		for _, a := range fw.reg.APIs {
			if a.Name == api {
				return fw.reg.BaseURL, id
			}
		}
	}
	return "", ""
}

// counts returns how many PUTs and DELETEs the fake received.
func (f *fakeGateway) counts() (puts, deletes int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.puts), len(f.deletes)
}

// registered returns the live registration of worker id.
func (f *fakeGateway) registered(id string) (registrationBody, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fw, ok := f.workers[id]
	return fw.reg, ok
}

// testLogger logs to the test's output until the test ends.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.done = true
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(string(bytes.TrimRight(p, "\n")))
	}
	return len(p), nil
}

// newTestBus returns a Bus for gatewayURL with short retries and the test's
// logger.
func newTestBus(t testing.TB, gatewayURL string, opts ...Option) *Bus {
	t.Helper()
	base := []Option{
		WithURL(gatewayURL),
		WithLogger(testLogger(t)),
		WithWorkerID("test-" + randomHex(4)),
		func(c *config) { c.retryBase, c.retryMax = 5*time.Millisecond, 50*time.Millisecond },
	}
	b, err := Create(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// poll checks conditions often: the fake gateway runs in the test process.
var poll = testwait.Poller{Interval: 5 * time.Millisecond}

// waitTimeout bounds each wait for the fake gateway to see something.
const waitTimeout = 5 * time.Second

// waitRegistered waits until worker id is registered and returns its
// registration.
func (f *fakeGateway) waitRegistered(t testing.TB, id string) registrationBody {
	t.Helper()
	var reg registrationBody
	poll.For(t, waitTimeout, "the worker to register", func() bool {
		var ok bool
		reg, ok = f.registered(id)
		return ok
	})
	return reg
}

func (f *fakeGateway) putSchema(w http.ResponseWriter, r *http.Request) {
	api := r.PathValue("api")
	var doc map[string]json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&doc); err != nil {
		writeProblem(w, 400, CodeInvalid, err.Error(), nil)
		return
	}
	var service string
	_ = json.Unmarshal(doc["service"], &service)
	delete(doc, "service")
	doc["api"], _ = json.Marshal(api)
	data, _ := json.Marshal(doc)
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.schemas[api]
	if ok && string(s.Document) == string(data) {
		writeJSON(w, 200, s)
		return
	}
	s = Schema{API: api, Version: s.Version + 1, Hash: "h" + strconv.Itoa(s.Version+1), Service: service, CreatedAt: time.Now().UTC(), Document: data}
	f.schemas[api] = s
	writeJSON(w, 201, s)
}

func (f *fakeGateway) listSchemas(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []Schema{}
	for _, api := range slices.Sorted(maps.Keys(f.schemas)) {
		out = append(out, f.schemas[api])
	}
	writeJSON(w, 200, map[string]any{"schemas": out})
}

func (f *fakeGateway) getSchema(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.schemas[r.PathValue("api")]
	if v := r.URL.Query().Get("version"); ok && v != "" && v != strconv.Itoa(s.Version) {
		ok = false
	}
	if !ok {
		writeProblem(w, 404, CodeNotFound, "no schema", nil)
		return
	}
	writeJSON(w, 200, s)
}

func (f *fakeGateway) schemaVersions(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.schemas[r.PathValue("api")]
	if !ok {
		writeProblem(w, 404, CodeNotFound, "no schema", nil)
		return
	}
	s.Document = nil
	writeJSON(w, 200, map[string]any{"versions": []Schema{s}})
}
