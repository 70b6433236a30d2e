package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/tracing"
	"github.com/lightbus-go/lightbus/internal/webhook"
)

// Delivery job identity.
const (
	// DeliveryKind is the River job kind of a delivery.
	DeliveryKind = "lightbus.delivery"
	// QueueDelivery is the River queue deliveries run in.
	QueueDelivery = "lightbus_delivery"
)

// DeliveryArgs are the River job args of one event's delivery to one
// listener group.
type DeliveryArgs struct {
	EventID  string `json:"event_id"`
	Service  string `json:"service"`
	Listener string `json:"listener"`
	// TimeoutMS is the group's request timeout when the delivery was
	// queued (0: the gateway default). It bounds the job, so that River
	// rescues a delivery of a crashed gateway soon after it could last have
	// been running.
	TimeoutMS int `json:"timeout_ms,omitempty"`
}

// Kind implements river.JobArgs.
func (DeliveryArgs) Kind() string { return DeliveryKind }

// InsertOpts implements river.JobArgsWithInsertOpts: deliveries have their
// own queue so that they never wait behind other work.
func (DeliveryArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: QueueDelivery} }

// DeliveryStore reads what deliveries need.
type DeliveryStore interface {
	// DeliveryTarget returns the event, the group's secret and policy, and
	// its live endpoints (possibly none). Returns ErrNotFound when the
	// event or the group no longer exists.
	DeliveryTarget(ctx context.Context, eventID, service, listener string) (*gateway.DeliveryTarget, error)

	// RemoveEndpoint takes one worker's endpoint out of a group (the worker
	// answered 410 Gone). Removing a missing endpoint is not an error.
	RemoveEndpoint(ctx context.Context, service, listener, workerID string) error
}

// How a delivery attempt ended, as a DeliveryObserver is told.
const (
	// AttemptDelivered is a 2xx: the event is delivered to the group.
	AttemptDelivered = "delivered"
	// AttemptRetried is a failed attempt that will be retried.
	AttemptRetried = "retried"
	// AttemptEndpointRemoved is a 410: the endpoint was taken out of its
	// group and the delivery is retried at once.
	AttemptEndpointRemoved = "endpoint_removed"
	// AttemptDead is a failed last attempt: the delivery is dead.
	AttemptDead = "dead"
	// AttemptCancelled is a delivery whose event or group no longer exists.
	AttemptCancelled = "cancelled"
)

// DeliveryObserver is told how each delivery attempt ended, for metrics.
// Deliveries snoozed without an attempt (no live endpoint, no in-flight
// slot) are not reported. It is called on the delivery path: it must be
// quick and must not block.
type DeliveryObserver interface {
	// DeliveryDone reports an attempt of a delivery to the group
	// service.listener: its outcome (an Attempt constant), how long its
	// request took (0 when none was made) and, when delivered, how long
	// since the event was fired.
	DeliveryDone(service, listener, outcome string, took, sinceFired time.Duration)
}

// QueueCount is the number of River jobs in one queue and state.
type QueueCount struct {
	Queue string
	State string
	Count int64
}

// nopObserver is the DeliveryObserver of a Deliverer configured without one.
type nopObserver struct{}

func (nopObserver) DeliveryDone(string, string, string, time.Duration, time.Duration) {}

// Deliverer is the River worker of delivery jobs: it POSTs events to
// listeners, applying the listener response contract (docs/DELIVERY.md):
// 2xx delivered; 429 and 503 retried no sooner than Retry-After; 410 drops
// the endpoint from the group; anything else retried with the group's
// backoff. Each failed attempt's outcome is recorded with its job as data
// (AttemptOutcome).
type Deliverer struct {
	river.WorkerDefaults[DeliveryArgs]

	client     *http.Client
	groupLimit int
	logger     *slog.Logger
	next       atomic.Uint64
	observer   DeliveryObserver
	retry      gateway.RetryPolicy
	snooze     time.Duration
	store      DeliveryStore
	timeout    time.Duration
	// tracer makes the delivery attempt spans; tracing is false when it
	// is a no-op, and the stored trace context is then sent as it is.
	tracer  trace.Tracer
	tracing bool

	// retryAt holds, by job id, how long after a failed attempt its job
	// should run again; Work sets it and NextRetry takes it.
	retryAt sync.Map
	// inFlight counts running requests per group, for max_in_flight;
	// freed is closed (and replaced) whenever a request ends, waking the
	// deliveries waiting for a slot.
	mu       sync.Mutex
	inFlight map[string]int
	freed    chan struct{}
	slotWait time.Duration // how long acquire waits for a slot: inFlightWait
	// waiters counts, per group, the deliveries queued for a slot for up
	// to queueWait (at most queueLen(limit) of them); the others wait
	// slotWait and snooze.
	waiters   map[string]int
	queueWait time.Duration // inFlightQueueWait
}

// DelivererConfig configures a Deliverer.
type DelivererConfig struct {
	// Client makes the requests; nil uses a client with a tuned transport.
	Client *http.Client
	// GroupLimit caps the deliveries of one listener group running at once
	// in this gateway when the group's policy sets no max_in_flight, so that a
	// slow group cannot occupy every River worker slot and hold back the
	// other groups. A delivery over the cap snoozes briefly without using an
	// attempt. 0 means no cap.
	GroupLimit int
	Logger     *slog.Logger
	// Observer is told how each attempt ended; nil tells no one.
	Observer DeliveryObserver
	// Retry is the default backoff, for groups that set none.
	Retry gateway.RetryPolicy
	// Snooze is how long a delivery waits, without using an attempt, when
	// its group has no live endpoint.
	Snooze time.Duration
	Store  DeliveryStore
	// Timeout bounds one delivery request, for groups that set no timeout.
	Timeout time.Duration
	// Networks is where the default Client may connect (checked on each
	// resolved address); nil is the default policy. Unused with Client.
	Networks *gateway.WorkerNetworks
	// TracerProvider makes a span of each delivery attempt, a child of the
	// event's stored trace context; nil makes none, and each attempt then
	// sends the stored trace context as it is.
	TracerProvider trace.TracerProvider
}

// NewDeliverer returns the worker of delivery jobs.
func NewDeliverer(cfg DelivererConfig) *Deliverer {
	w := &Deliverer{
		client:     cfg.Client,
		groupLimit: cfg.GroupLimit,
		logger:     cfg.Logger,
		observer:   cfg.Observer,
		retry:      cfg.Retry,
		snooze:     cfg.Snooze,
		store:      cfg.Store,
		timeout:    cfg.Timeout,
		inFlight:   map[string]int{},
		freed:      make(chan struct{}),
		slotWait:   inFlightWait,
		waiters:    map[string]int{},
		queueWait:  inFlightQueueWait,
	}
	if w.client == nil {
		w.client = newHTTPClient(cfg.Networks)
	}
	if w.logger == nil {
		w.logger = slog.New(slog.DiscardHandler)
	}
	w.tracer, w.tracing = tracer(cfg.TracerProvider)
	if w.observer == nil {
		w.observer = nopObserver{}
	}
	if w.snooze <= 0 {
		w.snooze = time.Second
	}
	if w.timeout <= 0 {
		w.timeout = 30 * time.Second
	}
	if w.retry.Base <= 0 {
		w.retry = gateway.RetryPolicy{Base: time.Second, Max: time.Hour, Jitter: 0.2}
	}
	return w
}

// Timeout implements river.Worker: a little more than the job's request
// timeout (its group's, when queued, else the gateway default), so that
// the request's own timeout is what normally fires. River's rescuer waits
// this long before retrying a delivery whose gateway died.
func (w *Deliverer) Timeout(job *river.Job[DeliveryArgs]) time.Duration {
	return w.requestTimeout(job) + 5*time.Second
}

// requestTimeout is the longest a job's request may take.
func (w *Deliverer) requestTimeout(job *river.Job[DeliveryArgs]) time.Duration {
	if job.Args.TimeoutMS > 0 {
		return min(time.Duration(job.Args.TimeoutMS)*time.Millisecond, gateway.MaxDeliveryTimeout)
	}
	return w.timeout
}

// NextRetry implements river.Worker: the time Work chose for the failed
// attempt (the group's backoff, or the listener's Retry-After).
func (w *Deliverer) NextRetry(job *river.Job[DeliveryArgs]) time.Time {
	if d, ok := w.retryAt.LoadAndDelete(job.ID); ok {
		// River wants a time after its own "now", taken before this call.
		return time.Now().Add(max(d.(time.Duration), time.Millisecond))
	}
	return time.Time{} // the client's retry policy
}

// inFlightWait is how long a delivery waits for a slot when its group is at
// its max_in_flight limit. A fast group's slots free up within it, so its
// backlog drains at the limit's pace; a slow group's waiting deliveries give
// their River worker back to other groups after it, and are snoozed.
const inFlightWait = 20 * time.Millisecond

// inFlightSnooze is how long a delivery that found no slot waits before it
// runs again the first time (plus up to as much again in jitter); see
// slotSnooze.
const inFlightSnooze = 50 * time.Millisecond

// slotSnooze is how long a delivery that found no slot for its group waits
// before it runs again: inFlightSnooze doubled for each time the job was
// snoozed before (River counts them in its metadata), up to 16 times, plus
// up to as much again in jitter. A backlog behind a saturated group thus
// costs a few snoozes per job (each two writes of its row) rather than one
// every 50-100 ms for as long as the backlog lasts; the group's slots stay
// busy meanwhile with the deliveries queued for them (inFlightQueueWait).
func slotSnooze(metadata []byte) time.Duration {
	var m struct {
		Snoozes int `json:"snoozes"`
	}
	_ = json.Unmarshal(metadata, &m) // no metadata: the first snooze
	d := inFlightSnooze << min(max(m.Snoozes, 0), 4)
	return d + rand.N(d)
}

// inFlightQueueWait is how long the first deliveries of a group at its
// max_in_flight limit wait for a slot, holding their River worker, rather
// than snoozing: a snooze costs Postgres two writes of the job row (the
// snooze, and the fetch that runs it again) and a delivery batch is
// snoozed as a whole, so under a steady backlog most of a group's job-row
// writes were snoozes. At most queueLen(limit) deliveries of a group queue
// so; the rest wait inFlightWait and snooze as before, so that a group uses
// at most limit + queueLen(limit) River workers and cannot hold back the
// other groups.
const inFlightQueueWait = time.Second

// queueLen is how many deliveries of a group with max_in_flight limit may
// queue for a slot: half the limit, at least one.
func queueLen(limit int) int { return max(1, limit/2) }

// acquire takes an in-flight slot for group, waiting up to w.slotWait for
// one when the group is at its limit (0 is no limit); it reports false when
// none came.
func (w *Deliverer) acquire(ctx context.Context, group string, limit int) bool {
	var timeout <-chan time.Time
	queued := false
	defer func() {
		if queued {
			w.mu.Lock()
			if w.waiters[group]--; w.waiters[group] <= 0 {
				delete(w.waiters, group)
			}
			w.mu.Unlock()
		}
	}()
	for {
		w.mu.Lock()
		if limit <= 0 || w.inFlight[group] < limit {
			w.inFlight[group]++
			w.mu.Unlock()
			return true
		}
		freed := w.freed
		wait := w.slotWait
		if timeout == nil && w.waiters[group] < queueLen(limit) {
			w.waiters[group]++
			queued, wait = true, w.queueWait
		}
		w.mu.Unlock()
		if timeout == nil {
			timer := time.NewTimer(wait)
			defer timer.Stop()
			timeout = timer.C
		}
		select {
		case <-freed:
		case <-timeout:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// tryAcquire takes an in-flight slot for group if one is free now.
func (w *Deliverer) tryAcquire(group string, limit int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if limit <= 0 || w.inFlight[group] < limit {
		w.inFlight[group]++
		return true
	}
	return false
}

func (w *Deliverer) release(group string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inFlight[group]--; w.inFlight[group] <= 0 {
		delete(w.inFlight, group)
	}
	close(w.freed)
	w.freed = make(chan struct{})
}

// Work delivers one event to one live endpoint of its group, and tells the
// observer how the attempt ended.
func (w *Deliverer) Work(ctx context.Context, job *river.Job[DeliveryArgs]) error {
	var at attempt
	err := w.work(ctx, job, &at)
	w.observe(job, err, &at)
	return err
}

// attempt is what work tells observe of an attempt.
type attempt struct {
	took       time.Duration // the request's time; 0 when none was made
	sinceFired time.Duration // from the event's fire to its delivery
	gone       bool          // the endpoint answered 410
}

// observe reports the attempt that ended with err to the observer.
func (w *Deliverer) observe(job *river.Job[DeliveryArgs], err error, at *attempt) {
	var outcome string
	var snooze *rivertype.JobSnoozeError
	var cancel *rivertype.JobCancelError
	switch {
	case err == nil:
		outcome = AttemptDelivered
	case errors.As(err, &snooze):
		return
	case errors.As(err, &cancel):
		outcome = AttemptCancelled
	case job.Attempt >= job.MaxAttempts:
		outcome = AttemptDead
	case at.gone:
		outcome = AttemptEndpointRemoved
	default:
		outcome = AttemptRetried
	}
	w.observer.DeliveryDone(job.Args.Service, job.Args.Listener, outcome, at.took, at.sinceFired)
}

// work makes one attempt of job, noting in at what observe reports.
func (w *Deliverer) work(ctx context.Context, job *river.Job[DeliveryArgs], at *attempt) error {
	args := job.Args
	group := args.Service + "." + args.Listener
	target, err := w.store.DeliveryTarget(ctx, args.EventID, args.Service, args.Listener)
	if errors.Is(err, gateway.ErrNotFound) {
		// The event or the group is gone: there is nothing left to deliver.
		return river.JobCancel(fmt.Errorf("event %s or listener %s no longer exists", args.EventID, group))
	}
	if err != nil {
		return err
	}
	if len(target.Endpoints) == 0 {
		return river.JobSnooze(w.snooze)
	}
	if !w.acquire(ctx, group, w.limit(target.Policy)) {
		return river.JobSnooze(slotSnooze(job.Metadata))
	}
	defer w.release(group)

	// The group's current timeout, within the job's own bound.
	timeout := min(target.Policy.Timeout(w.timeout), w.requestTimeout(job))
	res := w.send(ctx, sendArgs{
		service: args.Service, listener: args.Listener, ev: &target.Event, secret: target.Secret,
		endpoints: target.Endpoints, retry: target.Policy.Retry(w.retry), attempt: job.Attempt, timeout: timeout,
	})
	at.took, at.sinceFired, at.gone = res.took, res.sinceFired, res.gone
	if res.err == nil {
		return nil
	}
	if !res.noRequest {
		w.record(ctx, job, res.outcome)
		w.retryAfter(job, res.delay)
	}
	return res.err
}

// limit is the max_in_flight of a group with policy p (0: none).
func (w *Deliverer) limit(p gateway.DeliveryPolicy) int {
	if p.MaxInFlight > 0 {
		return p.MaxInFlight
	}
	return w.groupLimit
}

// sendArgs is one delivery attempt of an event to its group.
type sendArgs struct {
	service, listener string
	ev                *gateway.Event
	secret            string
	endpoints         []gateway.Endpoint
	retry             gateway.RetryPolicy
	attempt           int
	timeout           time.Duration
}

// sent is how one attempt ended.
type sent struct {
	// err is nil when the event was delivered, else the attempt's error
	// as the delivery's errors keep it.
	err error
	// outcome is a failed attempt's outcome (its Attempt set).
	outcome AttemptOutcome
	// delay is how long after a failed attempt the delivery runs again:
	// the group's backoff, the listener's Retry-After, or 0 after a 410.
	delay time.Duration
	// noRequest marks an attempt that made no request (its request could
	// not be built): no outcome is recorded.
	noRequest  bool
	took       time.Duration // the request's time
	sinceFired time.Duration // from the event's fire to its delivery
	gone       bool          // the endpoint answered 410
	start      time.Time     // when the attempt started
}

// send makes one attempt: a POST of a.ev to one of its group's live
// endpoints (round robin), with the listener response contract applied. The
// caller holds an in-flight slot of the group.
func (w *Deliverer) send(ctx context.Context, a sendArgs) sent {
	res := sent{start: time.Now()}
	group := a.service + "." + a.listener
	endpoint := a.endpoints[int(w.next.Add(1)%uint64(len(a.endpoints)))]
	reqCtx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	req, err := NewDeliveryRequest(reqCtx, endpoint.URL, a.ev, a.secret, a.attempt, group, time.Now())
	if err != nil {
		res.err, res.noRequest = err, true
		return res
	}
	span := w.traceAttempt(ctx, req, a, endpoint.WorkerID)
	start := time.Now()
	resp, err := w.client.Do(req)
	endAttemptSpan(span, resp, err)
	if err != nil {
		res.took = time.Since(start)
		res.delay = a.retry.Delay(a.attempt)
		if errors.Is(reqCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			res.outcome = AttemptOutcome{Attempt: a.attempt, Kind: OutcomeTimeout}
			res.err = fmt.Errorf("deliver to %s: no answer within %s", endpoint.URL, a.timeout)
			return res
		}
		res.outcome = AttemptOutcome{Attempt: a.attempt, Kind: OutcomeTransport}
		res.err = fmt.Errorf("deliver to %s: %w", endpoint.URL, err)
		return res
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxSnippet))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	end := time.Now()
	res.took = end.Sub(start)
	status := resp.StatusCode
	if status >= 200 && status < 300 {
		res.sinceFired = end.Sub(a.ev.CreatedAt)
		return res
	}
	w.logger.DebugContext(ctx, "delivery failed",
		slog.String("event_id", a.ev.ID), slog.String("listener", group),
		slog.Int("attempt", a.attempt), slog.Int("status", status))
	failure := fmt.Sprintf("listener answered %d", status)
	if text := strings.TrimSpace(strings.ToValidUTF8(string(snippet), "")); text != "" {
		failure += ": " + text
	}
	res.outcome = AttemptOutcome{Attempt: a.attempt, Status: status, Kind: OutcomeStatus}
	res.delay = a.retry.Delay(a.attempt)
	switch status {
	case http.StatusGone:
		res.outcome.Kind = OutcomeGone
		res.gone = true
		// This endpoint no longer takes the group's deliveries: drop it,
		// and try again at once on another endpoint (or wait for one).
		if err := w.store.RemoveEndpoint(ctx, a.service, a.listener, endpoint.WorkerID); err != nil {
			res.err = fmt.Errorf("%s; removing the endpoint failed: %w", failure, err)
			return res
		}
		res.delay = 0
		res.err = fmt.Errorf("%s (endpoint of worker %s removed)", failure, endpoint.WorkerID)
		return res
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		if d, ok := gateway.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
			res.delay = d
			res.err = fmt.Errorf("%s (Retry-After %s)", failure, d)
			return res
		}
	}
	res.err = errors.New(failure)
	return res
}

// traceAttempt sets the trace context of an attempt's request: a child of
// the event's stored context, with the id of the attempt's span when spans
// are made, else the stored context as it is (or none). The span ends with
// endAttemptSpan.
func (w *Deliverer) traceAttempt(ctx context.Context, req *http.Request, a sendArgs, workerID string) trace.Span {
	ev := a.ev
	if !w.tracing {
		if ev.TraceParent != "" {
			req.Header[tracing.HeaderTraceParent] = []string{ev.TraceParent}
			if ev.TraceState != "" {
				req.Header[tracing.HeaderTraceState] = []string{ev.TraceState}
			}
		}
		return noSpan
	}
	ctx = tracing.Remote(ctx, ev.TraceParent, ev.TraceState)
	ctx, span := w.tracer.Start(ctx, "delivery attempt", trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("lightbus.event_id", ev.ID),
			attribute.String("lightbus.api", ev.API),
			attribute.String("lightbus.event", ev.Name),
			attribute.String("lightbus.service", a.service),
			attribute.String("lightbus.listener", a.listener),
			attribute.Int("lightbus.attempt", a.attempt),
			attribute.String("lightbus.worker_id", workerID),
			attribute.String("http.request.method", req.Method),
			attribute.String("server.address", req.URL.Hostname()),
		)
	}
	tracing.Inject(ctx, req.Header)
	return span
}

// endAttemptSpan ends the span of a request that answered resp or failed
// with err: a failure or an answer outside 2xx marks it failed.
func endAttemptSpan(span trace.Span, resp *http.Response, err error) {
	if span.IsRecording() {
		switch {
		case err != nil:
			span.SetAttributes(attribute.String("error.type", errorType(err)))
			span.SetStatus(codes.Error, err.Error())
		case resp.StatusCode < 200 || resp.StatusCode > 299:
			span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode), attribute.String("error.type", strconv.Itoa(resp.StatusCode)))
			span.SetStatus(codes.Error, "")
		default:
			span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
		}
	}
	span.End()
}

// maxSnippet bounds how much of a failed answer's body is kept in the
// attempt's error.
const maxSnippet = 256

// retryAfter records when job should run again after this failed attempt.
// Nothing is recorded for a last attempt: River discards the job without
// asking NextRetry.
func (w *Deliverer) retryAfter(job *river.Job[DeliveryArgs], d time.Duration) {
	if job.Attempt >= job.MaxAttempts {
		return
	}
	w.retryAt.Store(job.ID, d)
}

// Outcome kinds: how a failed delivery attempt failed.
const (
	// OutcomeStatus is an answer outside 2xx; Status holds it.
	OutcomeStatus = "status"
	// OutcomeGone is a 410 answer: the endpoint was taken out of its group.
	OutcomeGone = "gone"
	// OutcomeTimeout is no answer within the group's timeout.
	OutcomeTimeout = "timeout"
	// OutcomeTransport is a failed connection or exchange, without answer.
	OutcomeTransport = "transport"
)

// AttemptOutcome is how one failed delivery attempt ended, stored as data
// with its job.
type AttemptOutcome struct {
	// Attempt is the attempt's number as River counts it (job.Attempt).
	Attempt int `json:"attempt"`
	// Status is the listener's HTTP status, 0 when it gave no answer.
	Status int `json:"status"`
	// Kind is one of the Outcome constants.
	Kind string `json:"kind"`
}

// AttemptOutcomes is a delivery job's recorded output: the outcome of each
// failed attempt, oldest first. River keeps it in the job row's metadata
// under "output" (river.RecordOutput), whatever the attempt's outcome;
// store/postgres reads it back with DecodeOutcomes.
//
//	{"attempts": [{"attempt": 1, "status": 503, "kind": "status"},
//	              {"attempt": 2, "status": 0, "kind": "timeout"}]}
type AttemptOutcomes struct {
	Attempts []AttemptOutcome `json:"attempts"`
}

// maxOutcomes bounds the outcomes kept with a job: the latest ones.
const maxOutcomes = 100

// AppendOutcome returns the output a delivery job records after the failed
// attempt o: the outcomes in metadata (the job's metadata as River gives
// it, rivertype.JobRow.Metadata) with o added, replacing an outcome
// recorded for the same attempt, and at most the latest maxOutcomes.
// Malformed outcomes in metadata are dropped.
func AppendOutcome(metadata []byte, o AttemptOutcome) AttemptOutcomes {
	var meta map[string]json.RawMessage
	_ = json.Unmarshal(metadata, &meta) // unreadable metadata holds no outcomes
	var out struct {
		Attempts json.RawMessage `json:"attempts"`
	}
	if raw, ok := meta[rivertype.MetadataKeyOutput]; ok {
		_ = json.Unmarshal(raw, &out) // an output of another shape holds no outcomes
	}
	prev := DecodeOutcomes(out.Attempts)
	outcomes := make([]AttemptOutcome, 0, len(prev)+1)
	for _, p := range prev {
		if p.Attempt != o.Attempt {
			outcomes = append(outcomes, p)
		}
	}
	outcomes = append(outcomes, o)
	if len(outcomes) > maxOutcomes {
		outcomes = outcomes[len(outcomes)-maxOutcomes:]
	}
	return AttemptOutcomes{Attempts: outcomes}
}

// DecodeOutcomes decodes the attempts of a delivery job's output. It is
// lenient: a value that is no array holds no outcomes and an entry that is
// no outcome is skipped, so that a malformed output costs the statuses it
// would give, never the delivery's reading.
func DecodeOutcomes(raw []byte) []AttemptOutcome {
	var entries []json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &entries) != nil {
		return nil
	}
	outcomes := make([]AttemptOutcome, 0, len(entries))
	for _, e := range entries {
		var o AttemptOutcome
		if json.Unmarshal(e, &o) == nil {
			outcomes = append(outcomes, o)
		}
	}
	return outcomes
}

// record adds this failed attempt's outcome to those of the job's earlier
// attempts and has River store them with the job when the attempt ends.
func (w *Deliverer) record(ctx context.Context, job *river.Job[DeliveryArgs], o AttemptOutcome) {
	o.Attempt = job.Attempt
	if err := river.RecordOutput(ctx, AppendOutcome(job.Metadata, o)); err != nil {
		w.logger.WarnContext(ctx, "could not record a delivery attempt's outcome", slog.Int64("job_id", job.ID), slog.String("error", err.Error()))
	}
}

// NewDeliveryRequest builds the POST that delivers ev: the stored parameters
// as body, CloudEvents binary-mode headers, and Standard Webhooks headers
// signed with secret at time now, and the event's idempotency key if any.
func NewDeliveryRequest(ctx context.Context, url string, ev *gateway.Event, secret string, attempt int, listener string, now time.Time) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(ev.Params))
	if err != nil {
		return nil, fmt.Errorf("build delivery request: %w", err)
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	sig, err := webhook.SignSecret(secret, ev.ID, ts, ev.Params)
	if err != nil {
		return nil, err
	}
	h := req.Header
	h["Content-Type"] = []string{"application/json"}
	h["Ce-Specversion"] = []string{"1.0"}
	h["Ce-Id"] = []string{ev.ID}
	h["Ce-Source"] = []string{"/lightbus/" + ev.API}
	h["Ce-Type"] = []string{ev.API + "." + ev.Name}
	h["Ce-Time"] = []string{ev.CreatedAt.UTC().Format(time.RFC3339Nano)}
	h["Webhook-Id"] = []string{ev.ID}
	h["Webhook-Timestamp"] = []string{ts}
	h["Webhook-Signature"] = []string{sig}
	h["Lightbus-Attempt"] = []string{strconv.Itoa(attempt)}
	h["Lightbus-Listener"] = []string{listener}
	if ev.IdempotencyKey != "" {
		h["Idempotency-Key"] = []string{ev.IdempotencyKey}
	}
	return req, nil
}

// ClientRetryPolicy is River's retry policy for the gateway's jobs: the
// gateway's default backoff.
type ClientRetryPolicy struct {
	Policy gateway.RetryPolicy
}

// NextRetry implements river.ClientRetryPolicy.
func (p *ClientRetryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(p.Policy.Delay(job.Attempt))
}

// errAddressNotAllowed is the error of a connection the worker network
// policy refused.
var errAddressNotAllowed = errors.New("address not allowed by the worker network policy")

// dialControl returns a net.Dialer Control function that refuses to
// connect to an address networks does not allow. It runs on the resolved
// address, just before each connection attempt, so a host name that
// resolves somewhere else than at registration (DNS rebinding) is caught.
func dialControl(networks *gateway.WorkerNetworks) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: %s", errAddressNotAllowed, address)
		}
		if !networks.AllowAddr(ap.Addr()) {
			return fmt.Errorf("%w: %s", errAddressNotAllowed, ap.Addr())
		}
		return nil
	}
}

// newHTTPClient returns the client that calls workers: connections only
// where networks allows (never through a proxy, whose address is all a
// check could see), no redirects followed.
func newHTTPClient(networks *gateway.WorkerNetworks) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: dialControl(networks)}
	t.DialContext = dialer.DialContext
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	// Listeners and workers are never followed elsewhere: a 3xx is a failure.
	return &http.Client{
		Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
