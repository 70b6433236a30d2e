package dispatch

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/bodyread"
	"github.com/lightbus-go/lightbus/internal/tracing"
	"github.com/lightbus-go/lightbus/internal/webhook"
)

var _ gateway.Forwarder = (*Forwarder)(nil)

// RPCStore finds the workers that can answer a call.
type RPCStore interface {
	// RPCTargets returns the live workers providing api (possibly none) and
	// the declared default timeout of api.method (0 when none is declared).
	RPCTargets(ctx context.Context, api, method string) ([]gateway.RPCTarget, time.Duration, error)
}

// ForwarderConfig configures a Forwarder.
type ForwarderConfig struct {
	Client         *http.Client
	DefaultTimeout time.Duration
	Logger         *slog.Logger
	MaxTimeout     time.Duration
	// MaxResultBytes bounds a worker's answer.
	MaxResultBytes int64
	// PollInterval is how often a call waiting for a worker looks again.
	PollInterval time.Duration
	Store        RPCStore
	// TargetTTL, when positive, caches each API's live workers for this
	// long, so that a call costs no database round trip. Workers whose
	// lease has ended are never called from the cache; a call that finds
	// none in the cache asks the store at once.
	TargetTTL time.Duration
	// StoreTimeout bounds the first look-up of a call's workers (a shorter
	// Lightbus-Timeout bounds it too), so a database that stops answering
	// gives 503 unavailable instead of a hanging call. 0 means 5 s.
	StoreTimeout time.Duration
	// Networks is where the default Client may connect (checked on each
	// resolved address); nil is the default policy. Unused with Client.
	Networks *gateway.WorkerNetworks
	// TracerProvider makes a client span of each request to a worker; nil
	// makes none. Either way the request carries the trace context of the
	// call's context (traceparent, tracestate).
	TracerProvider trace.TracerProvider
}

// Forwarder forwards RPCs to live workers, round robin.
type Forwarder struct {
	cfg     ForwarderConfig
	next    atomic.Uint64
	cache   sync.Map // targetKey → *targetEntry
	tracer  trace.Tracer
	tracing bool
	// transport sends the requests when the Forwarder made its own client
	// (see send).
	transport http.RoundTripper
}

// targetKey is an API and one of its methods.
type targetKey struct{ api, method string }

// targetEntry is a cached answer of RPCStore.RPCTargets.
type targetEntry struct {
	targets  []target
	declared time.Duration
	fetched  time.Time
}

// target is a worker to call, with its secrets decoded once for all the
// calls that the cache sends it.
type target struct {
	gateway.RPCTarget
	keys [][]byte // of Secrets; a secret that does not decode signs nothing
}

// newTargets decodes the secrets of ts.
func newTargets(ts []gateway.RPCTarget) []target {
	out := make([]target, len(ts))
	for i, t := range ts {
		out[i].RPCTarget = t
		for _, s := range t.Secrets {
			if key, err := webhook.DecodeSecret(s); err == nil {
				out[i].keys = append(out[i].keys, key)
			}
		}
	}
	return out
}

// NewForwarder returns a Forwarder, filling in defaults.
func NewForwarder(cfg ForwarderConfig) *Forwarder {
	var transport http.RoundTripper
	if cfg.Client == nil {
		cfg.Client = newHTTPClient(cfg.Networks)
		transport = cfg.Client.Transport
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DefaultTimeout <= 0 {
		cfg.DefaultTimeout = 10 * time.Second
	}
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = 5 * time.Minute
	}
	if cfg.MaxResultBytes <= 0 {
		cfg.MaxResultBytes = 8 << 20
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	if cfg.StoreTimeout <= 0 {
		cfg.StoreTimeout = 5 * time.Second
	}
	r := &Forwarder{cfg: cfg, transport: transport}
	r.tracer, r.tracing = tracer(cfg.TracerProvider)
	return r
}

// errRefused marks a request that provably never reached the worker.
var errRefused = errors.New("connection refused")

// errSignatureRefused marks a worker's 401 answer: it did not run the call
// because the signature did not verify, e.g. it holds a secret newer than
// the one this gateway cached.
var errSignatureRefused = errors.New("the worker refused the request's signature")

// HeaderWorkerID is the header a worker echoes its own id in on every
// answer; the gateway takes an RPC answer only from the worker it called.
const HeaderWorkerID = "Lightbus-Worker-Id"

// Forward implements gateway.Forwarder: it sends call to a live worker
// providing its API and returns the worker's result. While no worker is
// live it waits for one until the deadline. Errors: ENoWorker, ETimeout,
// ERemote (the handler's own error), EInvalid, ENotFound and EValidation
// (passed through from the worker), EBadGateway, EUnavailable.
func (r *Forwarder) Forward(ctx context.Context, call *gateway.Call) (json.RawMessage, error) {
	start := time.Now()
	targets, declared, ok := r.cached(call.API, call.Method, start)
	if !ok {
		var err error
		if targets, declared, err = r.firstLookup(ctx, call); err != nil {
			return nil, err
		}
	}
	timeout := r.cfg.DefaultTimeout
	if declared > 0 {
		timeout = declared
	}
	if call.Timeout > 0 {
		timeout = call.Timeout
	}
	timeout = min(timeout, r.cfg.MaxTimeout)
	deadline := start.Add(timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	reqID := newRequestID()
	refused := map[string]bool{}
	var blocked error // a worker's address the network policy refused
	resigned := false // the call was re-sent after a signature refusal
	for {
		live := targets[:0:0]
		now := time.Now()
		for _, t := range targets {
			if !refused[t.WorkerID] && (t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt)) {
				live = append(live, t)
			}
		}
		if len(live) > 0 {
			t := live[int(r.next.Add(1)%uint64(len(live)))]
			result, err := r.forward(ctx, t, call, deadline, reqID)
			if errors.Is(err, errRefused) {
				r.cfg.Logger.DebugContext(ctx, "worker refused connection", slog.String("worker_id", t.WorkerID))
				refused[t.WorkerID] = true
				continue
			}
			if errors.Is(err, errAddressNotAllowed) {
				// Another worker may be reachable; this one never will be.
				r.cfg.Logger.WarnContext(ctx, "worker address refused by the worker network policy", slog.String("worker_id", t.WorkerID), slog.String("error", err.Error()))
				refused[t.WorkerID] = true
				blocked = gateway.WrapError(gateway.EBadGateway, err, fmt.Sprintf("worker %s is at an address the gateway's worker network policy does not allow", t.WorkerID))
				continue
			}
			if errors.Is(err, errSignatureRefused) && !resigned {
				// The worker ran nothing. Its secret may have been rotated
				// since this gateway cached it: read it again, send once more.
				resigned = true
				r.cfg.Logger.InfoContext(ctx, "worker refused the signature; sending again with fresh secrets", slog.String("worker_id", t.WorkerID))
				if targets, _, err = r.targets(ctx, call.API, call.Method, true); err != nil {
					return nil, err
				}
				continue
			}
			if errors.Is(err, errSignatureRefused) {
				return nil, gateway.WrapError(gateway.EBadGateway, err, fmt.Sprintf("worker %s refused the gateway's signature", t.WorkerID))
			}
			if err != nil && ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
				return nil, gateway.Errorf(gateway.ETimeout, "worker %s did not answer %s.%s within %s", t.WorkerID, call.API, call.Method, timeout)
			}
			return result, err
		}
		if blocked != nil {
			return nil, blocked
		}
		select {
		case <-ctx.Done():
			if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
				return nil, gateway.Errorf(gateway.ENoWorker, "no live worker provides API %q (waited %s)", call.API, timeout)
			}
			return nil, ctx.Err()
		case <-time.After(r.cfg.PollInterval):
		}
		var err error
		targets, _, err = r.targets(ctx, call.API, call.Method, true)
		if err != nil {
			if ctx.Err() != nil {
				continue // the select above reports the deadline
			}
			return nil, err
		}
	}
}

// firstLookup asks the store for the workers of call, bounded by the
// store timeout (and call's own, when shorter).
func (r *Forwarder) firstLookup(ctx context.Context, call *gateway.Call) ([]target, time.Duration, error) {
	lookup := r.cfg.StoreTimeout
	if call.Timeout > 0 {
		lookup = min(lookup, call.Timeout)
	}
	lookupCtx, cancelLookup := context.WithTimeout(ctx, lookup)
	defer cancelLookup()
	targets, declared, err := r.targets(lookupCtx, call.API, call.Method, true)
	if err != nil {
		if errors.Is(lookupCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, 0, gateway.WrapError(gateway.EUnavailable, err, fmt.Sprintf("the database did not answer within %s", lookup))
		}
		return nil, 0, err
	}
	return targets, declared, nil
}

// cached returns the workers providing api and the declared timeout of
// api.method from the cache, when it is fresh and holds a live worker.
func (r *Forwarder) cached(api, method string, now time.Time) ([]target, time.Duration, bool) {
	if r.cfg.TargetTTL <= 0 {
		return nil, 0, false
	}
	v, ok := r.cache.Load(targetKey{api, method})
	if !ok {
		return nil, 0, false
	}
	e := v.(*targetEntry)
	if now.Sub(e.fetched) >= r.cfg.TargetTTL {
		return nil, 0, false
	}
	for _, t := range e.targets {
		if t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt) {
			return e.targets, e.declared, true
		}
	}
	return nil, 0, false
}

// targets returns the workers providing api and the declared timeout of
// api.method: from the cache when it is fresh and holds a live worker
// (unless fresh is set), else from the store, refreshing the cache.
func (r *Forwarder) targets(ctx context.Context, api, method string, fresh bool) ([]target, time.Duration, error) {
	now := time.Now()
	if !fresh {
		if targets, declared, ok := r.cached(api, method, now); ok {
			return targets, declared, nil
		}
	}
	found, declared, err := r.cfg.Store.RPCTargets(ctx, api, method)
	if err != nil {
		return nil, 0, err
	}
	targets := newTargets(found)
	if r.cfg.TargetTTL <= 0 {
		return targets, declared, nil
	}
	key := targetKey{api, method}
	if len(targets) > 0 {
		r.cache.Store(key, &targetEntry{targets: targets, declared: declared, fetched: now})
	} else {
		// Only APIs with workers are kept: names nobody serves never grow
		// the cache.
		r.cache.Delete(key)
	}
	return targets, declared, nil
}

func (r *Forwarder) forward(ctx context.Context, t target, call *gateway.Call, deadline time.Time, reqID string) (json.RawMessage, error) {
	u := t.BaseURL + "/lightbus/rpc/" + url.PathEscape(call.API) + "/" + url.PathEscape(call.Method)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(call.Params))
	if err != nil {
		return nil, gateway.WrapError(gateway.EBadGateway, err, fmt.Sprintf("worker %s has an unusable base URL", t.WorkerID))
	}
	req.Header["Content-Type"] = []string{"application/json"}
	req.Header["Lightbus-Deadline"] = []string{deadline.UTC().Format(time.RFC3339Nano)}
	req.Header["Lightbus-Request-Id"] = []string{reqID}
	signRPC(req.Header, t.keys, call, reqID, time.Now())
	span := noSpan
	if r.tracing {
		var spanCtx context.Context
		spanCtx, span = r.tracer.Start(ctx, "rpc forward", trace.WithSpanKind(trace.SpanKindClient))
		if span.IsRecording() {
			span.SetAttributes(attribute.String("rpc.system", "lightbus"), attribute.String("rpc.service", call.API),
				attribute.String("rpc.method", call.Method), attribute.String("lightbus.worker_id", t.WorkerID),
				attribute.String("lightbus.request_id", reqID), attribute.String("server.address", req.URL.Hostname()))
		}
		tracing.Inject(spanCtx, req.Header)
	} else {
		tracing.Inject(ctx, req.Header) // the caller's context, passed on
	}
	resp, err := r.send(req)
	endAttemptSpan(span, resp, err)
	if err != nil {
		if errors.Is(err, errAddressNotAllowed) {
			return nil, err
		}
		var opErr *net.OpError
		if errors.As(err, &opErr) && opErr.Op == "dial" {
			return nil, errRefused
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, gateway.WrapError(gateway.EBadGateway, err, fmt.Sprintf("worker %s failed before answering %s.%s", t.WorkerID, call.API, call.Method))
	}
	defer resp.Body.Close()
	body, err := bodyread.ReadAll(io.LimitReader(resp.Body, r.cfg.MaxResultBytes+1), resp.ContentLength, r.cfg.MaxResultBytes+1)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, gateway.WrapError(gateway.EBadGateway, err, fmt.Sprintf("worker %s failed while answering %s.%s", t.WorkerID, call.API, call.Method))
	}
	if int64(len(body)) > r.cfg.MaxResultBytes {
		return nil, gateway.Errorf(gateway.EBadGateway, "worker %s answered more than %d bytes", t.WorkerID, r.cfg.MaxResultBytes)
	}
	// Whatever answered must be the worker called: another process at its
	// address (it died and the port was reused) is never taken at its word.
	// The call may have run, so it is not sent elsewhere.
	if got := resp.Header.Get(HeaderWorkerID); got != t.WorkerID {
		if got == "" {
			return nil, gateway.Errorf(gateway.EBadGateway, "the answer from worker %s's address carries no %s header: it is not from the worker (the call may have run)", t.WorkerID, HeaderWorkerID)
		}
		return nil, gateway.Errorf(gateway.EBadGateway, "the answer from worker %s's address names worker %q: it is not from the worker called (the call may have run)", t.WorkerID, truncate(got, 128))
	}
	if resp.StatusCode == http.StatusUnauthorized && len(t.Secrets) > 0 {
		return nil, errSignatureRefused
	}
	return decodeWorkerAnswer(t.WorkerID, resp, body)
}

// send sends req to a worker: through the Forwarder's own transport when
// it made its client (which follows no redirects: the answer is taken as it
// is, as http.Client.Do with that client would), so that a call skips what
// the client does for redirects; through cfg.Client otherwise.
func (r *Forwarder) send(req *http.Request) (*http.Response, error) {
	if r.transport != nil {
		return r.transport.RoundTrip(req)
	}
	return r.cfg.Client.Do(req)
}

// signRPC signs an RPC request the Standard Webhooks way with each of the
// worker's keys (of its current secret and, during an overlap, the previous
// one). The webhook-id names the procedure and the call, so that a signed
// request cannot be replayed to another procedure: "{api}/{method}/{request
// id}". A worker without secrets gets the request unsigned.
func signRPC(h http.Header, keys [][]byte, call *gateway.Call, reqID string, now time.Time) {
	if len(keys) == 0 {
		return
	}
	id := call.API + "/" + call.Method + "/" + reqID
	ts := strconv.FormatInt(now.Unix(), 10)
	h[webhook.HeaderID] = []string{id}
	h[webhook.HeaderTimestamp] = []string{ts}
	h[webhook.HeaderSignature] = []string{webhook.SignAll(keys, id, ts, call.Params)}
}

// truncate shortens s to at most n bytes, for quoting what a peer sent.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// decodeWorkerAnswer maps a worker's answer to a result or a gateway error.
func decodeWorkerAnswer(workerID string, resp *http.Response, body []byte) (json.RawMessage, error) {
	if resp.StatusCode == http.StatusOK {
		if result, ok := resultOf(body); ok {
			return result, nil
		}
		var answer struct {
			Result json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(body, &answer); err != nil || answer.Result == nil {
			return nil, gateway.Errorf(gateway.EBadGateway, "worker %s answered 200 without a JSON {\"result\": ...} body", workerID)
		}
		return answer.Result, nil
	}
	if mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mediaType == "application/problem+json" {
		var p struct {
			Code      string              `json:"code"`
			Detail    string              `json:"detail"`
			Title     string              `json:"title"`
			ErrorType string              `json:"error_type"`
			Message   string              `json:"message"`
			Errors    []gateway.Violation `json:"errors"`
		}
		if err := json.Unmarshal(body, &p); err == nil {
			msg := p.Detail
			if msg == "" {
				msg = p.Title
			}
			switch p.Code {
			case gateway.ERemote:
				if msg == "" {
					msg = "the RPC handler returned an error"
				}
				return nil, &gateway.Error{Code: gateway.ERemote, Message: msg, ErrorType: p.ErrorType, RemoteMessage: p.Message}
			case gateway.EInvalid:
				// The handler refused its parameters: its error's type
				// and message pass through, as with remote_error.
				return nil, &gateway.Error{Code: p.Code, Message: msg, ErrorType: p.ErrorType, RemoteMessage: p.Message, Violations: p.Errors}
			case gateway.ENotFound, gateway.EValidation:
				return nil, &gateway.Error{Code: p.Code, Message: msg, Violations: p.Errors}
			}
		}
	}
	return nil, gateway.Errorf(gateway.EBadGateway, "worker %s answered %d, which is not part of the protocol", workerID, resp.StatusCode)
}

// resultOf returns X of a body {"result":X} (the answer workers send),
// scanned once and not copied; ok is false for any other body, which
// json.Unmarshal then reads. When X is valid JSON, the body is an object
// with one member, "result", whose value is X.
func resultOf(body []byte) (result json.RawMessage, ok bool) {
	const head = `{"result":`
	b := bytes.TrimSpace(body)
	if len(b) < len(head)+2 || string(b[:len(head)]) != head || b[len(b)-1] != '}' {
		return nil, false
	}
	x := bytes.TrimSpace(b[len(head) : len(b)-1])
	if !json.Valid(x) {
		return nil, false
	}
	return x, true
}

func newRequestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
