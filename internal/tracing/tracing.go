// Package tracing carries W3C trace context (the traceparent and
// tracestate headers) between the gateway, the Go client and workers, with
// OpenTelemetry's API only: no SDK, no exporter. The gateway and the worker
// runtime pass trace context on whether or not anything exports spans.
package tracing

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Propagator is W3C Trace Context, the propagator Lightbus uses on its own
// hops whatever the process's global propagator is: OpenTelemetry's
// default global propagator propagates nothing.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// The W3C Trace Context headers.
const (
	HeaderTraceParent = "Traceparent"
	HeaderTraceState  = "Tracestate"
)

// The same names as the keys of a propagation.MapCarrier.
const (
	keyTraceParent = "traceparent"
	keyTraceState  = "tracestate"
)

// TracerName is the instrumentation scope of the gateway's spans.
const TracerName = "github.com/lightbus-go/lightbus"

// Extract returns ctx carrying the caller's span context, as a remote
// parent, when h holds a well-formed traceparent (and its tracestate); ctx
// as it is otherwise. A malformed traceparent is ignored, as W3C Trace
// Context wants: the request goes on, in a trace of its own.
func Extract(ctx context.Context, h http.Header) context.Context {
	if _, ok := h[HeaderTraceParent]; !ok {
		return ctx // the common case costs no parsing
	}
	return Propagator.Extract(ctx, propagation.HeaderCarrier(h))
}

// Inject sets traceparent and tracestate in h from ctx's span context;
// it sets nothing when ctx has none.
func Inject(ctx context.Context, h http.Header) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	Propagator.Inject(ctx, propagation.HeaderCarrier(h))
}

// Headers returns the traceparent and tracestate values of ctx's span
// context, as they would be sent; "" when ctx has none.
func Headers(ctx context.Context) (traceparent, tracestate string) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return "", ""
	}
	c := propagation.MapCarrier{}
	Propagator.Inject(ctx, c)
	return c[keyTraceParent], c[keyTraceState]
}

// Remote returns ctx carrying the span context that traceparent and
// tracestate (as Headers gave them, e.g. stored with an event) describe, as
// a remote parent; ctx as it is when traceparent is empty or malformed.
func Remote(ctx context.Context, traceparent, tracestate string) context.Context {
	if traceparent == "" {
		return ctx
	}
	c := propagation.MapCarrier{keyTraceParent: traceparent}
	if tracestate != "" {
		c[keyTraceState] = tracestate
	}
	return Propagator.Extract(ctx, c)
}
