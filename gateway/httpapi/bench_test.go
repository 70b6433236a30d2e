package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkFireNoStore measures the fire route's own work (decoding, the
// service's checks, the answer) over the in-memory store, with tracing
// not configured: what tracing adds there, with and without a traceparent
// sent, is all it costs a gateway that exports no spans
// (docs/OPERATING.md, "Traces").
func BenchmarkFireNoStore(b *testing.B) {
	h, _ := newMemHandler(b)
	const body = `{"user":"sally","email":"sally@example.com","plan":"pro"}`
	for _, tc := range []struct {
		name   string
		header http.Header
	}{
		{"no_trace_context", nil},
		{"traceparent", http.Header{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/v1/events/customers/new_customer", strings.NewReader(body))
				for k, v := range tc.header {
					req.Header[k] = v
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusAccepted {
					b.Fatalf("fire: %d %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
