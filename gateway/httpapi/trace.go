package httpapi

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/lightbus-go/lightbus/internal/tracing"
)

// noSpan is the span of a request that neither sent trace context nor is
// traced: a no-op.
var noSpan = trace.SpanFromContext(context.Background())

// serverSpan starts the server span name for r, a child of the caller's
// span when r carries a well-formed traceparent (a malformed one is
// ignored: the span starts a trace of its own), and returns r with the
// span in its context. When the gateway exports no spans the span records
// nothing but still carries the caller's context, so that what the request
// stores or forwards continues the caller's trace; a request without trace
// context then costs nothing: r and a no-op span come back as they are.
func (h *Handler) serverSpan(r *http.Request, name string) (*http.Request, trace.Span) {
	if !h.tracing {
		if _, ok := r.Header[tracing.HeaderTraceParent]; !ok {
			return r, noSpan
		}
	}
	ctx := tracing.Extract(r.Context(), r.Header)
	ctx, span := h.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer))
	return r.WithContext(ctx), span
}

// endSpan ends a server span with the request's outcome: the answer's
// status and, for an error, its code; an error answered 5xx marks the
// span as failed (a 4xx is the caller's, not the gateway's).
func endSpan(span trace.Span, status int, err error, attrs ...attribute.KeyValue) {
	if span.IsRecording() {
		if err != nil {
			status = ErrorStatus(err)
			attrs = append(attrs, attribute.String("error.type", errorCode(err)))
			if status >= 500 {
				span.SetStatus(codes.Error, errorCode(err))
			}
		}
		attrs = append(attrs, attribute.Int("http.response.status_code", status))
		span.SetAttributes(attrs...)
	}
	span.End()
}
