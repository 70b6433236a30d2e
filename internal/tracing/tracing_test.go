package tracing

import (
	"context"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

const (
	tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	ts = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := Extract(context.Background(), http.Header{HeaderTraceParent: {tp}, HeaderTraceState: {ts}})
	if sc := trace.SpanContextFromContext(ctx); !sc.IsValid() || !sc.IsRemote() || sc.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" {
		t.Fatalf("extracted %+v", sc)
	}
	if gotTP, gotTS := Headers(ctx); gotTP != tp || gotTS != ts {
		t.Errorf("Headers = %q %q, want %q %q", gotTP, gotTS, tp, ts)
	}
	h := http.Header{}
	Inject(Remote(context.Background(), tp, ts), h)
	if h.Get("traceparent") != tp || h.Get("tracestate") != ts {
		t.Errorf("Inject(Remote) set %v", h)
	}
}

func TestMalformedIgnored(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "garbage", "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"} {
		h := http.Header{HeaderTraceState: {ts}}
		if bad != "" {
			h[HeaderTraceParent] = []string{bad}
		}
		ctx := Extract(context.Background(), h)
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			t.Errorf("traceparent %q extracted %+v", bad, sc)
		}
		if gotTP, gotTS := Headers(ctx); gotTP != "" || gotTS != "" {
			t.Errorf("traceparent %q: Headers = %q %q", bad, gotTP, gotTS)
		}
		if sc := trace.SpanContextFromContext(Remote(context.Background(), bad, ts)); sc.IsValid() {
			t.Errorf("Remote(%q) = %+v", bad, sc)
		}
		out := http.Header{}
		Inject(ctx, out)
		if len(out) != 0 {
			t.Errorf("traceparent %q: Inject set %v", bad, out)
		}
	}
}
