package lightbus

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// testSpanContext is a sampled span context of a caller's trace.
var testSpanContext = trace.NewSpanContext(trace.SpanContextConfig{
	TraceID:    trace.TraceID{0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c},
	SpanID:     trace.SpanID{0xb7, 0xad, 0x6b, 0x71, 0x69, 0x20, 0x33, 0x31},
	TraceFlags: trace.FlagsSampled,
	TraceState: mustTraceState("rojo=00f067aa0ba902b7"),
})

const (
	testTraceParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	testTraceState  = "rojo=00f067aa0ba902b7"
)

func mustTraceState(s string) trace.TraceState {
	ts, err := trace.ParseTraceState(s)
	if err != nil {
		panic(err)
	}
	return ts
}

// headerRecorder is a gateway that answers every request with an empty
// success and keeps each request's headers, by path.
func headerRecorder(t *testing.T) (*httptest.Server, func(path string) http.Header) {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]http.Header{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = r.Header.Clone()
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/events":
			_, _ = w.Write([]byte(`{"results":[]}`))
		case "/v1/rpc/auth/check":
			_, _ = w.Write([]byte(`{"result":true}`))
		default:
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte(`{"id":"e1"}`))
		}
	}))
	t.Cleanup(srv.Close)
	return srv, func(path string) http.Header {
		mu.Lock()
		defer mu.Unlock()
		return seen[path]
	}
}

// TestTraceInjected: Fire, FireBatch and Call send the trace context of
// their ctx with W3C Trace Context, without any OpenTelemetry setup, and
// nothing when ctx has none.
func TestTraceInjected(t *testing.T) {
	t.Parallel()
	srv, headers := headerRecorder(t)
	bus := newTestBus(t, srv.URL)
	traced := trace.ContextWithRemoteSpanContext(context.Background(), testSpanContext)

	send := map[string]func(ctx context.Context) error{
		"/v1/events/auth/user_registered": func(ctx context.Context) error {
			_, err := bus.Fire(ctx, "auth.user_registered", nil)
			return err
		},
		"/v1/events": func(ctx context.Context) error {
			_, err := bus.FireBatch(ctx, []BatchEvent{{Name: "auth.user_registered"}})
			return err
		},
		"/v1/rpc/auth/check": func(ctx context.Context) error {
			return bus.Call(ctx, "auth.check", nil, nil)
		},
	}
	for path, do := range send {
		if err := do(traced); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if h := headers(path); h.Get("traceparent") != testTraceParent || h.Get("tracestate") != testTraceState {
			t.Errorf("%s sent traceparent %q tracestate %q, want %q %q", path, h.Get("traceparent"), h.Get("tracestate"), testTraceParent, testTraceState)
		}
		if err := do(context.Background()); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if h := headers(path); h.Get("traceparent") != "" || h.Get("tracestate") != "" {
			t.Errorf("%s without trace context sent traceparent %q tracestate %q", path, h.Get("traceparent"), h.Get("tracestate"))
		}
	}
}

// TestTraceWithPropagator: WithPropagator replaces W3C Trace Context.
func TestTraceWithPropagator(t *testing.T) {
	t.Parallel()
	srv, headers := headerRecorder(t)
	bus := newTestBus(t, srv.URL, WithPropagator(propagation.Baggage{}))
	member, _ := baggage.NewMember("tenant", "acme")
	bag, _ := baggage.New(member)
	ctx := baggage.ContextWithBaggage(trace.ContextWithRemoteSpanContext(context.Background(), testSpanContext), bag)
	if _, err := bus.Fire(ctx, "auth.user_registered", nil); err != nil {
		t.Fatal(err)
	}
	h := headers("/v1/events/auth/user_registered")
	if h.Get("baggage") != "tenant=acme" || h.Get("traceparent") != "" {
		t.Errorf("sent baggage %q traceparent %q, want the propagator's baggage only", h.Get("baggage"), h.Get("traceparent"))
	}
}

// TestTraceGlobalPropagator: a global propagator the program set is used;
// OpenTelemetry's default one, which propagates nothing, is not. It
// replaces the global propagator's getter, so it does not run in parallel.
func TestTraceGlobalPropagator(t *testing.T) {
	if n := len(otel.GetTextMapPropagator().Fields()); n != 0 {
		t.Fatalf("OpenTelemetry's default global propagator has %d fields, want none: the Bus would take it for one the program set", n)
	}
	prev := globalPropagator
	globalPropagator = func() propagation.TextMapPropagator { return propagation.Baggage{} }
	t.Cleanup(func() { globalPropagator = prev })

	srv, headers := headerRecorder(t)
	bus := newTestBus(t, srv.URL)
	if _, err := bus.Fire(trace.ContextWithRemoteSpanContext(context.Background(), testSpanContext), "auth.user_registered", nil); err != nil {
		t.Fatal(err)
	}
	if h := headers("/v1/events/auth/user_registered"); h.Get("traceparent") != "" {
		t.Errorf("sent traceparent %q: the global propagator (baggage only) was not used", h.Get("traceparent"))
	}
}

// TestTraceExtracted: the worker runtime runs listeners and RPC handlers
// in the trace context the gateway's requests carry, so a fire or call
// made from a handler continues the caller's trace.
func TestTraceExtracted(t *testing.T) {
	t.Parallel()
	gw := newFakeGateway(t)
	type seen struct {
		what string
		sc   trace.SpanContext
	}
	ran := make(chan seen, 10)
	worker := newTestBus(t, gw.URL(), WithService("auth"), WithLeaseTTL(time.Second))
	worker.Handle("auth.check", func(ctx context.Context, params json.RawMessage) (any, error) {
		ran <- seen{"rpc", trace.SpanContextFromContext(ctx)}
		_, err := worker.Fire(ctx, "auth.checked", nil) // continues the call's trace
		return true, err
	})
	worker.Listen("auth.checked", "audit", func(ctx context.Context, ev EventMessage) error {
		ran <- seen{"listener", trace.SpanContextFromContext(ctx)}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- worker.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	gw.waitRegistered(t, worker.WorkerID())

	client := newTestBus(t, gw.URL())
	if err := client.Call(trace.ContextWithRemoteSpanContext(context.Background(), testSpanContext), "auth.check", nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"rpc", "listener"} {
		select {
		case got := <-ran:
			if got.what != want || got.sc.TraceID() != testSpanContext.TraceID() || got.sc.SpanID() != testSpanContext.SpanID() ||
				got.sc.TraceState().String() != testTraceState || !got.sc.IsRemote() {
				t.Errorf("%s ran in %+v, want the caller's remote span context", got.what, got.sc)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("the %s did not run", want)
		}
	}
}
