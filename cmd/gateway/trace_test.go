package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/internal/testwait"
	"github.com/lightbus-go/lightbus/internal/webhook"
	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

// newSpanContext returns a sampled remote span context of a new trace, as
// a caller's own tracing would make.
func newSpanContext(t *testing.T) trace.SpanContext {
	t.Helper()
	var tid trace.TraceID
	var sid trace.SpanID
	_, _ = rand.Read(tid[:])
	_, _ = rand.Read(sid[:])
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, Remote: true})
}

// traceparent is the traceparent header of sc.
func traceparent(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// traceSeen holds the span context each handler of a traceWorker ran in.
type traceSeen struct {
	mu   sync.Mutex
	seen map[string][]trace.SpanContext // by handler
}

func (s *traceSeen) add(handler string, ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen[handler] = append(s.seen[handler], trace.SpanContextFromContext(ctx))
}

// wait returns the span context of handler's n-th run (from 1), waiting
// for it.
func (s *traceSeen) wait(t *testing.T, handler string, n int) trace.SpanContext {
	t.Helper()
	var sc trace.SpanContext
	testwait.For(t, 15*time.Second, handler+" to run", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.seen[handler]) < n {
			return false
		}
		sc = s.seen[handler][n-1]
		return true
	})
	return sc
}

// runTraceWorker runs a worker of service shop against gw: the RPC
// shop.quote, which fires shop.quoted from its handler's context, and the
// listeners on_order (shop.order_placed) and on_quoted (shop.quoted). Each
// handler records the span context it runs in.
func runTraceWorker(t *testing.T, gw *testGateway) *traceSeen {
	t.Helper()
	seen := &traceSeen{seen: map[string][]trace.SpanContext{}}
	bus, err := lightbus.Create(append(workerOptions(gw, 2*time.Second), lightbus.WithService("shop"))...)
	if err != nil {
		t.Fatal(err)
	}
	bus.Handle("shop.quote", func(ctx context.Context, params json.RawMessage) (any, error) {
		seen.add("quote", ctx)
		res, err := bus.Fire(ctx, "shop.quoted", map[string]any{"price": 3})
		return res.ID, err
	})
	bus.Listen("shop.order_placed", "on_order", func(ctx context.Context, ev lightbus.EventMessage) error {
		seen.add("on_order", ctx)
		return nil
	})
	bus.Listen("shop.quoted", "on_quoted", func(ctx context.Context, ev lightbus.EventMessage) error {
		seen.add("on_quoted", ctx)
		return nil
	})
	runBus(t, bus)
	return seen
}

// storedTrace reads the trace context stored with event id.
func storedTrace(t *testing.T, gw *testGateway, id string) (traceparent, tracestate string) {
	t.Helper()
	var ev struct {
		TraceParent string `json:"traceparent"`
		TraceState  string `json:"tracestate"`
	}
	if resp := gw.do(t, "GET", "/v1/events/"+id, "", nil, &ev); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/events/%s: %d", id, resp.StatusCode)
	}
	return ev.TraceParent, ev.TraceState
}

// TestTracePropagation: with no exporter configured the gateway makes no
// spans, yet the trace context of a fire reaches the listener and is
// stored with the event, that of a call reaches the RPC handler, and a
// fire from a handler continues its trace.
func TestTracePropagation(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	if gw.app.tracer != nil {
		t.Fatal("the test gateway exports traces: want none configured")
	}
	seen := runTraceWorker(t, gw)
	client := newClient(t, gw)
	ctx := t.Context()

	// A fire in a trace: the listener runs in it, and the event shows it.
	caller := newSpanContext(t)
	res, err := client.Fire(trace.ContextWithSpanContext(ctx, caller), "shop.order_placed", map[string]any{"id": 1})
	if err != nil {
		t.Fatal(err)
	}
	got := seen.wait(t, "on_order", 1)
	if got.TraceID() != caller.TraceID() || !got.IsRemote() {
		t.Fatalf("the listener ran in trace %s (remote %v), want the caller's %s", got.TraceID(), got.IsRemote(), caller.TraceID())
	}
	if got.SpanID() != caller.SpanID() {
		t.Errorf("the listener's parent span is %s, want the caller's %s: with no spans made, the context passes as it came", got.SpanID(), caller.SpanID())
	}
	if tp, _ := storedTrace(t, gw, res.ID); tp != traceparent(caller) {
		t.Errorf("stored traceparent %q, want %q", tp, traceparent(caller))
	}
	stored, err := client.Event(ctx, res.ID)
	if err != nil || stored.TraceParent != traceparent(caller) {
		t.Errorf("the Go client reads traceparent %q (%v), want %q", stored.TraceParent, err, traceparent(caller))
	}

	// A fire without trace context: the listener runs in none.
	if _, err := client.Fire(ctx, "shop.order_placed", map[string]any{"id": 2}); err != nil {
		t.Fatal(err)
	}
	if got := seen.wait(t, "on_order", 2); got.IsValid() {
		t.Errorf("a fire without trace context reached the listener in trace %s", got.TraceID())
	}

	// A call in a trace: the handler runs in it, and its fire continues it.
	caller = newSpanContext(t)
	var quoted string
	if err := client.Call(trace.ContextWithSpanContext(ctx, caller), "shop.quote", nil, &quoted); err != nil {
		t.Fatal(err)
	}
	if got := seen.wait(t, "quote", 1); got.TraceID() != caller.TraceID() || got.SpanID() != caller.SpanID() {
		t.Fatalf("the RPC handler ran in %s/%s, want the caller's %s/%s", got.TraceID(), got.SpanID(), caller.TraceID(), caller.SpanID())
	}
	if got := seen.wait(t, "on_quoted", 1); got.TraceID() != caller.TraceID() {
		t.Fatalf("the event fired by the RPC handler reached its listener in trace %s, want the call's %s", got.TraceID(), caller.TraceID())
	}
	if tp, _ := storedTrace(t, gw, quoted); !strings.Contains(tp, caller.TraceID().String()) {
		t.Errorf("the event fired by the RPC handler stored traceparent %q, want trace %s", tp, caller.TraceID())
	}
}

// TestTraceHeaders: trace context as any HTTP client sends it. A
// well-formed traceparent and its tracestate are stored and sent on each
// delivery, beside a signature that still verifies; a batch's applies to
// each of its events; a malformed one is ignored, never refused.
func TestTraceHeaders(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	h := newListener(t)
	secret := registerGroup(t, gw, "w1", "audit", "all", h.srv.URL, "", "shop.*")

	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	const ts = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
	var fired fireResult
	resp := gw.do(t, "POST", "/v1/events/shop/order_placed", `{}`, map[string]string{"Traceparent": tp, "Tracestate": ts}, &fired)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("fire: %d", resp.StatusCode)
	}
	if gotTP, gotTS := storedTrace(t, gw, fired.ID); gotTP != tp || gotTS != ts {
		t.Errorf("stored %q %q, want %q %q", gotTP, gotTS, tp, ts)
	}
	testwait.For(t, 15*time.Second, "the delivery", func() bool { return len(h.received()) == 1 })
	got := h.received()[0]
	if got.header.Get("Traceparent") != tp || got.header.Get("Tracestate") != ts {
		t.Errorf("the delivery carried traceparent %q tracestate %q, want %q %q",
			got.header.Get("Traceparent"), got.header.Get("Tracestate"), tp, ts)
	}
	if err := verifyDelivery(secret, got); err != nil {
		t.Errorf("the delivery's signature: %v", err)
	}

	// A batch: the request's context is each event's, whether the events
	// are stored one INSERT each (a few) or by COPY (many).
	var batch struct {
		Results []fireResult `json:"results"`
	}
	items := []string{`{"api":"shop","event":"order_cancelled","params":{},"idempotency_key":"k1"}`}
	for range 20 {
		items = append(items, `{"api":"shop","event":"order_placed","params":{}}`)
	}
	body := "[" + strings.Join(items, ",") + "]"
	if resp := gw.do(t, "POST", "/v1/events", body, map[string]string{"Traceparent": tp}, &batch); resp.StatusCode != http.StatusAccepted || len(batch.Results) != len(items) {
		t.Fatalf("batch: %d %+v", resp.StatusCode, batch)
	}
	for _, r := range batch.Results {
		if gotTP, gotTS := storedTrace(t, gw, r.ID); gotTP != tp || gotTS != "" {
			t.Errorf("batch event %s stored %q %q, want %q and no tracestate", r.ID, gotTP, gotTS, tp)
		}
	}

	// Malformed trace context is ignored: the fire is stored without one.
	for _, bad := range []string{
		"garbage",
		"00-00000000000000000000000000000000-b7ad6b7169203331-01", // all-zero trace id
		"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", // all-zero span id
		"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", // version ff
		"00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01", // upper case
		"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
		strings.Repeat("0", 8000),
	} {
		var fired fireResult
		resp := gw.do(t, "POST", "/v1/events/shop/order_placed", `{}`, map[string]string{"Traceparent": bad, "Tracestate": ts}, &fired)
		if resp.StatusCode != http.StatusAccepted {
			t.Errorf("fire with traceparent %.40q: %d, want 202", bad, resp.StatusCode)
			continue
		}
		if gotTP, gotTS := storedTrace(t, gw, fired.ID); gotTP != "" || gotTS != "" {
			t.Errorf("traceparent %.40q stored %q %q, want nothing", bad, gotTP, gotTS)
		}
	}
	// A call with a malformed traceparent is no worse off: no worker, 503
	// (for an API the gateway knows; see TestUnknownAPI).
	restarting(t, gw, "shop")
	expectProblem(t, gw.do(t, "POST", "/v1/rpc/shop/quote", `{}`, map[string]string{"Traceparent": "garbage", "Lightbus-Timeout": "50ms"}, nil),
		http.StatusServiceUnavailable, "no_worker")
}

// verifyDelivery checks a delivery's Standard Webhooks signature with the
// group's secret.
func verifyDelivery(secret string, r hookRequest) error {
	key, err := webhook.DecodeSecret(secret)
	if err != nil {
		return err
	}
	return webhook.Verify(key, r.header, []byte(r.body), time.Now(), webhook.DefaultTolerance)
}

// collector is an OTLP/HTTP trace receiver: it keeps the spans exported to
// it and the resources they came with.
type collector struct {
	srv *httptest.Server

	mu        sync.Mutex
	spans     []*tracepb.Span
	resources [][]*commonpb.KeyValue
}

func newCollector(t *testing.T) *collector {
	t.Helper()
	c := &collector{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			t.Errorf("the exporter sent %s %s (%s)", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
			http.Error(w, "not OTLP/HTTP protobuf", http.StatusBadRequest)
			return
		}
		if err := proto.Unmarshal(body, &req); err != nil {
			t.Errorf("an export that does not decode: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.mu.Lock()
		for _, rs := range req.ResourceSpans {
			c.resources = append(c.resources, rs.GetResource().GetAttributes())
			for _, ss := range rs.ScopeSpans {
				c.spans = append(c.spans, ss.Spans...)
			}
		}
		c.mu.Unlock()
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(c.srv.Close)
	return c
}

// span returns the one span named name in the trace of traceID whose
// attribute key is value ("" for any), failing the test unless there is
// exactly one.
func (c *collector) span(t *testing.T, traceID trace.TraceID, name, key, value string) *tracepb.Span {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var found []*tracepb.Span
	for _, s := range c.spans {
		if s.Name == name && string(s.TraceId) == string(traceID[:]) && (key == "" || attr(s, key) == value) {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %q spans in trace %s with %s=%q, want 1 (of %d spans)", len(found), name, traceID, key, value, len(c.spans))
	}
	return found[0]
}

// attr is a span attribute's value as text; "" when it has none.
func attr(s *tracepb.Span, key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			switch v := kv.Value.Value.(type) {
			case *commonpb.AnyValue_StringValue:
				return v.StringValue
			case *commonpb.AnyValue_IntValue:
				return strconv.FormatInt(v.IntValue, 10)
			case *commonpb.AnyValue_BoolValue:
				if v.BoolValue {
					return "true"
				}
				return "false"
			}
		}
	}
	return ""
}

// spanID is a span id as the API has it.
func spanID(b []byte) trace.SpanID {
	var id trace.SpanID
	copy(id[:], b)
	return id
}

// TestTraceExport: with an OTLP endpoint configured the gateway exports
// the spans of a fire, of each delivery attempt (a child of the fire's
// span, whose id the listener receives) and of an RPC (the server span and
// the client span of its forward, whose id the worker receives), flushed
// when the gateway shuts down.
func TestTraceExport(t *testing.T) {
	t.Parallel()
	col := newCollector(t)
	cfg := testConfig()
	cfg.OTelEndpoint = col.srv.URL // the exporter adds /v1/traces
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	gw, stop := launchGateway(t, cfg, pgtest.NewURL(t), logger)
	t.Cleanup(func() { _ = stop() })
	if gw.app.tracer == nil {
		t.Fatal("an OTLP endpoint is configured, yet the gateway exports no traces")
	}
	seen := runTraceWorker(t, gw)
	client := newClient(t, gw)
	ctx := t.Context()

	fireCaller := newSpanContext(t)
	res, err := client.Fire(trace.ContextWithSpanContext(ctx, fireCaller), "shop.order_placed", map[string]any{"id": 1})
	if err != nil {
		t.Fatal(err)
	}
	onOrder := seen.wait(t, "on_order", 1)
	callCaller := newSpanContext(t)
	var quoted string
	if err := client.Call(trace.ContextWithSpanContext(ctx, callCaller), "shop.quote", nil, &quoted); err != nil {
		t.Fatal(err)
	}
	quote := seen.wait(t, "quote", 1)
	onQuoted := seen.wait(t, "on_quoted", 1)
	for _, id := range []string{res.ID, quoted} {
		testwait.For(t, 15*time.Second, "event "+id+" to be delivered", func() bool {
			ev, err := client.Event(ctx, id)
			return err == nil && len(ev.Deliveries) == 1 && ev.Deliveries[0].State == "completed"
		})
	}
	if err := stop(); err != nil { // shutting down flushes the spans
		t.Fatalf("gateway stopped with %v", err)
	}

	// The fire: a server span, child of the caller's.
	fire := col.span(t, fireCaller.TraceID(), "fire", "lightbus.event_id", res.ID)
	if fire.Kind != tracepb.Span_SPAN_KIND_SERVER || spanID(fire.ParentSpanId) != fireCaller.SpanID() ||
		attr(fire, "lightbus.api") != "shop" || attr(fire, "lightbus.event") != "order_placed" || attr(fire, "http.response.status_code") != "202" {
		t.Errorf("fire span: %v", fire)
	}
	// Its delivery: a client span, child of the fire's; the listener ran
	// in it.
	attempt := col.span(t, fireCaller.TraceID(), "delivery attempt", "lightbus.listener", "on_order")
	if attempt.Kind != tracepb.Span_SPAN_KIND_CLIENT || string(attempt.ParentSpanId) != string(fire.SpanId) ||
		attr(attempt, "lightbus.service") != "shop" || attr(attempt, "lightbus.attempt") != "1" ||
		attr(attempt, "lightbus.event_id") != res.ID || attr(attempt, "http.response.status_code") != "204" {
		t.Errorf("delivery attempt span: %v", attempt)
	}
	if onOrder.TraceID() != fireCaller.TraceID() || onOrder.SpanID() != spanID(attempt.SpanId) {
		t.Errorf("the listener ran in %s/%s, want the attempt's span %s/%s", onOrder.TraceID(), onOrder.SpanID(), fireCaller.TraceID(), spanID(attempt.SpanId))
	}

	// The call: a server span, child of the caller's, and the client span
	// of its forward; the RPC handler ran in the latter.
	rpc := col.span(t, callCaller.TraceID(), "rpc", "", "")
	forward := col.span(t, callCaller.TraceID(), "rpc forward", "", "")
	if rpc.Kind != tracepb.Span_SPAN_KIND_SERVER || spanID(rpc.ParentSpanId) != callCaller.SpanID() ||
		attr(rpc, "rpc.service") != "shop" || attr(rpc, "rpc.method") != "quote" {
		t.Errorf("rpc span: %v", rpc)
	}
	if forward.Kind != tracepb.Span_SPAN_KIND_CLIENT || string(forward.ParentSpanId) != string(rpc.SpanId) ||
		attr(forward, "lightbus.worker_id") == "" || attr(forward, "http.response.status_code") != "200" {
		t.Errorf("rpc forward span: %v", forward)
	}
	if quote.TraceID() != callCaller.TraceID() || quote.SpanID() != spanID(forward.SpanId) {
		t.Errorf("the RPC handler ran in %s/%s, want the forward's span", quote.TraceID(), quote.SpanID())
	}
	// The handler's fire continues the call's trace: its fire span is a
	// child of the forward's, its delivery a child of that fire.
	handlerFire := col.span(t, callCaller.TraceID(), "fire", "lightbus.event_id", quoted)
	if string(handlerFire.ParentSpanId) != string(forward.SpanId) {
		t.Errorf("the handler's fire span has parent %x, want the forward's %x", handlerFire.ParentSpanId, forward.SpanId)
	}
	quotedAttempt := col.span(t, callCaller.TraceID(), "delivery attempt", "lightbus.listener", "on_quoted")
	if string(quotedAttempt.ParentSpanId) != string(handlerFire.SpanId) || onQuoted.SpanID() != spanID(quotedAttempt.SpanId) {
		t.Errorf("the handler's event was delivered in %s, want a child of its fire span", onQuoted.SpanID())
	}

	col.mu.Lock()
	defer col.mu.Unlock()
	for _, res := range col.resources {
		name := ""
		for _, kv := range res {
			if kv.Key == "service.name" {
				name = kv.Value.GetStringValue()
			}
		}
		if name != defaultServiceName {
			t.Errorf("spans exported with service.name %q, want %q", name, defaultServiceName)
		}
	}
}
