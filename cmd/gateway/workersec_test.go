package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/internal/testwait"
	"github.com/lightbus-go/lightbus/internal/webhook"
)

// pingBus returns a worker bus of service providing api.ping, which answers
// with the worker's id and counts its calls in ran.
func pingBus(t *testing.T, gw *testGateway, service, workerID, api string, ran *atomic.Int32, opts ...lightbus.Option) *lightbus.Bus {
	t.Helper()
	bus, err := lightbus.Create(append(append(workerOptions(gw, 2*time.Second), lightbus.WithService(service), lightbus.WithWorkerID(workerID)), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	bus.Handle(api+".ping", func(ctx context.Context, params json.RawMessage) (any, error) {
		if ran != nil {
			ran.Add(1)
		}
		return workerID, nil
	})
	return bus
}

// serveBus serves bus's worker endpoints on a loopback listener until the
// test ends, and returns its base URL and a function that stops serving
// (the process dies: nothing is deregistered).
func serveBus(t *testing.T, bus *lightbus.Bus) (string, func()) {
	t.Helper()
	srv := httptest.NewServer(bus.Handler())
	t.Cleanup(srv.Close)
	return srv.URL, srv.Close
}

// TestAPIOwnership: an API belongs to the service that first registered
// it, also while none of its workers is live, until an admin releases it.
func TestAPIOwnership(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	ctx := context.Background()

	owner := pingBus(t, gw, "auth", "auth-1", "auth", nil)
	runCtx, stopOwner := context.WithCancel(ctx)
	ownerDone := make(chan error, 1)
	go func() { ownerDone <- owner.Run(runCtx) }()
	testwait.For(t, 10*time.Second, "the owner's worker to register", func() bool {
		var list struct{ Workers []json.RawMessage }
		gw.do(t, "GET", "/v1/workers", "", nil, &list)
		return len(list.Workers) == 1
	})
	// A live worker of the owner: the API cannot be released.
	p := expectProblem(t, gw.do(t, "DELETE", "/v1/apis/auth/owner", "", nil, nil), 409, "conflict")
	if !strings.Contains(p.Detail, "live worker") {
		t.Errorf("release while live: detail %q", p.Detail)
	}
	stopOwner()
	if err := <-ownerDone; err != nil {
		t.Fatalf("owner worker: %v", err)
	}

	// The owner has no live worker now; another service still cannot take
	// its API.
	var ran atomic.Int32
	intruder := pingBus(t, gw, "intruder", "intruder-1", "auth", &ran)
	refusedCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err := intruder.Run(refusedCtx) // returns at once when refused
	var lbErr *lightbus.Error
	if !errors.As(err, &lbErr) || lbErr.Code != lightbus.CodeConflict || lbErr.Status != 409 {
		t.Fatalf("another service registering the API of a stopped owner: %v, want 409 conflict", err)
	}
	if !strings.Contains(lbErr.Detail, `service "auth"`) || !strings.Contains(lbErr.Detail, "DELETE /v1/apis/auth/owner") {
		t.Errorf("the conflict should name the owner and the release: %q", lbErr.Detail)
	}
	var list struct{ Workers []json.RawMessage }
	if gw.do(t, "GET", "/v1/workers", "", nil, &list); len(list.Workers) != 0 {
		t.Fatalf("the refused worker was listed: %s", list.Workers)
	}

	// An admin releases the API; then the other service may register it.
	if resp := gw.do(t, "DELETE", "/v1/apis/auth/owner", "", nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("release: %d", resp.StatusCode)
	}
	expectProblem(t, gw.do(t, "DELETE", "/v1/apis/auth/owner", "", nil, nil), 404, "not_found")
	expectProblem(t, gw.do(t, "DELETE", "/v1/apis/no-such-api/owner", "", nil, nil), 400, "invalid")
	runWorker(t, intruder)
	client, err := lightbus.Create(lightbus.WithURL(gw.URL))
	if err != nil {
		t.Fatal(err)
	}
	var answeredBy string
	if err := client.Call(ctx, "auth.ping", nil, &answeredBy, lightbus.Timeout(10*time.Second)); err != nil || answeredBy != "intruder-1" {
		t.Fatalf("auth.ping after the release: %q, %v; want the new owner's worker", answeredBy, err)
	}
	// The former owner is now the one refused.
	if _, err := pingBus(t, gw, "auth", "auth-2", "auth", nil).Register(ctx, "http://127.0.0.1:1"); !errors.As(err, &lbErr) || lbErr.Code != lightbus.CodeConflict {
		t.Fatalf("the former owner after the release: %v, want conflict", err)
	}
}

// TestWorkerRejectsUnsignedRequests: a worker runtime registered with a
// real gateway runs the gateway's signed RPCs and deliveries, and rejects
// unsigned, forged and stale ones sent straight to it.
func TestWorkerRejectsUnsignedRequests(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	ctx := context.Background()

	var ran, delivered atomic.Int32
	// Registered once and never heartbeated: a lease long enough to outlast
	// the test on a busy machine, so that the fire at the end finds it live.
	bus := pingBus(t, gw, "auth", "auth-1", "auth", &ran, lightbus.WithLeaseTTL(time.Minute))
	bus.Listen("auth.user_registered", "audit", func(ctx context.Context, ev lightbus.EventMessage) error {
		delivered.Add(1)
		return nil
	})
	base, _ := serveBus(t, bus)
	reg, err := bus.Register(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(reg.RPCSecret, webhook.SecretPrefix) {
		t.Fatalf("the registration granted rpc_secret %q", reg.RPCSecret)
	}
	// The secret is never listed.
	resp := gw.do(t, "GET", "/v1/workers", "", nil, nil)
	if body, _ := io.ReadAll(resp.Body); strings.Contains(string(body), webhook.SecretPrefix) || strings.Contains(string(body), "secret") {
		t.Fatalf("GET /v1/workers shows a secret: %s", body)
	}

	// The gateway's own call goes through.
	var answeredBy string
	if err := bus.Call(ctx, "auth.ping", nil, &answeredBy); err != nil || answeredBy != "auth-1" {
		t.Fatalf("call through the gateway: %q, %v", answeredBy, err)
	}

	key, err := webhook.DecodeSecret(reg.RPCSecret)
	if err != nil {
		t.Fatal(err)
	}
	listenerKey, err := webhook.DecodeSecret(reg.Listeners[0].Secret)
	if err != nil {
		t.Fatal(err)
	}
	forgedKey := []byte("not the secret the gateway gave.")
	post := func(path, id string, signedAt time.Time, key []byte) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("ce-type", "auth.user_registered")
		if key != nil {
			ts := strconv.FormatInt(signedAt.Unix(), 10)
			req.Header.Set("webhook-id", id)
			req.Header.Set("webhook-timestamp", ts)
			req.Header.Set("webhook-signature", webhook.Sign(key, id, ts, []byte(`{}`)))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Lightbus-Worker-Id"); got != "auth-1" {
			t.Errorf("%s answered naming worker %q", path, got)
		}
		return resp.StatusCode
	}
	stale := time.Now().Add(-webhook.DefaultTolerance - time.Minute)
	for name, status := range map[string]int{
		"unsigned rpc":      post("/lightbus/rpc/auth/ping", "", time.Now(), nil),
		"forged rpc":        post("/lightbus/rpc/auth/ping", "auth/ping/x", time.Now(), forgedKey),
		"stale rpc":         post("/lightbus/rpc/auth/ping", "auth/ping/x", stale, key),
		"unsigned delivery": post("/lightbus/events/audit", "", time.Now(), nil),
		"forged delivery":   post("/lightbus/events/audit", "01936f6e-8a2b-7c3d-9e4f-5a6b7c8d9e0f", time.Now(), forgedKey),
		"stale delivery":    post("/lightbus/events/audit", "01936f6e-8a2b-7c3d-9e4f-5a6b7c8d9e0f", stale, listenerKey),
	} {
		if status != http.StatusUnauthorized {
			t.Errorf("%s: answered %d, want 401", name, status)
		}
	}
	if n, d := ran.Load(), delivered.Load(); n != 1 || d != 0 {
		t.Fatalf("handlers ran %d times and listeners %d times; want only the gateway's one call", n, d)
	}
	// A fired event reaches the listener: the gateway's deliveries verify.
	if resp := gw.do(t, "POST", "/v1/events/auth/user_registered", `{}`, nil, nil); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("fire: %d", resp.StatusCode)
	}
	testwait.For(t, 10*time.Second, "the delivery", func() bool { return delivered.Load() == 1 })
}

// TestRollingRestartLosesNoCall: a worker id served by two processes behind
// one base URL (the old one and its replacement, as during a rolling
// restart). The replacement's registration rotates the secret; during the
// overlap the gateway signs with both, so every call verifies wherever it
// lands.
func TestRollingRestartLosesNoCall(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	ctx := context.Background()

	var ranOld, ranNew atomic.Int32
	old := pingBus(t, gw, "auth", "auth-1", "auth", &ranOld, lightbus.WithLeaseTTL(time.Minute))
	replacement := pingBus(t, gw, "auth", "auth-1", "auth", &ranNew, lightbus.WithLeaseTTL(time.Minute))
	// One address, requests alternating between the two processes once
	// the replacement is up.
	var up atomic.Bool
	var n atomic.Uint64
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if up.Load() && n.Add(1)%2 == 0 {
			replacement.Handler().ServeHTTP(w, r)
			return
		}
		old.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	first, err := old.Register(ctx, front.URL)
	if err != nil {
		t.Fatal(err)
	}
	client, err := lightbus.Create(lightbus.WithURL(gw.URL))
	if err != nil {
		t.Fatal(err)
	}
	call := func() error {
		var who string
		return client.Call(ctx, "auth.ping", nil, &who, lightbus.Timeout(10*time.Second))
	}
	if err := call(); err != nil {
		t.Fatalf("call before the restart: %v", err)
	}

	second, err := replacement.Register(ctx, front.URL)
	if err != nil {
		t.Fatal(err)
	}
	if second.RPCSecret == first.RPCSecret {
		t.Fatal("the replacement's registration kept the old secret")
	}
	up.Store(true)
	var failed atomic.Int32
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 10 {
				if err := call(); err != nil {
					failed.Add(1)
					t.Errorf("call during the restart: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 || ranOld.Load() < 2 || ranNew.Load() < 1 {
		t.Fatalf("%d calls failed; the old process ran %d, the new one %d", failed.Load(), ranOld.Load(), ranNew.Load())
	}
}

// TestRestartInPlace: a worker restarted with the same id and address gets
// a new secret while another replica (here: this gateway's target cache)
// still signs with the old one; the worker refuses that signature, and the
// gateway reads the secret again and sends the call once more.
func TestRestartInPlace(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, func(c *Config) { c.RPCTargetTTL = time.Minute; c.WorkerSecretOverlap = 0 })
	ctx := context.Background()

	var current atomic.Pointer[lightbus.Bus]
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		current.Load().Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	var ranOld, ranNew atomic.Int32
	old := pingBus(t, gw, "auth", "auth-1", "auth", &ranOld, lightbus.WithLeaseTTL(time.Minute))
	current.Store(old)
	if _, err := old.Register(ctx, front.URL); err != nil {
		t.Fatal(err)
	}
	var who string
	if err := old.Call(ctx, "auth.ping", nil, &who); err != nil {
		t.Fatalf("first call: %v", err) // caches the target with the old secret
	}
	restarted := pingBus(t, gw, "auth", "auth-1", "auth", &ranNew, lightbus.WithLeaseTTL(time.Minute))
	current.Store(restarted)
	if _, err := restarted.Register(ctx, front.URL); err != nil {
		t.Fatal(err)
	}
	if err := old.Call(ctx, "auth.ping", nil, &who); err != nil {
		t.Fatalf("a call signed from a stale cache: %v, want it sent again with the new secret", err)
	}
	if ranOld.Load() != 1 || ranNew.Load() != 1 {
		t.Fatalf("the old process ran %d calls and the new one %d, want one each", ranOld.Load(), ranNew.Load())
	}
}

// TestWrongWorkerAnswerRefused: a worker dies without deregistering and a
// plain HTTP server takes its address: its answers, however well formed,
// are never taken as the call's result, nor is the call sent elsewhere.
func TestWrongWorkerAnswerRefused(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	ctx := context.Background()

	var ran atomic.Int32
	bus := pingBus(t, gw, "auth", "auth-1", "auth", &ran, lightbus.WithLeaseTTL(time.Minute))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	srv := &http.Server{Handler: bus.Handler()}
	go func() { _ = srv.Serve(ln) }()
	if _, err := bus.Register(ctx, "http://"+addr); err != nil {
		t.Fatal(err)
	}
	var who string
	if err := bus.Call(ctx, "auth.ping", nil, &who); err != nil || who != "auth-1" {
		t.Fatalf("call to the live worker: %q, %v", who, err)
	}
	srv.Close() // the worker dies; its lease runs on
	// Let the gateway's idle connection to it notice, as it would long
	// before another process took the port.
	time.Sleep(200 * time.Millisecond)

	for _, impostorID := range []string{"", "auth-2"} {
		var hits atomic.Int32
		impostor := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			if impostorID != "" {
				w.Header().Set("Lightbus-Worker-Id", impostorID)
			}
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Connection", "close") // the next impostor gets a fresh connection
			fmt.Fprint(w, `{"result": "impostor"}`)
		})}
		var ln net.Listener
		testwait.For(t, 5*time.Second, "the address to be free", func() bool {
			ln, err = net.Listen("tcp", addr)
			return err == nil
		})
		go func() { _ = impostor.Serve(ln) }()
		resp := gw.do(t, "POST", "/v1/rpc/auth/ping", `{}`, map[string]string{"Lightbus-Timeout": "5s"}, nil)
		p := expectProblem(t, resp, 502, "bad_gateway")
		if !strings.Contains(p.Detail, "auth-1") {
			t.Errorf("detail %q does not name the worker called", p.Detail)
		}
		if hits.Load() != 1 {
			t.Errorf("impostor naming %q: it got %d requests, want exactly the one call, not retried", impostorID, hits.Load())
		}
		impostor.Close()
	}
}

// TestWorkerNetworkPolicy: base URLs the policy refuses are refused at
// registration, and addresses it refuses at connect time, for a host name
// it allowed at registration that resolves elsewhere.
func TestWorkerNetworkPolicy(t *testing.T) {
	t.Parallel()

	t.Run("RefusedAtRegistration", func(t *testing.T) {
		t.Parallel()
		gw := startGateway(t, nil)
		for _, base := range []string{"http://169.254.169.254", "http://169.254.169.254:80/latest", "http://[fd00:ec2::254]", "http://100.100.100.200", "http://metadata.google.internal", "http://[fe80::1]:8000", "http://[::ffff:169.254.169.254]"} {
			body := fmt.Sprintf(`{"service":"auth","base_url":%q,"apis":[{"name":"auth","rpcs":[{"name":"ping"}]}]}`, base)
			p := expectProblem(t, gw.do(t, "PUT", "/v1/workers/auth-1", body, nil, nil), 403, "forbidden")
			if !strings.Contains(p.Detail, "LIGHTBUS_WORKER_NETWORKS") {
				t.Errorf("%s: detail %q", base, p.Detail)
			}
		}
		var list struct{ Workers []json.RawMessage }
		if gw.do(t, "GET", "/v1/workers", "", nil, &list); len(list.Workers) != 0 {
			t.Fatalf("refused registrations were stored: %s", list.Workers)
		}
		// Nothing was claimed either: another service may register the API.
		registerWorker(t, gw, "other-1", "other", "auth", "http://127.0.0.1:1", 60000)
	})

	t.Run("RefusedAtConnectTime", func(t *testing.T) {
		t.Parallel()
		// localhost is allowed by name, but only 10.0.0.0/8 by address:
		// it resolves to loopback, which the gateway must not connect to.
		gw := startGateway(t, func(c *Config) { c.WorkerNetworks = "10.0.0.0/8, localhost" })
		var hits atomic.Int32
		worker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			w.Header().Set("Lightbus-Worker-Id", "auth-1")
			fmt.Fprint(w, `{"result": true}`)
		}))
		t.Cleanup(worker.Close)
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(worker.URL, "http://"))
		base := "http://localhost:" + port
		expectProblem(t, gw.do(t, "PUT", "/v1/workers/auth-0", `{"service":"auth","base_url":"http://127.0.0.1:`+port+`"}`, nil, nil), 403, "forbidden")
		body := fmt.Sprintf(`{"service":"auth","base_url":%q,"apis":[{"name":"auth","rpcs":[{"name":"ping"}]}],
			"listeners":[{"name":"audit","events":["auth.pinged"],"path":"/events/audit","policy":{"max_attempts":2,"backoff":{"base_ms":10,"max_ms":10}}}]}`, base)
		if resp := gw.do(t, "PUT", "/v1/workers/auth-1", body, nil, nil); resp.StatusCode != 200 {
			t.Fatalf("register at %s: %d", base, resp.StatusCode)
		}

		// The call ends at once, with 502, instead of waiting for a worker.
		start := time.Now()
		p := expectProblem(t, gw.do(t, "POST", "/v1/rpc/auth/ping", `{}`, map[string]string{"Lightbus-Timeout": "10s"}, nil), 502, "bad_gateway")
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("a refused address took %s to answer", d)
		}
		if !strings.Contains(p.Detail, "network policy") {
			t.Errorf("detail %q", p.Detail)
		}

		// A delivery fails its attempts without reaching the listener.
		var fired fireResult
		gw.do(t, "POST", "/v1/events/auth/pinged", `{}`, nil, &fired)
		testwait.For(t, 15*time.Second, "the delivery to die", func() bool {
			var ev struct {
				Deliveries []struct {
					State string `json:"state"`
				} `json:"deliveries"`
			}
			gw.do(t, "GET", "/v1/events/"+fired.ID, "", nil, &ev)
			return len(ev.Deliveries) == 1 && ev.Deliveries[0].State == "dead"
		})
		if hits.Load() != 0 {
			t.Fatalf("the worker at a refused address got %d requests", hits.Load())
		}
	})
}
