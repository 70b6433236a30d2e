package main

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/internal/testwait"
)

// registerWorker registers baseURL as a worker of service providing api.
func registerWorker(t *testing.T, gw *testGateway, workerID, service, api, baseURL string, leaseMS int) {
	t.Helper()
	body := fmt.Sprintf(`{"service":%q,"base_url":%q,"lease_ttl_ms":%d,"apis":[{"name":%q,"rpcs":[{"name":"check_password"}]}]}`,
		service, baseURL, leaseMS, api)
	if resp := gw.do(t, "PUT", "/v1/workers/"+workerID, body, nil, nil); resp.StatusCode != 200 {
		t.Fatalf("register %s: %d", workerID, resp.StatusCode)
	}
}

// restarting makes api known to gw with no live worker: a worker registers
// it and deregisters, as one does when it restarts. Calls to an API the
// gateway knows wait for a worker; to another, they are unknown_api at once.
func restarting(t *testing.T, gw *testGateway, api string) {
	t.Helper()
	registerWorker(t, gw, api+"-0", api, api, "http://127.0.0.1:9", 60000)
	if resp := gw.do(t, "DELETE", "/v1/workers/"+api+"-0", "", nil, nil); resp.StatusCode != 204 {
		t.Fatalf("deregister %s-0: %d", api, resp.StatusCode)
	}
}

// rpcWorker is a test worker whose RPC endpoint runs handle; it names itself
// workerID on every answer, as the protocol wants.
func rpcWorker(t *testing.T, workerID string, handle http.HandlerFunc) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Lightbus-Worker-Id", workerID)
		handle(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// serveAuth starts a test worker whose RPC endpoint runs handle, and
// registers it with gw as auth-1, serving API auth with a one-minute lease.
func serveAuth(t *testing.T, gw *testGateway, handle http.HandlerFunc) {
	t.Helper()
	registerWorker(t, gw, "auth-1", "auth", "auth", rpcWorker(t, "auth-1", handle).URL, 60000)
}

func TestRPC(t *testing.T) {
	t.Parallel()

	t.Run("Success", func(t *testing.T) {
		t.Parallel()
		gw := startGateway(t, nil)
		var calls atomic.Int32
		serveAuth(t, gw, func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			body, _ := io.ReadAll(r.Body)
			if r.URL.Path != "/lightbus/rpc/auth/check_password" || r.Header.Get("Lightbus-Deadline") == "" || r.Header.Get("Lightbus-Request-Id") == "" {
				http.Error(w, "bad request "+r.URL.Path, 418)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"result":{"echo":%s}}`, body)
		})

		var out struct {
			Result struct {
				Echo map[string]string `json:"echo"`
			} `json:"result"`
		}
		resp := gw.do(t, "POST", "/v1/rpc/auth/check_password", `{"user":"admin"}`, nil, &out)
		if resp.StatusCode != 200 || out.Result.Echo["user"] != "admin" || calls.Load() != 1 {
			t.Fatalf("call: %d %+v (calls %d)", resp.StatusCode, out, calls.Load())
		}
		expectProblem(t, gw.do(t, "POST", "/v1/rpc/auth/check_password", `[1]`, nil, nil), 400, "invalid")
		expectProblem(t, gw.do(t, "POST", "/v1/rpc/auth/check_password", `{}`, map[string]string{"Lightbus-Timeout": "soon"}, nil), 400, "invalid")
		expectProblem(t, gw.do(t, "POST", "/v1/rpc/auth/bad-name", `{}`, nil, nil), 400, "invalid")
		if calls.Load() != 1 {
			t.Fatalf("bad calls reached the worker")
		}
	})

	t.Run("RemoteError", func(t *testing.T) {
		t.Parallel()
		gw := startGateway(t, nil)
		serveAuth(t, gw, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(500)
			fmt.Fprint(w, `{"type":"urn:lightbus:problem:remote_error","title":"Remote handler error","status":500,"code":"remote_error","error_type":"InvalidPassword","message":"wrong password for admin"}`)
		})
		p := expectProblem(t, gw.do(t, "POST", "/v1/rpc/auth/check_password", `{}`, nil, nil), 500, "remote_error")
		if p.ErrorType != "InvalidPassword" || p.Message != "wrong password for admin" {
			t.Fatalf("remote error not preserved: %+v", p)
		}
	})

	t.Run("WorkerPassesThroughInvalid", func(t *testing.T) {
		t.Parallel()
		gw := startGateway(t, nil)
		serveAuth(t, gw, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(400)
			fmt.Fprint(w, `{"code":"invalid","status":400,"detail":"user: expected string"}`)
		})
		p := expectProblem(t, gw.do(t, "POST", "/v1/rpc/auth/check_password", `{"user":1}`, nil, nil), 400, "invalid")
		if p.Detail != "user: expected string" {
			t.Fatalf("detail = %q", p.Detail)
		}
	})

	t.Run("BadAnswer", func(t *testing.T) {
		t.Parallel()
		gw := startGateway(t, nil)
		serveAuth(t, gw, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html>hello</html>") })
		expectProblem(t, gw.do(t, "POST", "/v1/rpc/auth/check_password", `{}`, nil, nil), 502, "bad_gateway")
	})

	t.Run("NoWorker", func(t *testing.T) {
		t.Parallel()
		gw := startGateway(t, nil)
		restarting(t, gw, "auth")
		start := time.Now()
		expectProblem(t, gw.do(t, "POST", "/v1/rpc/auth/check_password", `{}`, map[string]string{"Lightbus-Timeout": "300ms"}, nil), 503, "no_worker")
		// It waits for a worker until the deadline, not longer: 3 s leaves a
		// busy machine ten times the deadline.
		if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
			t.Fatalf("answered after %s, want about the 300ms deadline", d)
		}
	})

	t.Run("SlowWorkerTimesOut", func(t *testing.T) {
		t.Parallel()
		gw := startGateway(t, nil)
		release := make(chan struct{})
		serveAuth(t, gw, func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		t.Cleanup(func() { close(release) }) // runs before the server's Close
		start := time.Now()
		expectProblem(t, gw.do(t, "POST", "/v1/rpc/auth/check_password", `{}`, map[string]string{"Lightbus-Timeout": "300ms"}, nil), 504, "timeout")
		if d := time.Since(start); d > 3*time.Second { // the 300 ms deadline; the worker would hold it forever
			t.Fatalf("timeout answered after %s", d)
		}
	})

	t.Run("WorkerKilledMidCall", func(t *testing.T) {
		t.Parallel()
		gw := startGateway(t, nil)
		serveAuth(t, gw, func(w http.ResponseWriter, r *http.Request) {
			// The process dies with the request in hand: the connection drops.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		})
		start := time.Now()
		expectProblem(t, gw.do(t, "POST", "/v1/rpc/auth/check_password", `{}`, map[string]string{"Lightbus-Timeout": "10s"}, nil), 502, "bad_gateway")
		// At once: milliseconds; 2 s is far from the 10 s deadline that a
		// lost reset would wait out.
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("a dropped connection took %s to report, want at once", d)
		}
	})

	t.Run("RefusedWorkerSkipped", func(t *testing.T) {
		t.Parallel()
		gw := startGateway(t, nil)
		// A registered worker whose port no longer accepts connections.
		registerWorker(t, gw, "auth-0", "auth", "auth", deadURL(t), 60000)
		serveAuth(t, gw, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"result":true}`) })
		for i := range 6 {
			var out struct{ Result bool }
			if resp := gw.do(t, "POST", "/v1/rpc/auth/check_password", `{}`, nil, &out); resp.StatusCode != 200 || !out.Result {
				t.Fatalf("call %d: %d", i, resp.StatusCode)
			}
		}
	})

	t.Run("WaitsForAWorker", func(t *testing.T) {
		t.Parallel()
		gw := startGateway(t, nil)
		restarting(t, gw, "auth")
		w := rpcWorker(t, "auth-1", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"result":"late but here"}`) })
		go func() {
			time.Sleep(400 * time.Millisecond) // any delay: the call must wait for the late worker
			registerWorker(t, gw, "auth-1", "auth", "auth", w.URL, 60000)
		}()
		var out struct{ Result string }
		if resp := gw.do(t, "POST", "/v1/rpc/auth/check_password", `{}`, map[string]string{"Lightbus-Timeout": "5s"}, &out); resp.StatusCode != 200 || out.Result != "late but here" {
			t.Fatalf("call: %d %+v", resp.StatusCode, out)
		}
	})

	t.Run("LeaseExpiryLeavesRouting", func(t *testing.T) {
		t.Parallel()
		gw := startGateway(t, nil)
		w := rpcWorker(t, "auth-1", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"result":1}`) })
		// A 2 s lease leaves room for a busy machine between registering and
		// the first call.
		registered := time.Now()
		registerWorker(t, gw, "auth-1", "auth", "auth", w.URL, 2000)
		if resp := gw.do(t, "POST", "/v1/rpc/auth/check_password", `{}`, nil, nil); resp.StatusCode != 200 {
			t.Fatalf("call while live (%s after registering): %d", time.Since(registered), resp.StatusCode)
		}
		// No heartbeat: the lease runs out and calls find no worker.
		testwait.For(t, 15*time.Second, "the worker to leave routing", func() bool {
			resp := gw.do(t, "POST", "/v1/rpc/auth/check_password", `{}`, map[string]string{"Lightbus-Timeout": "200ms"}, nil)
			return resp.StatusCode == 503
		})
		if left := time.Since(registered); left < 2*time.Second {
			t.Fatalf("the worker left routing %s after registering, before its 2s lease ran out", left)
		}
		expectProblem(t, gw.do(t, "POST", "/v1/rpc/auth/check_password", `{}`, map[string]string{"Lightbus-Timeout": "200ms"}, nil), 503, "no_worker")
	})

	t.Run("TargetCacheSavesTheLookup", func(t *testing.T) {
		t.Parallel()
		gw := startGateway(t, func(c *Config) { c.RPCTargetTTL = time.Minute })
		serveAuth(t, gw, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"result":1}`) })
		if resp := gw.do(t, "POST", "/v1/rpc/auth/check_password", `{}`, nil, nil); resp.StatusCode != 200 {
			t.Fatalf("first call: %d", resp.StatusCode)
		}
		// Behind the gateway's back: only a call served from the cache
		// still finds the worker.
		if _, err := gw.app.pool.Exec(t.Context(), `DELETE FROM lightbus_worker`); err != nil {
			t.Fatal(err)
		}
		if resp := gw.do(t, "POST", "/v1/rpc/auth/check_password", `{}`, nil, nil); resp.StatusCode != 200 {
			t.Fatalf("second call within the TTL: %d, want 200 from the cached target", resp.StatusCode)
		}
	})
}

// An RPC runs at most once on a handler: with two live workers of an API,
// when the chosen one dies mid-call (it took the request, then its
// connection broke without an answer) the caller gets 502 at once, and the
// call is not re-sent to the other worker, which would run it a second
// time.
func TestRPCAtMostOnceAcrossWorkers(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	var runs atomic.Int32
	handle := func(w http.ResponseWriter, r *http.Request) {
		if runs.Add(1) == 1 {
			// The first call, on whichever worker it lands, dies mid-call.
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			conn.Close()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"result": true}`)
	}
	registerWorker(t, gw, "auth-1", "auth", "auth", rpcWorker(t, "auth-1", handle).URL, 60000)
	registerWorker(t, gw, "auth-2", "auth", "auth", rpcWorker(t, "auth-2", handle).URL, 60000)

	start := time.Now()
	resp := gw.do(t, "POST", "/v1/rpc/auth/check_password", `{}`, map[string]string{"Lightbus-Timeout": "10s"}, nil)
	expectProblem(t, resp, http.StatusBadGateway, "bad_gateway")
	// "At once": well within the call's 10 s deadline; the bound only
	// guards against waiting for the deadline, not against a slow machine.
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the caller waited %s for a worker that died mid-call", d)
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("the handler ran %d times across both workers, want once", n)
	}
	// Both workers still serve: the next call succeeds, on one of them.
	var out struct{ Result bool }
	if resp := gw.do(t, "POST", "/v1/rpc/auth/check_password", `{}`, nil, &out); resp.StatusCode != 200 || !out.Result {
		t.Fatalf("the next call: %d %+v", resp.StatusCode, out)
	}
}

// A call to an API the gateway has never heard of is answered at once,
// 404 unknown_api with the nearest known API, instead of waiting its whole
// deadline for a worker; a call to an RPC the API's schema does not declare
// is 404 not_found with the nearest declared RPC.
func TestUnknownAPI(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	gw.do(t, "PUT", "/v1/schema/auth", `{"rpcs": {"check_password": {}, "create_user": {}}}`, nil, nil)
	gw.do(t, "PUT", "/v1/schema/loose", `{"validate": false, "rpcs": {"ping": {}}}`, nil, nil)
	restarting(t, gw, "billing") // known without a schema
	long := map[string]string{"Lightbus-Timeout": "1m"}
	short := map[string]string{"Lightbus-Timeout": "200ms"}

	// At once, though the deadline is a minute away.
	p := expectProblem(t, gw.do(t, "POST", "/v1/rpc/auht/check_password", `{}`, long, nil), 404, "unknown_api")
	if !strings.HasSuffix(p.Detail, `; did you mean "auth"?`) {
		t.Errorf("unknown API: %+v", p)
	}
	p = expectProblem(t, gw.do(t, "POST", "/v1/rpc/bliling/refund", `{}`, long, nil), 404, "unknown_api")
	if !strings.HasSuffix(p.Detail, `; did you mean "billing"?`) {
		t.Errorf("unknown API near one without a schema: %+v", p)
	}
	p = expectProblem(t, gw.do(t, "POST", "/v1/rpc/inventory/count", `{}`, long, nil), 404, "unknown_api")
	if strings.Contains(p.Detail, "did you mean") {
		t.Errorf("unknown API far from any: %+v", p)
	}
	p = expectProblem(t, gw.do(t, "POST", "/v1/rpc/auth/chek_password", `{}`, long, nil), 404, "not_found")
	if p.Detail != `the schema of API "auth" (version 1) declares no rpc "chek_password"; did you mean "check_password"?` {
		t.Errorf("undeclared RPC: %+v", p)
	}

	// Known APIs wait for a worker: with a schema (the RPC declared, or
	// validation off), or registered once.
	for _, path := range []string{"/v1/rpc/auth/check_password", "/v1/rpc/loose/anything", "/v1/rpc/billing/refund"} {
		expectProblem(t, gw.do(t, "POST", path, `{}`, short, nil), 503, "no_worker")
	}
	// An API registered just now (here, or on another replica) is known at
	// once: an unknown name is looked up again.
	expectProblem(t, gw.do(t, "POST", "/v1/rpc/late/x", `{}`, long, nil), 404, "unknown_api")
	if _, err := gw.app.pool.Exec(t.Context(), `INSERT INTO lightbus_api_owner (api, service) VALUES ('late', 'late')`); err != nil {
		t.Fatal(err)
	}
	expectProblem(t, gw.do(t, "POST", "/v1/rpc/late/x", `{}`, short, nil), 503, "no_worker")

	// The Go client sees the code.
	bus, err := lightbus.Create(lightbus.WithURL(gw.URL))
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Call(t.Context(), "auht.check_password", nil, nil); !lightbus.IsCode(err, lightbus.CodeUnknownAPI) || !strings.Contains(err.Error(), `did you mean "auth"`) {
		t.Errorf("clientgo: %v", err)
	}
}
