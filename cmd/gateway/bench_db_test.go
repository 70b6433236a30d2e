package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/gateway/dispatch"
	"github.com/lightbus-go/lightbus/internal/webhook"
	"github.com/lightbus-go/lightbus/store/postgres"
	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

// BenchmarkFireHandler measures the fire route end to end through the
// gateway's handler (decoding, validation, the durable insert with one
// subscribed group, the answer), without a network, with and without
// group commit.
func BenchmarkFireHandler(b *testing.B) {
	for _, batched := range []bool{false, true} {
		b.Run(fmt.Sprintf("batched=%v", batched), func(b *testing.B) {
			cfg := testConfig()
			cfg.FireBatch = batched
			a, err := newApp(context.Background(), cfg, pgtest.NewURL(b), slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { a.close(context.Background()) })
			reg := `{"service":"bench","base_url":"http://127.0.0.1:1","lease_ttl_ms":600000,
				"listeners":[{"name":"g0","events":["customers.new_customer"],"path":"/e"}]}`
			rec := httptest.NewRecorder()
			a.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/v1/workers/bench-1", strings.NewReader(reg)))
			if rec.Code != http.StatusOK {
				b.Fatalf("register: %d %s", rec.Code, rec.Body)
			}
			body := `{"user":"sally","email":"sally@example.com","plan":"pro"}`
			b.ReportAllocs()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					rec := httptest.NewRecorder()
					a.handler.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/events/customers/new_customer", strings.NewReader(body)))
					if rec.Code != http.StatusAccepted {
						b.Fatalf("fire: %d %s", rec.Code, rec.Body)
					}
				}
			})
		})
	}
}

// BenchmarkRouterCall measures forwarding an RPC to a loopback worker with
// the targets from a real store, with and without the target cache.
func BenchmarkRouterCall(b *testing.B) {
	worker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Lightbus-Worker-Id", "auth-1")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"result":{"ok":true}}`)
	}))
	b.Cleanup(worker.Close)
	store, err := postgres.New(pgtest.New(b), nil)
	if err != nil {
		b.Fatal(err)
	}
	reg := &gateway.Registration{WorkerID: "auth-1", Service: "auth", BaseURL: worker.URL, LeaseTTLMS: 600000,
		APIs: []gateway.APIDeclaration{{Name: "auth", RPCs: []gateway.RPCDeclaration{{Name: "check_password"}}}}}
	if _, err := store.RegisterWorker(context.Background(), reg, webhook.NewSecret, 25); err != nil {
		b.Fatal(err)
	}
	for _, ttl := range []time.Duration{0, time.Second} {
		b.Run("ttl="+ttl.String(), func(b *testing.B) {
			router := dispatch.NewForwarder(dispatch.ForwarderConfig{Store: store, TargetTTL: ttl})
			call := &gateway.Call{API: "auth", Method: "check_password", Params: []byte(`{"user":"sally"}`)}
			b.ReportAllocs()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := router.Forward(context.Background(), call); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
