package dispatch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/lightbus-go/lightbus/gateway"
)

// DeliveryBatchKind is the River job kind of a delivery batch: the
// deliveries of several events to one listener group, queued by one
// transaction.
const DeliveryBatchKind = "lightbus.delivery_batch"

// DeliveryBatchMaxAttempts is a delivery batch's max_attempts. A batch
// handles the failures of its deliveries itself (each failed one becomes a
// delivery job of its own); River retries a batch only when it could not
// finish it (the database unreachable, its gateway gone), and then delivers
// all of its events again. It is never discarded in practice.
const DeliveryBatchMaxAttempts = 100

// DeliveryBatchArgs are the River job args of a delivery batch: the
// deliveries of EventIDs, in id order (the oldest event first), to one
// listener group.
type DeliveryBatchArgs struct {
	Service  string   `json:"service"`
	Listener string   `json:"listener"`
	EventIDs []string `json:"event_ids"`
	// MaxAttempts is each delivery's max_attempts, the group's when queued,
	// as a delivery job of its own would have it.
	MaxAttempts int `json:"max_attempts"`
	// TimeoutMS is the group's request timeout when queued (0: the gateway
	// default), as DeliveryArgs.TimeoutMS.
	TimeoutMS int `json:"timeout_ms,omitempty"`
}

// Kind implements river.JobArgs.
func (DeliveryBatchArgs) Kind() string { return DeliveryBatchKind }

// InsertOpts implements river.JobArgsWithInsertOpts: batches run in the
// delivery queue.
func (DeliveryBatchArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueDelivery, MaxAttempts: DeliveryBatchMaxAttempts}
}

// FailedDelivery is a delivery of a batch whose attempt failed: it becomes
// a delivery job of its own (DeliveryArgs), in the state River leaves a
// delivery job after the same failed attempt.
type FailedDelivery struct {
	Args        DeliveryArgs
	Attempt     int
	MaxAttempts int
	// At is when the attempt started; Error its error text.
	At    time.Time
	Error string
	// Output is the delivery's recorded output (AttemptOutcomes).
	Output AttemptOutcomes
	// RetryAt is when it runs again; unused when Dead.
	RetryAt time.Time
	// Dead marks a last attempt: the delivery is discarded.
	Dead bool
}

// BatchStore reads and finishes delivery batches.
type BatchStore interface {
	// DeliveryTargets returns the group's secret, policy and live
	// endpoints (Event unset) and those of eventIDs that still exist, in
	// the order of eventIDs. Returns ErrNotFound when the group no longer
	// exists.
	DeliveryTargets(ctx context.Context, eventIDs []string, service, listener string) (*gateway.DeliveryTarget, []gateway.Event, error)

	// CompleteBatch completes job, which must be running, and queues each
	// of failed as a delivery job of its own and the deliveries of rest
	// (events not attempted) as a new batch, in one transaction.
	CompleteBatch(ctx context.Context, job *river.Job[DeliveryBatchArgs], failed []FailedDelivery, rest []string) error
}

// BatchDeliverer is the River worker of delivery batches. It delivers each
// event of a batch as the Deliverer delivers one (the same request, the
// same listener response contract), several at once within its group's
// max_in_flight, shared with the Deliverer's deliveries. When it is done,
// it completes the batch and queues each failed delivery as a delivery job
// of its own, in one transaction: from there the Deliverer retries it like
// any other.
type BatchDeliverer struct {
	river.WorkerDefaults[DeliveryBatchArgs]

	d     *Deliverer
	store BatchStore
}

// NewBatchDeliverer returns the worker of delivery batches, which shares
// d's HTTP client, configuration, observer and in-flight accounting.
func NewBatchDeliverer(d *Deliverer, store BatchStore) *BatchDeliverer {
	return &BatchDeliverer{d: d, store: store}
}

// Timeout implements river.Worker. A batch starts requests for one request
// timeout (its budget), then queues the events it has not started as a
// new batch; the last requests end one request timeout later. Past that
// (and a margin), River's rescuer may run the batch again when its gateway
// died, as it would a delivery job.
func (b *BatchDeliverer) Timeout(job *river.Job[DeliveryBatchArgs]) time.Duration {
	return 2*b.requestTimeout(job) + 5*time.Second
}

// requestTimeout is the longest a request of the batch may take.
func (b *BatchDeliverer) requestTimeout(job *river.Job[DeliveryBatchArgs]) time.Duration {
	if job.Args.TimeoutMS > 0 {
		return min(time.Duration(job.Args.TimeoutMS)*time.Millisecond, gateway.MaxDeliveryTimeout)
	}
	return b.d.timeout
}

// Work delivers the batch's events and tells the observer how each attempt
// ended.
func (b *BatchDeliverer) Work(ctx context.Context, job *river.Job[DeliveryBatchArgs]) error {
	w := b.d
	args := job.Args
	group := args.Service + "." + args.Listener
	target, events, err := b.store.DeliveryTargets(ctx, args.EventIDs, args.Service, args.Listener)
	if errors.Is(err, gateway.ErrNotFound) {
		for range args.EventIDs {
			w.observer.DeliveryDone(args.Service, args.Listener, AttemptCancelled, 0, 0)
		}
		return river.JobCancel(fmt.Errorf("listener %s no longer exists", group))
	}
	if err != nil {
		return err
	}
	for range len(args.EventIDs) - len(events) {
		// Pruned meanwhile: nothing left to deliver.
		w.observer.DeliveryDone(args.Service, args.Listener, AttemptCancelled, 0, 0)
	}
	if len(events) == 0 {
		return nil
	}
	if len(target.Endpoints) == 0 {
		return river.JobSnooze(w.snooze)
	}
	limit := w.limit(target.Policy)
	if !w.acquire(ctx, group, limit) {
		return river.JobSnooze(slotSnooze(job.Metadata))
	}
	// One slot is ours; take as many more as are free now, up to one per
	// event. Each is held until the batch's requests are done.
	slots := 1
	for slots < len(events) && w.tryAcquire(group, limit) {
		slots++
	}

	base := sendArgs{
		service: args.Service, listener: args.Listener, secret: target.Secret, endpoints: target.Endpoints,
		retry: target.Policy.Retry(w.retry), attempt: job.Attempt,
		timeout: min(target.Policy.Timeout(w.timeout), b.requestTimeout(job)),
	}
	results := make([]sent, len(events))
	budget := time.Now().Add(b.requestTimeout(job))
	var mu sync.Mutex
	started := 0
	var wg sync.WaitGroup
	for range slots {
		wg.Go(func() {
			defer w.release(group)
			for {
				mu.Lock()
				i := started
				if i >= len(events) || time.Now().After(budget) {
					mu.Unlock()
					return
				}
				started++
				mu.Unlock()
				a := base
				a.ev = &events[i]
				results[i] = w.send(ctx, a)
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		// Stopped or timed out: River runs the batch again, all of it.
		return ctx.Err()
	}

	var rest []string
	for _, ev := range events[started:] {
		rest = append(rest, ev.ID)
	}
	results = results[:started]
	maxAttempts := max(args.MaxAttempts, job.Attempt)
	var failed []FailedDelivery
	for i, r := range results {
		if r.err == nil {
			continue
		}
		f := FailedDelivery{
			Args:        DeliveryArgs{EventID: events[i].ID, Service: args.Service, Listener: args.Listener, TimeoutMS: args.TimeoutMS},
			Attempt:     job.Attempt,
			MaxAttempts: maxAttempts,
			At:          r.start,
			Error:       r.err.Error(),
			Dead:        job.Attempt >= maxAttempts,
			RetryAt:     time.Now().Add(r.delay),
		}
		if !r.noRequest {
			f.Output = AttemptOutcomes{Attempts: []AttemptOutcome{r.outcome}}
		}
		failed = append(failed, f)
	}
	if err := b.store.CompleteBatch(ctx, job, failed, rest); err != nil {
		return fmt.Errorf("complete delivery batch: %w", err)
	}
	for _, r := range results {
		outcome := AttemptDelivered
		switch {
		case r.err == nil:
		case job.Attempt >= maxAttempts:
			outcome = AttemptDead
		case r.gone:
			outcome = AttemptEndpointRemoved
		default:
			outcome = AttemptRetried
		}
		w.observer.DeliveryDone(args.Service, args.Listener, outcome, r.took, r.sinceFired)
	}
	return nil
}
