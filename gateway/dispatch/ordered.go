package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/lightbus-go/lightbus/gateway"
)

// OrderedKind is the River job kind of an ordered group's deliveries: one
// job per group, which walks the event log from the group's position.
const OrderedKind = "lightbus.ordered"

// OrderedMaxAttempts is an ordered group's job's max_attempts. The job
// snoozes between runs (which uses no attempt) and turns its own failures
// into snoozes; only a run cut short (its gateway stopped or killed) uses
// one. Each registration of a live worker of the group queues the job
// again should it ever be finished.
const OrderedMaxAttempts = 10000

// OrderedArgs are the River job args of an ordered group's deliveries.
// There is at most one such job per group that is not finished (River's
// unique jobs, by args), so one gateway replica at a time delivers the
// group.
type OrderedArgs struct {
	Service  string `json:"service"`
	Listener string `json:"listener"`
}

// Kind implements river.JobArgs.
func (OrderedArgs) Kind() string { return OrderedKind }

// InsertOpts implements river.JobArgsWithInsertOpts: the delivery queue,
// unique per group while not finished.
func (OrderedArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{
		Queue:       QueueDelivery,
		MaxAttempts: OrderedMaxAttempts,
		UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
			rivertype.JobStateRunning, rivertype.JobStateScheduled,
		}},
	}
}

// OrderedNext is what an ordered group's job reads before each step: the
// group and the next events it is owed.
type OrderedNext struct {
	// Target is the group's secret, policy and live endpoints (its Event
	// unset).
	Target gateway.DeliveryTarget
	// Ordered is false once the group is no longer ordered: its owed
	// events were then handed to a replay, and the job ends.
	Ordered bool
	// Blocked is set while the delivery job of an event whose first
	// attempt failed is unfinished: the events after it wait. BlockedAt
	// is when that job runs next.
	Blocked   bool
	BlockedAt time.Time
	// Events are the next events the group subscribes to after its
	// position, in commit order, that no running transaction can precede:
	// those of transactions below the snapshot's xmin.
	Events []gateway.StreamedEvent
	// Epoch is the position's epoch when Events were read: the job's
	// moves of the position apply only while it is unchanged (a replay
	// changes it).
	Epoch int64
	// Waiting reports an event after the position whose transaction is not
	// below that horizon yet: it will be readable within moments.
	Waiting bool
}

// OrderedStore reads and moves ordered groups' positions.
type OrderedStore interface {
	// OrderedNext returns the group's state and at most limit of its next
	// events. Returns ErrNotFound when the group no longer exists.
	OrderedNext(ctx context.Context, service, listener string, limit int) (*OrderedNext, error)

	// OrderedDelivered moves the group's position past ev, delivered.
	// It does nothing when the position's epoch is no longer epoch.
	OrderedDelivered(ctx context.Context, service, listener string, epoch int64, ev gateway.StreamCursor) error

	// OrderedFailed records the failed first attempt of ev, in one
	// transaction: f becomes a delivery job of its own (in the state River
	// leaves a delivery job after that attempt, as a batch's failed
	// deliveries do), the position moves past ev and, unless f is dead,
	// the job blocks the group until it is finished. It does nothing when
	// the position's epoch is no longer epoch.
	OrderedFailed(ctx context.Context, job *river.Job[OrderedArgs], epoch int64, ev gateway.StreamCursor, f FailedDelivery) error
}

// Ordered groups' timing.
const (
	// orderedBudget is how long one run of an ordered job starts
	// deliveries; it then runs again at once (River's other jobs get their
	// turn).
	orderedBudget = 2 * time.Second
	// orderedPoll is how often a run reads again while an event waits for
	// the horizon.
	orderedPoll = 10 * time.Millisecond
	// orderedIdle is how long a caught-up group's job sleeps between
	// runs. A fire wakes it at once; this bounds the wait of an event
	// whose fire committed while the job was ending its run.
	orderedIdle = time.Second
	// orderedBlockedMax is the longest the job sleeps while an event's
	// delivery job holds the group back.
	orderedBlockedMax = 5 * time.Second
	// orderedPage is how many events one read returns.
	orderedPage = 100
)

// OrderedDeliverer is the River worker of ordered groups (OrderedArgs). It
// delivers the group's events one at a time in commit order (the live
// stream's (xid, id) order, read only below the snapshot's xmin) with the
// same request and response contract as a delivery job, and moves the
// group's position past each. A failed first attempt becomes a delivery job
// of its own, retried by the Deliverer with the group's backoff until it is
// delivered or dead, and the group waits for it: nothing after it is
// delivered meanwhile.
type OrderedDeliverer struct {
	river.WorkerDefaults[OrderedArgs]

	d     *Deliverer
	store OrderedStore
	// idle is how long a caught-up job sleeps (orderedIdle).
	idle time.Duration
}

// NewOrderedDeliverer returns the worker of ordered groups, which shares
// d's HTTP client, configuration and observer.
func NewOrderedDeliverer(d *Deliverer, store OrderedStore) *OrderedDeliverer {
	return &OrderedDeliverer{d: d, store: store, idle: orderedIdle}
}

// Timeout implements river.Worker: a run starts deliveries for
// orderedBudget, and its last request takes at most the longest timeout a
// group may have.
func (o *OrderedDeliverer) Timeout(*river.Job[OrderedArgs]) time.Duration {
	return orderedBudget + gateway.MaxDeliveryTimeout + 5*time.Second
}

// Work delivers the group's next events until it is caught up, blocked or
// out of budget, then sleeps (snoozes, which uses no attempt).
func (o *OrderedDeliverer) Work(ctx context.Context, job *river.Job[OrderedArgs]) error {
	w := o.d
	args := job.Args
	group := args.Service + "." + args.Listener
	budget := time.Now().Add(orderedBudget)
	for {
		next, err := o.store.OrderedNext(ctx, args.Service, args.Listener, orderedPage)
		switch {
		case errors.Is(err, gateway.ErrNotFound):
			return river.JobCancel(fmt.Errorf("listener %s no longer exists", group))
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			w.logger.WarnContext(ctx, "ordered delivery: reading the group failed", slog.String("listener", group), slog.String("error", err.Error()))
			return river.JobSnooze(w.snooze)
		case !next.Ordered:
			return river.JobCancel(fmt.Errorf("listener %s is no longer ordered", group))
		case next.Blocked:
			return river.JobSnooze(min(max(time.Until(next.BlockedAt)+orderedPoll, orderedPoll), orderedBlockedMax))
		case len(next.Target.Endpoints) == 0:
			// No live endpoint: the job ends, and the next registration of
			// a worker of the group queues it again.
			return nil
		case len(next.Events) == 0 && next.Waiting && time.Now().Before(budget):
			select {
			case <-time.After(orderedPoll):
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		case len(next.Events) == 0 && next.Waiting:
			return river.JobSnooze(0)
		case len(next.Events) == 0:
			return river.JobSnooze(o.idle)
		}
		for _, ev := range next.Events {
			if time.Now().After(budget) {
				return river.JobSnooze(0)
			}
			blocked, err := o.deliver(ctx, job, next, ev)
			if err != nil {
				return err
			}
			if blocked {
				return river.JobSnooze(orderedPoll)
			}
		}
	}
}

// deliver makes the first attempt of ev and records it: the position moves
// past ev, and a failure becomes a delivery job of its own that blocks the
// group unless it is dead. The returned error ends the run.
func (o *OrderedDeliverer) deliver(ctx context.Context, job *river.Job[OrderedArgs], next *OrderedNext, ev gateway.StreamedEvent) (blocked bool, err error) {
	w := o.d
	args := job.Args
	p := next.Target.Policy
	res := w.send(ctx, sendArgs{
		service: args.Service, listener: args.Listener, ev: &ev.Event, secret: next.Target.Secret,
		endpoints: next.Target.Endpoints, retry: p.Retry(w.retry), attempt: 1, timeout: p.Timeout(w.timeout),
	})
	if ctx.Err() != nil {
		// Stopped mid-request: the event is delivered again by the next run.
		return false, ctx.Err()
	}
	if res.err == nil {
		if err := o.store.OrderedDelivered(ctx, args.Service, args.Listener, next.Epoch, ev.Cursor); err != nil {
			return false, o.storeFailed(ctx, args, err)
		}
		w.observer.DeliveryDone(args.Service, args.Listener, AttemptDelivered, res.took, res.sinceFired)
		return false, nil
	}
	maxAttempts := p.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = river.MaxAttemptsDefault
	}
	f := FailedDelivery{
		Args:        DeliveryArgs{EventID: ev.ID, Service: args.Service, Listener: args.Listener, TimeoutMS: p.TimeoutMS},
		Attempt:     1,
		MaxAttempts: maxAttempts,
		At:          res.start,
		Error:       res.err.Error(),
		Dead:        maxAttempts <= 1,
		RetryAt:     time.Now().Add(res.delay),
	}
	if !res.noRequest {
		f.Output = AttemptOutcomes{Attempts: []AttemptOutcome{res.outcome}}
	}
	if err := o.store.OrderedFailed(ctx, job, next.Epoch, ev.Cursor, f); err != nil {
		return false, o.storeFailed(ctx, args, err)
	}
	outcome := AttemptRetried
	switch {
	case f.Dead:
		outcome = AttemptDead
	case res.gone:
		outcome = AttemptEndpointRemoved
	}
	w.observer.DeliveryDone(args.Service, args.Listener, outcome, res.took, 0)
	return !f.Dead, nil
}

// storeFailed ends a run whose outcome could not be recorded: the event is
// delivered again by a later run (at least once).
func (o *OrderedDeliverer) storeFailed(ctx context.Context, args OrderedArgs, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	o.d.logger.WarnContext(ctx, "ordered delivery: recording an outcome failed",
		slog.String("listener", args.Service+"."+args.Listener), slog.String("error", err.Error()))
	return river.JobSnooze(o.d.snooze)
}
