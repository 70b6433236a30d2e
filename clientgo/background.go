package lightbus

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// RestartOnFailure makes a background task ([Bus.Go]) that returns an
// error or panics start again after a backoff (doubling, with jitter, up to
// a few seconds) instead of stopping the worker. Each failure is logged.
// Scheduled tasks ignore it: a failed run is retried at the next tick.
func RestartOnFailure() TaskOption { return func(c *taskConfig) { c.restart = true } }

// bgTask is a background task.
type bgTask struct {
	name    string
	fn      TaskFunc
	restart bool
}

// taskRunner runs the background tasks of one running worker.
type taskRunner struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	failed chan error // the first task failure that stops the worker
}

// Go adds a background task, which runs for the worker's lifetime: from
// when [Bus.Run] (or [Bus.RunRegistration]) has run the OnStart hooks until
// the worker stops, when its ctx is cancelled and the worker waits for it to
// return (bounded by the shutdown timeout). Added while the worker runs, it
// starts at once. A task that returns nil is done; one that returns an
// error or panics stops the worker, whose Run returns that error, as in
// Lightbus, unless it was added with [RestartOnFailure]. Tasks are a
// feature of their own: `lightbus run --skip tasks` (or $LIGHTBUS_SKIP)
// runs none. A Bus that never runs as a worker never runs its tasks.
//
//	Bus.Go(func(ctx context.Context) error {
//		t := time.NewTicker(time.Minute)
//		defer t.Stop()
//		for {
//			select {
//			case <-ctx.Done():
//				return nil
//			case <-t.C:
//				if err := refreshRates(ctx); err != nil {
//					return err
//				}
//			}
//		}
//	}, lightbus.TaskName("refresh_rates"), lightbus.RestartOnFailure())
func (b *Bus) Go(fn TaskFunc, opts ...TaskOption) {
	if fn == nil {
		panic("lightbus: Go: nil task")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var c taskConfig
	for _, o := range opts {
		o(&c)
	}
	t := &bgTask{name: c.name, fn: fn, restart: c.restart}
	if t.name == "" {
		t.name = fmt.Sprintf("task-%d", len(b.background)+1)
	}
	b.background = append(b.background, t)
	if b.runner != nil {
		b.startBackgroundTask(b.runner, t)
	}
}

// startBackground starts the background tasks under ctx; the runner's failed
// channel reports the first failure that stops the worker.
func (b *Bus) startBackground(ctx context.Context) *taskRunner {
	r := &taskRunner{failed: make(chan error, 1)}
	r.ctx, r.cancel = context.WithCancel(ctx)
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.runs(FeatureTasks) {
		if len(b.background) > 0 {
			b.log.Info("lightbus: background tasks skipped", "tasks", len(b.background))
		}
		return r
	}
	b.runner = r
	for _, t := range b.background {
		b.startBackgroundTask(r, t)
	}
	return r
}

// startBackgroundTask runs t in a goroutine of r. b.mu is held.
func (b *Bus) startBackgroundTask(r *taskRunner, t *bgTask) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		b.runBackground(r, t)
	}()
}

// runBackground runs t until it is done, fails for good or the worker stops.
func (b *Bus) runBackground(r *taskRunner, t *bgTask) {
	log := b.log.With("task", t.name)
	for failures := 1; ; failures++ {
		start := time.Now()
		err := callTask(r.ctx, t.fn)
		switch {
		case r.ctx.Err() != nil:
			return
		case err == nil:
			log.Info("lightbus: background task done")
			return
		case !t.restart:
			logHandlerError(log, "lightbus: background task failed: stopping the worker", errorType(err), err, time.Since(start))
			select {
			case r.failed <- fmt.Errorf("lightbus: background task %s: %w", t.name, err):
			default:
			}
			return
		}
		wait := b.backoff(failures)
		logHandlerError(log.With("restart_in", wait, "failures", failures), "lightbus: background task failed, restarting", errorType(err), err, time.Since(start))
		if !sleep(r.ctx, wait) {
			return
		}
	}
}

// stop cancels the tasks and waits for them to return, up to timeout.
func (b *Bus) stopBackground(r *taskRunner, timeout time.Duration) {
	b.mu.Lock()
	if b.runner == r {
		b.runner = nil
	}
	b.mu.Unlock()
	r.cancel()
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		b.log.Warn("lightbus: background tasks did not return in time", "timeout", timeout)
	}
}
