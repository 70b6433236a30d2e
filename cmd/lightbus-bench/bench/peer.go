package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// NewHTTPClient returns a client tuned for many concurrent requests to one
// host: enough idle connections that none is closed and re-dialled.
func NewHTTPClient(concurrency int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = max(1024, 2*concurrency)
	t.MaxIdleConnsPerHost = max(256, 2*concurrency)
	t.IdleConnTimeout = 90 * time.Second
	t.DisableCompression = true
	return &http.Client{Transport: t}
}

// Peer is the tool's own worker: an HTTP server on loopback that answers
// deliveries with 204 (recording when each event id arrived) and RPCs with
// a fixed result, registered with the gateway as a throwaway service.
type Peer struct {
	// Service is the throwaway service's name; API is the API it provides
	// and its listener groups subscribe to.
	Service, API string
	// URL is the peer's base URL.
	URL string
	// Token is the API key its registrations and deregistration send to
	// the gateway (empty: none).
	Token string
	// Ordered registers its listener groups as ordered groups.
	Ordered bool

	gateway  string
	client   *http.Client
	workerID string
	srv      *http.Server
	stop     chan struct{}
	stopped  sync.WaitGroup

	mu       sync.Mutex
	received map[string]time.Time
	count    int
	notify   chan struct{}
}

// peerRPCResult is what the peer answers every RPC with.
var peerRPCResult = []byte(`{"result":{"ok":true}}`)

// NewPeer starts a peer's HTTP server on 127.0.0.1.
func NewPeer(gatewayURL string, client *http.Client) (*Peer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	suffix := randomHex(4)
	p := &Peer{
		Service:  "bench_" + suffix,
		API:      "bench_" + suffix,
		URL:      "http://" + ln.Addr().String(),
		gateway:  strings.TrimRight(gatewayURL, "/"),
		client:   client,
		workerID: "bench-" + suffix,
		stop:     make(chan struct{}),
		received: map[string]time.Time{},
		notify:   make(chan struct{}, 1),
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// ServeHTTP answers deliveries and RPCs.
func (p *Peer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	if strings.HasPrefix(r.URL.Path, "/lightbus/rpc/") {
		// The gateway takes an RPC answer only from the worker it called.
		w.Header()["Lightbus-Worker-Id"] = []string{p.workerID}
		w.Header()["Content-Type"] = []string{"application/json"}
		_, _ = w.Write(peerRPCResult)
		return
	}
	now := time.Now()
	if id := r.Header.Get("Ce-Id"); id != "" {
		p.mu.Lock()
		if _, dup := p.received[id]; !dup {
			p.received[id] = now
			p.count++
		}
		p.mu.Unlock()
		select {
		case p.notify <- struct{}{}:
		default:
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// Register registers the peer with groups listener groups subscribed to
// API.ping and, with rpc, the API with one RPC "echo"; it heartbeats until
// Close.
func (p *Peer) Register(ctx context.Context, groups int, rpc bool) error {
	type listener struct {
		Name   string         `json:"name"`
		Events []string       `json:"events"`
		Path   string         `json:"path"`
		Policy map[string]any `json:"policy,omitempty"`
	}
	reg := map[string]any{"service": p.Service, "base_url": p.URL, "lease_ttl_ms": 30000}
	listeners := []listener{}
	for i := range groups {
		name := fmt.Sprintf("g%d", i)
		l := listener{Name: name, Events: []string{p.API + ".ping"}, Path: "/events/" + name}
		if p.Ordered {
			l.Policy = map[string]any{"ordered": true}
		}
		listeners = append(listeners, l)
	}
	reg["listeners"] = listeners
	apis := []map[string]any{}
	if rpc {
		apis = append(apis, map[string]any{"name": p.API, "events": []any{}, "rpcs": []map[string]any{{"name": "echo"}}})
	}
	reg["apis"] = apis
	body, err := json.Marshal(reg)
	if err != nil {
		return err
	}
	put := func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, p.gateway+"/v1/workers/"+p.workerID, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		p.authorize(req)
		resp, err := p.client.Do(req)
		if err != nil {
			return fmt.Errorf("register the bench worker: %w", err)
		}
		defer resp.Body.Close()
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("register the bench worker: gateway answered %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
		}
		return nil
	}
	if err := put(ctx); err != nil {
		return err
	}
	p.stopped.Add(1)
	go func() {
		defer p.stopped.Done()
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-tick.C:
				hctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_ = put(hctx)
				cancel()
			}
		}
	}()
	return nil
}

// Received returns when the event id was delivered, if it was.
func (p *Peer) Received(id string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.received[id]
	return t, ok
}

// Count returns how many distinct events were delivered.
func (p *Peer) Count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}

// WaitCount waits until at least n distinct events were delivered, or
// timeout passes with no new delivery; it returns the count reached.
func (p *Peer) WaitCount(ctx context.Context, n int, idle time.Duration) int {
	for {
		c := p.Count()
		if c >= n {
			return c
		}
		t := time.NewTimer(idle)
		select {
		case <-ctx.Done():
			t.Stop()
			return p.Count()
		case <-p.notify:
			t.Stop()
		case <-t.C:
			return p.Count()
		}
	}
}

// Close deregisters the peer (its listener groups stop receiving) and
// stops its server.
func (p *Peer) Close(ctx context.Context) error {
	close(p.stop)
	p.stopped.Wait()
	var err error
	req, rerr := http.NewRequestWithContext(ctx, http.MethodDelete, p.gateway+"/v1/workers/"+p.workerID, nil)
	if rerr == nil {
		p.authorize(req)
		resp, derr := p.client.Do(req)
		if derr != nil {
			err = derr
		} else {
			resp.Body.Close()
		}
	}
	_ = p.srv.Shutdown(ctx)
	return err
}

// authorize adds the peer's token to a request to the gateway.
func (p *Peer) authorize(req *http.Request) {
	if p.Token != "" {
		req.Header["Authorization"] = bearer(p.Token)
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
