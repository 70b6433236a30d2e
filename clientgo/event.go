package lightbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/lightbus-go/lightbus/internal/webhook"
)

// FireResult is the gateway's answer to a fire: the event is durable.
type FireResult struct {
	// ID is the event's id, a UUIDv7: ids sort by creation time.
	ID string `json:"id"`
	// API is the event's API, e.g. "auth".
	API string `json:"api"`
	// Event is the event's name, e.g. "user_registered".
	Event string `json:"event"`
	// CreatedAt is when the gateway stored the event.
	CreatedAt time.Time `json:"created_at"`
	// Deliveries is how many listener groups the event was queued for.
	Deliveries int `json:"deliveries"`
	// Repeat is true when the gateway had already stored this fire (the
	// same Idempotency-Key, e.g. a retry whose first answer was lost): the
	// result is the original event's.
	Repeat bool `json:"repeat"`
	// Warnings says what the gateway accepted but finds suspect, one
	// sentence each: today, an event that its API's schema does not
	// declare, often a typo ("did you mean ..."). Empty when none.
	Warnings []string `json:"warnings,omitempty"`
}

// Fire fires the event name ("auth.user_registered") with params, which
// must encode to a JSON object (nil sends {}). A nil error means the gateway
// stored the event and queued its deliveries: it will not be lost.
//
// Fire retries transport failures and 502, 503 and 504 answers a few times
// with backoff (honouring Retry-After), sending the same Idempotency-Key on
// every try so that the gateway stores the event once. Other answers are
// returned at once as *Error (CodeValidation, CodeInvalid, ...).
func (b *Bus) Fire(ctx context.Context, name string, params any, opts ...CallOption) (FireResult, error) {
	api, event, err := splitName("event", name, false)
	if err != nil {
		return FireResult{}, fmt.Errorf("lightbus: fire: %w", err)
	}
	body, err := encodeParams(params)
	if err != nil {
		return FireResult{}, fmt.Errorf("lightbus: fire %s: %w", name, err)
	}
	var cc callConfig
	for _, opt := range opts {
		opt(&cc)
	}
	if cc.idempotencyKey == "" {
		cc.idempotencyKey = newUUID()
	}
	send := chain(b.sendFire, b.fireMW)
	return send(ctx, FireRequest{API: api, Event: event, Params: body, IdempotencyKey: cc.idempotencyKey})
}

// sendFire is the innermost FireFunc: it sends the fire, retrying.
func (b *Bus) sendFire(ctx context.Context, req FireRequest) (FireResult, error) {
	name := req.API + "." + req.Event
	header := http.Header{"Idempotency-Key": {req.IdempotencyKey}}
	b.injectTrace(ctx, header)
	for attempt := 1; ; attempt++ {
		var res FireResult
		err := b.do(ctx, http.MethodPost, "/v1/events/"+req.API+"/"+req.Event, nil, req.Params, header, &res)
		if err == nil {
			return res, nil
		}
		if attempt >= b.fireAttempts || !retryable(ctx, err) {
			return FireResult{}, fmt.Errorf("lightbus: fire %s: %w", name, err)
		}
		delay := b.backoff(attempt)
		var lerr *Error
		if errors.As(err, &lerr) && lerr.retryAfter > delay {
			delay = min(lerr.retryAfter, b.retryMax)
		}
		b.log.Warn("lightbus: fire failed, retrying", "event", name, "attempt", attempt, "retry_in", delay, "error", err)
		if !sleep(ctx, delay) {
			return FireResult{}, fmt.Errorf("lightbus: fire %s: %w (after: %w)", name, ctx.Err(), err)
		}
	}
}

// retryable reports whether a failed fire may succeed when sent again.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, errBadResponse) {
		return false
	}
	var lerr *Error
	if errors.As(err, &lerr) {
		switch lerr.Status {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	return true // the request or its answer was lost on the way
}

// backoff returns the delay before retry number attempt (from 1): doubling
// from retryBase up to retryMax, with ±20% jitter.
func (b *Bus) backoff(attempt int) time.Duration {
	d := b.retryBase << min(attempt-1, 20)
	if d <= 0 || d > b.retryMax {
		d = b.retryMax
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// sleep waits for d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// EventMessage is one delivery of an event to a listener.
type EventMessage struct {
	// ID is the event's id, the same on every attempt: de-duplicate by it.
	ID string
	// API is the event's API, e.g. "customers".
	API string
	// Event is the event's name, e.g. "new_customer".
	Event string
	// Time is when the event was fired.
	Time time.Time
	// Attempt is this delivery attempt's number, from 1.
	Attempt int
	// Params are the event's parameters, a JSON object.
	Params json.RawMessage
}

// ListenerFunc handles one delivered event. A nil error completes the
// delivery. An error (or a panic) goes through the group's error policy
// ([OnError]): by default the gateway retries the delivery with backoff
// until the group's maximum attempts, after which the delivery is dead.
type ListenerFunc func(ctx context.Context, ev EventMessage) error

// eventDecl is the wire form of an event declaration.
type eventDecl struct {
	Name         string          `json:"name"`
	ParamsSchema json.RawMessage `json:"params_schema,omitempty"`
}

// listenerSet is a listener group's handlers in this worker.
type listenerSet struct {
	handlers map[string]ListenerFunc // by "api.event" or "api.*"
	key      []byte                  // signing key from the latest registration
	policy   *policyDecl             // from the latest Listen with WithPolicy
	since    string                  // from the latest Listen with StartFrom
	onError  ErrorPolicy             // from the latest Listen with OnError
}

// DeclareEvent declares that this service fires the event name
// ("auth.user_registered"), so the worker registers it as part of the API.
// It panics if name is not api.event.
func (b *Bus) DeclareEvent(name string) {
	b.declareEvent(name, eventDecl{})
}

func (b *Bus) declareEvent(name string, decl eventDecl) {
	api, event := mustSplitName("event", name, false)
	decl.Name = event
	b.mu.Lock()
	defer b.mu.Unlock()
	b.api(api).events[event] = decl
}

// Listen subscribes the listener group (this service, listener) to event
// ("customers.new_customer", or "customers.*" for every event of the API)
// and runs fn for each delivery. Several calls with the same listener name
// add events to the same group, served at POST /lightbus/events/{listener};
// every worker of the service that registers the group shares its
// deliveries. Call Listen where the Bus is created, in the bus package's
// constructor (see "Registering handlers and listeners" in the package
// doc); one made while the worker runs reaches the gateway with its next
// heartbeat. It panics on a bad name or when the group already listens
// to event.
//
// The worker verifies each delivery's Standard Webhooks signature (401 when
// missing, wrong or older than webhook.DefaultTolerance), then answers 204
// when fn returns nil. When fn fails or panics, the group's error policy
// ([OnError]) decides: by default ([RetryThroughGateway]) the answer is 400
// invalid when the error wraps [ErrInvalidParams] and 500 remote_error
// otherwise, and the gateway retries; with [AcknowledgeAndLog] the error is
// logged and the answer is 204.
//
// Options such as [WithPolicy] and [OnError] apply to the whole group; the
// latest Listen call that sets one wins.
func (b *Bus) Listen(event, listener string, fn ListenerFunc, opts ...ListenOption) {
	mustSplitName("event", event, true)
	if !isIdent(listener) {
		panic(fmt.Sprintf("lightbus: Listen %s: invalid listener name %q: want an identifier", event, listener))
	}
	if fn == nil {
		panic("lightbus: Listen " + event + ": nil listener")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ls := b.listeners[listener]
	if ls == nil {
		ls = &listenerSet{handlers: map[string]ListenerFunc{}}
		b.listeners[listener] = ls
	}
	if _, dup := ls.handlers[event]; dup {
		panic(fmt.Sprintf("lightbus: Listen %s: listener %s already listens to it", event, listener))
	}
	ls.handlers[event] = fn
	for _, o := range opts {
		o(ls)
	}
}

// ListenOption adjusts a listener group in [Bus.Listen].
type ListenOption func(*listenerSet)

// Policy is a listener group's delivery policy at the gateway (see the
// gateway's docs/DELIVERY.md). A zero field means the gateway's default.
type Policy struct {
	// MaxAttempts is the number of attempts before a delivery is dead.
	MaxAttempts int
	// BackoffBase is the wait after the first failed attempt; each further
	// failure doubles it.
	BackoffBase time.Duration
	// BackoffMax caps the wait between attempts.
	BackoffMax time.Duration
	// Timeout bounds one delivery request.
	Timeout time.Duration
	// MaxInFlight bounds the group's concurrent deliveries (per gateway
	// replica).
	MaxInFlight int
	// Ordered makes the group's deliveries one at a time in commit order
	// (see [Ordered]).
	Ordered bool
}

// decl returns p's wire form.
func (p Policy) decl() *policyDecl {
	d := &policyDecl{MaxAttempts: p.MaxAttempts, TimeoutMS: p.Timeout.Milliseconds(), MaxInFlight: p.MaxInFlight, Ordered: p.Ordered}
	if p.BackoffBase > 0 || p.BackoffMax > 0 {
		d.Backoff = &backoffDecl{BaseMS: p.BackoffBase.Milliseconds(), MaxMS: p.BackoffMax.Milliseconds()}
	}
	return d
}

// MarshalJSON writes p in its wire form (openapi.yaml's ListenerPolicy).
func (p Policy) MarshalJSON() ([]byte, error) { return json.Marshal(p.decl()) }

// UnmarshalJSON reads p from its wire form, as GET /v1/listeners shows it.
func (p *Policy) UnmarshalJSON(b []byte) error {
	var d policyDecl
	if err := json.Unmarshal(b, &d); err != nil {
		return err
	}
	*p = Policy{MaxAttempts: d.MaxAttempts, Timeout: time.Duration(d.TimeoutMS) * time.Millisecond, MaxInFlight: d.MaxInFlight, Ordered: d.Ordered}
	if d.Backoff != nil {
		p.BackoffBase = time.Duration(d.Backoff.BaseMS) * time.Millisecond
		p.BackoffMax = time.Duration(d.Backoff.MaxMS) * time.Millisecond
	}
	return nil
}

// policyDecl is the wire form of a Policy.
type policyDecl struct {
	MaxAttempts int          `json:"max_attempts,omitempty"`
	Backoff     *backoffDecl `json:"backoff,omitempty"`
	TimeoutMS   int64        `json:"timeout_ms,omitempty"`
	MaxInFlight int          `json:"max_in_flight,omitempty"`
	Ordered     bool         `json:"ordered,omitempty"`
}

type backoffDecl struct {
	BaseMS int64 `json:"base_ms,omitempty"`
	MaxMS  int64 `json:"max_ms,omitempty"`
}

// ErrorPolicy is what a listener group's worker does when a listener
// returns an error or panics; set it with [OnError].
type ErrorPolicy int

const (
	// RetryThroughGateway, the default, answers the delivery with an error
	// status (400 invalid when the error wraps [ErrInvalidParams], else 500
	// remote_error): the gateway retries it with the group's backoff, and
	// after the group's max_attempts ([WithPolicy]) the delivery is dead,
	// listed and redrivable (see [Bus.DeadLetters]). Use it when a later
	// attempt may succeed: a dependency is down, a call timed out.
	RetryThroughGateway ErrorPolicy = iota
	// AcknowledgeAndLog logs the error at error level (with the event id,
	// the listener and the attempt) and answers the delivery 204, so the
	// gateway records it delivered and never sends it again. Use it when a
	// retry cannot help and the event may be dropped: best-effort
	// notifications, caches, metrics.
	AcknowledgeAndLog
)

// String returns the policy's name, as logs show it.
func (p ErrorPolicy) String() string {
	switch p {
	case RetryThroughGateway:
		return "retry_through_gateway"
	case AcknowledgeAndLog:
		return "acknowledge_and_log"
	}
	return fmt.Sprintf("ErrorPolicy(%d)", int(p))
}

// OnError sets what the worker does when a listener of the group returns
// an error or panics (listener middleware included): [RetryThroughGateway]
// (the default) or [AcknowledgeAndLog]. It is the worker's own choice: the
// gateway sees only the answer.
//
//	bus.Listen("orders.shipped", "notify_slack", notifySlack, lightbus.OnError(lightbus.AcknowledgeAndLog))
//
// It panics on an unknown policy.
func OnError(p ErrorPolicy) ListenOption {
	if p != RetryThroughGateway && p != AcknowledgeAndLog {
		panic(fmt.Sprintf("lightbus: OnError: unknown error policy %d", int(p)))
	}
	return func(ls *listenerSet) { ls.onError = p }
}

// StartFrom sets where the group starts when the gateway creates it: "now"
// (the default: only events fired from now on), "earliest" (every retained
// event), an RFC 3339 time, or an event id (that event and every later
// one). It has no effect on a group that already exists; see [Bus.Replay]
// to rewind one.
func StartFrom(since string) ListenOption {
	return func(ls *listenerSet) { ls.since = since }
}

// WithPolicy declares the group's delivery policy when the worker registers.
// The gateway keeps the latest registration's policy; a registration
// without one puts the group back on the gateway's defaults.
func WithPolicy(p Policy) ListenOption {
	d := p.decl()
	return func(ls *listenerSet) {
		c := *d
		if ls.policy != nil && ls.policy.Ordered {
			c.Ordered = true // Ordered, before WithPolicy, holds
		}
		ls.policy = &c
	}
}

// Ordered makes the group an ordered group: the gateway delivers its events
// one at a time, in the order their fires committed, and a delivery that
// fails holds back the ones after it until it succeeds or is dead (then it
// is listed dead and the next one is delivered). The group's MaxAttempts
// and backoff still apply to the failing delivery; MaxInFlight does not.
// It costs throughput: one request at a time, each waiting for the one
// before (see the gateway's docs/DELIVERY.md, "Ordered groups"). Every
// worker of the group should declare it: the latest registration wins.
//
//	bus.Listen("accounts.entry_posted", "ledger", postEntry, lightbus.Ordered())
func Ordered() ListenOption {
	return func(ls *listenerSet) {
		if ls.policy == nil {
			ls.policy = &policyDecl{}
		}
		ls.policy.Ordered = true
	}
}

// serveDelivery answers POST /lightbus/events/{listener}.
func (b *Bus) serveDelivery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(headerWorkerID, b.workerID)
	listener := r.PathValue("listener")
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	ceType := r.Header.Get("ce-type")
	b.mu.RLock()
	ls := b.listeners[listener]
	var key []byte
	var fn ListenerFunc
	var onError ErrorPolicy
	if ls != nil {
		key = ls.key
		onError = ls.onError
		fn = ls.handlers[ceType]
		if fn == nil {
			if i := strings.LastIndexByte(ceType, '.'); i > 0 {
				fn = ls.handlers[ceType[:i]+".*"]
			}
		}
	}
	b.mu.RUnlock()
	if !b.runs(FeatureEvents) {
		ls = nil
	}
	if ls == nil {
		writeProblem(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("this worker has no listener %q", listener), nil)
		return
	}
	if !b.verifyGateway(w, r, body, key, "", "delivery", "listener", listener, "event_id", r.Header.Get(webhook.HeaderID)) {
		return
	}
	api, event, err := splitName("event", ceType, false)
	if err != nil {
		writeProblem(w, http.StatusBadRequest, CodeInvalid, "bad ce-type: "+err.Error(), nil)
		return
	}
	if fn == nil {
		writeProblem(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("listener %s does not listen to %s", listener, ceType), nil)
		return
	}
	ev := EventMessage{ID: r.Header.Get("ce-id"), API: api, Event: event, Params: trimSpace(body)}
	if ev.ID == "" {
		ev.ID = r.Header.Get(webhook.HeaderID)
	}
	ev.Time, _ = time.Parse(time.RFC3339Nano, r.Header.Get("ce-time"))
	ev.Attempt, _ = strconv.Atoi(r.Header.Get("Lightbus-Attempt"))
	select {
	case b.slots <- struct{}{}:
		defer func() { <-b.slots }()
	default:
		w.Header().Set("Retry-After", "1")
		writeProblem(w, http.StatusServiceUnavailable, CodeUnavailable, "the worker is busy: try again later", nil)
		return
	}
	log := b.log.With("listener", listener, "event", ceType, "event_id", ev.ID, "attempt", ev.Attempt)
	start := time.Now()
	ctx := context.WithValue(b.extractTrace(r.Context(), r.Header), deliveryKey{}, DeliveryInfo{
		EventID: ev.ID, API: api, Event: event, Attempt: ev.Attempt, Service: b.service, Listener: listener, Time: ev.Time,
	})
	fn = chain(fn, b.listenerMW)
	_, err = callHandler(ctx, func(ctx context.Context, _ json.RawMessage) (any, error) {
		return nil, fn(ctx, ev)
	}, nil)
	switch {
	case err == nil:
		log.Debug("lightbus: event handled", "duration", time.Since(start))
		w.WriteHeader(http.StatusNoContent)
	case onError == AcknowledgeAndLog:
		logHandlerError(log.With("on_error", onError), "lightbus: listener failed: acknowledged, the event will not be delivered again", errorType(err), err, time.Since(start))
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, ErrInvalidParams):
		log.Error("lightbus: listener rejected the event's parameters", "error", err)
		writeProblem(w, http.StatusBadRequest, CodeInvalid, err.Error(), invalidParamsExtra(err))
	default:
		typ := errorType(err)
		logHandlerError(log, "lightbus: listener failed", typ, err, time.Since(start))
		writeProblem(w, http.StatusInternalServerError, CodeRemoteError, fmt.Sprintf("listener %s failed: %s: %s", listener, typ, err), map[string]any{
			"error_type": typ,
			"message":    err.Error(),
		})
	}
}

// BatchEvent is one event of [Bus.FireBatch].
type BatchEvent struct {
	// Name is the event, "api.event".
	Name string
	// Params must encode to a JSON object (nil sends {}).
	Params any
	// IdempotencyKey is the event's key; empty makes a random one, sent on
	// every retry of the batch.
	IdempotencyKey string
}

// FireBatch fires events in one request and one gateway transaction: all
// are stored or none (POST /v1/events). The results are in the order of
// events; a result's Repeat is true when its idempotency key had been used
// already. An invalid event fails the whole batch with an *Error with
// CodeInvalid whose Violations point at each bad event ("/3/event").
// FireBatch retries like [Bus.Fire]; every event keeps its key across
// retries, so a retried batch stores each event once.
func (b *Bus) FireBatch(ctx context.Context, events []BatchEvent) ([]FireResult, error) {
	type item struct {
		API            string          `json:"api"`
		Event          string          `json:"event"`
		Params         json.RawMessage `json:"params"`
		IdempotencyKey string          `json:"idempotency_key"`
	}
	items := make([]item, len(events))
	for i, e := range events {
		api, event, err := splitName("event", e.Name, false)
		if err != nil {
			return nil, fmt.Errorf("lightbus: fire batch: event %d: %w", i, err)
		}
		params, err := encodeParams(e.Params)
		if err != nil {
			return nil, fmt.Errorf("lightbus: fire batch: event %d (%s): %w", i, e.Name, err)
		}
		key := e.IdempotencyKey
		if key == "" {
			key = newUUID()
		}
		items[i] = item{API: api, Event: event, Params: params, IdempotencyKey: key}
	}
	body, err := json.Marshal(items)
	if err != nil {
		return nil, fmt.Errorf("lightbus: fire batch: %w", err)
	}
	header := http.Header{}
	b.injectTrace(ctx, header)
	for attempt := 1; ; attempt++ {
		var out struct {
			Results []FireResult `json:"results"`
		}
		err := b.do(ctx, http.MethodPost, "/v1/events", nil, body, header, &out)
		if err == nil {
			return out.Results, nil
		}
		if attempt >= b.fireAttempts || !retryable(ctx, err) {
			return nil, fmt.Errorf("lightbus: fire batch of %d: %w", len(events), err)
		}
		delay := b.backoff(attempt)
		var lerr *Error
		if errors.As(err, &lerr) && lerr.retryAfter > delay {
			delay = min(lerr.retryAfter, b.retryMax)
		}
		b.log.Warn("lightbus: fire batch failed, retrying", "events", len(events), "attempt", attempt, "retry_in", delay, "error", err)
		if !sleep(ctx, delay) {
			return nil, fmt.Errorf("lightbus: fire batch of %d: %w (after: %w)", len(events), ctx.Err(), err)
		}
	}
}
