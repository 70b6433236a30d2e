package dispatch

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/lightbus-go/lightbus/internal/tracing"
)

// noSpan is the span of a request that is not traced: a no-op.
var noSpan = trace.SpanFromContext(context.Background())

// tracer returns the tracer of tp and whether it makes spans at all (tp
// is not nil); a nil tp gives a no-op tracer.
func tracer(tp trace.TracerProvider) (trace.Tracer, bool) {
	if tp == nil {
		return noop.NewTracerProvider().Tracer(tracing.TracerName), false
	}
	return tp.Tracer(tracing.TracerName), true
}

// errorType names how a request failed without an answer, for the
// error.type attribute of its span.
func errorType(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, errAddressNotAllowed):
		return "address_not_allowed"
	}
	return "transport"
}
