package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/webhook"
)

func TestDialControl(t *testing.T) {
	t.Parallel()
	tenOnly, err := gateway.ParseWorkerNetworks("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		networks *gateway.WorkerNetworks
		address  string
		allowed  bool
	}{
		{nil, "127.0.0.1:8000", true},
		{nil, "[::1]:8000", true},
		{nil, "169.254.169.254:80", false},
		{nil, "[fd00:ec2::254]:80", false},
		{nil, "100.100.100.200:80", false},
		{nil, "[fe80::1%25eth0]:80", false},
		{nil, "not an address", false},
		{tenOnly, "10.1.2.3:80", true},
		{tenOnly, "127.0.0.1:80", false},
	} {
		err := dialControl(tc.networks)("tcp", tc.address, nil)
		if tc.allowed && err != nil || !tc.allowed && !errors.Is(err, errAddressNotAllowed) {
			t.Errorf("%v, %s: got %v, want allowed %v", tc.networks, tc.address, err, tc.allowed)
		}
	}
}

// rpcTargets is an RPCStore with fixed targets; lookups counts its calls.
type rpcTargets struct {
	targets []gateway.RPCTarget
	lookups atomic.Int32
}

func (s *rpcTargets) RPCTargets(context.Context, string, string) ([]gateway.RPCTarget, time.Duration, error) {
	s.lookups.Add(1)
	return s.targets, 0, nil
}

func TestForwardSignsAndChecksTheWorker(t *testing.T) {
	t.Parallel()
	secretA, secretB := webhook.NewSecret(), webhook.NewSecret()
	keyA, _ := webhook.DecodeSecret(secretA)
	keyB, _ := webhook.DecodeSecret(secretB)

	// answer is how the test worker answers; hits counts its requests.
	type worker struct {
		srv    *httptest.Server
		hits   atomic.Int32
		answer func(w http.ResponseWriter, r *http.Request, body []byte)
	}
	newWorker := func(t *testing.T, answer func(w http.ResponseWriter, r *http.Request, body []byte)) *worker {
		w := &worker{answer: answer}
		w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			if r.URL.Path == "/elsewhere" {
				t.Error("a redirect was followed")
			}
			w.hits.Add(1)
			w.answer(rw, r, body)
		}))
		t.Cleanup(w.srv.Close)
		return w
	}
	forward := func(t *testing.T, w *worker, workerIDs ...string) (json.RawMessage, error) {
		store := &rpcTargets{}
		for _, id := range workerIDs {
			store.targets = append(store.targets, gateway.RPCTarget{WorkerID: id, BaseURL: w.srv.URL, Secrets: []string{secretA, secretB}})
		}
		f := NewForwarder(ForwarderConfig{Store: store, PollInterval: 10 * time.Millisecond})
		return f.Forward(t.Context(), &gateway.Call{API: "auth", Method: "ping", Params: json.RawMessage(`{"n":1}`), Timeout: 2 * time.Second})
	}
	// wantBadGateway checks that a call failed with bad_gateway after the
	// worker got hits requests.
	wantBadGateway := func(t *testing.T, err error, w *worker, hits int32) {
		t.Helper()
		if gateway.ErrorCode(err) != gateway.EBadGateway {
			t.Fatalf("Forward: %v; want bad_gateway", err)
		}
		if n := w.hits.Load(); n != hits {
			t.Fatalf("the worker got %d requests, want %d", n, hits)
		}
	}
	ok := func(rw http.ResponseWriter, r *http.Request, body []byte) {
		rw.Header().Set(HeaderWorkerID, "w1")
		rw.Header().Set("Content-Type", "application/json")
		_, _ = rw.Write([]byte(`{"result":"pong"}`))
	}

	t.Run("Signed", func(t *testing.T) {
		t.Parallel()
		w := newWorker(t, func(rw http.ResponseWriter, r *http.Request, body []byte) {
			id := r.Header.Get(webhook.HeaderID)
			for _, key := range [][]byte{keyA, keyB} {
				if err := webhook.Verify(key, r.Header, body, time.Now(), webhook.DefaultTolerance); err != nil {
					t.Errorf("a signature does not verify: %v", err)
				}
			}
			if !strings.HasPrefix(id, "auth/ping/") || strings.TrimPrefix(id, "auth/ping/") != r.Header.Get("Lightbus-Request-Id") {
				t.Errorf("webhook-id %q does not name the procedure and the request %q", id, r.Header.Get("Lightbus-Request-Id"))
			}
			if n := len(strings.Fields(r.Header.Get(webhook.HeaderSignature))); n != 2 {
				t.Errorf("%d signatures, want one per secret", n)
			}
			ok(rw, r, body)
		})
		if res, err := forward(t, w, "w1"); err != nil || string(res) != `"pong"` {
			t.Fatalf("Forward = %s, %v", res, err)
		}
	})

	for name, header := range map[string]string{"NoWorkerID": "", "AnotherWorker": "w2"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorker(t, func(rw http.ResponseWriter, r *http.Request, body []byte) {
				if header != "" {
					rw.Header().Set(HeaderWorkerID, header)
				}
				_, _ = rw.Write([]byte(`{"result":"not yours"}`))
			})
			// Two targets at the address: the call may have run, so it is
			// never sent to the second.
			res, err := forward(t, w, "w1", "w3")
			if res != nil {
				t.Fatalf("Forward took %s as the result", res)
			}
			wantBadGateway(t, err, w, 1)
		})
	}

	t.Run("SignatureRefusedSentOnceMore", func(t *testing.T) {
		t.Parallel()
		w := newWorker(t, func(rw http.ResponseWriter, r *http.Request, body []byte) {
			rw.Header().Set(HeaderWorkerID, "w1")
			rw.Header().Set("Content-Type", "application/problem+json")
			rw.WriteHeader(http.StatusUnauthorized)
			_, _ = rw.Write([]byte(`{"code":"unauthorized","status":401}`))
		})
		// The call, and once more after reading the secrets again.
		_, err := forward(t, w, "w1")
		wantBadGateway(t, err, w, 2)
		if !strings.Contains(gateway.ErrorMessage(err), "signature") {
			t.Fatalf("Forward = %v; want an error about the signature", err)
		}
	})

	t.Run("RedirectNotFollowed", func(t *testing.T) {
		t.Parallel()
		w := newWorker(t, func(rw http.ResponseWriter, r *http.Request, body []byte) {
			rw.Header().Set(HeaderWorkerID, "w1")
			http.Redirect(rw, r, "/elsewhere", http.StatusTemporaryRedirect)
		})
		_, err := forward(t, w, "w1")
		wantBadGateway(t, err, w, 1)
	})

	t.Run("AddressNotAllowed", func(t *testing.T) {
		t.Parallel()
		w := newWorker(t, ok)
		tenOnly, _ := gateway.ParseWorkerNetworks("10.0.0.0/8")
		store := &rpcTargets{targets: []gateway.RPCTarget{{WorkerID: "w1", BaseURL: w.srv.URL}}}
		f := NewForwarder(ForwarderConfig{Store: store, PollInterval: 10 * time.Millisecond, Networks: tenOnly})
		start := time.Now()
		_, err := f.Forward(t.Context(), &gateway.Call{API: "auth", Method: "ping", Params: json.RawMessage(`{}`), Timeout: 5 * time.Second})
		wantBadGateway(t, err, w, 0)
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Forward answered after %s; want at once", d)
		}
	})
}
