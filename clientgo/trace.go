package lightbus

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	"github.com/lightbus-go/lightbus/internal/tracing"
)

// traceContext returns the propagator the Bus uses: the one of
// [WithPropagator]; else OpenTelemetry's global one when the program set
// one (the default global propagator carries no fields: it propagates
// nothing); else W3C Trace Context. It is read on each use, so that a
// program may set the global propagator after creating its Bus.
func (b *Bus) traceContext() propagation.TextMapPropagator {
	if b.propagator != nil {
		return b.propagator
	}
	if p := globalPropagator(); len(p.Fields()) > 0 {
		return p
	}
	return tracing.Propagator
}

// globalPropagator is OpenTelemetry's global propagator; a variable for
// tests, which cannot undo otel.SetTextMapPropagator.
var globalPropagator = otel.GetTextMapPropagator

// injectTrace adds the trace context of ctx (traceparent, tracestate with
// W3C Trace Context) to the headers of a request to the gateway.
func (b *Bus) injectTrace(ctx context.Context, h http.Header) {
	b.traceContext().Inject(ctx, propagation.HeaderCarrier(h))
}

// extractTrace returns ctx carrying the trace context of a request from
// the gateway (a delivery or an RPC), so that a handler's spans, fires and
// calls continue the trace of the fire or call that caused it.
func (b *Bus) extractTrace(ctx context.Context, h http.Header) context.Context {
	return b.traceContext().Extract(ctx, propagation.HeaderCarrier(h))
}
