package lightbus

import (
	"context"
	"fmt"
	"runtime/debug"
	"sync"
	"time"
)

// TaskFunc is the body of a background task (see [Bus.Go]). Its ctx ends
// when the worker stops.
type TaskFunc func(ctx context.Context) error

// TaskOption adjusts a background task in [Bus.Go].
type TaskOption func(*task)

// TaskName names the task in logs and errors (default "task-N", N counting
// from 1 in the order of [Bus.Go] calls).
func TaskName(name string) TaskOption { return func(t *task) { t.name = name } }

// RestartOnFailure makes a task that returns an error or panics start again
// after a backoff (doubling, with jitter, up to a few seconds) instead of
// stopping the worker. Each failure is logged.
func RestartOnFailure() TaskOption { return func(t *task) { t.restart = true } }

// task is a background task.
type task struct {
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
	t := &task{name: fmt.Sprintf("task-%d", len(b.tasks)+1), fn: fn}
	for _, o := range opts {
		o(t)
	}
	b.tasks = append(b.tasks, t)
	if b.runner != nil {
		b.startTask(b.runner, t)
	}
}

// startTasks starts the background tasks under ctx; the runner's failed
// channel reports the first failure that stops the worker.
func (b *Bus) startTasks(ctx context.Context) *taskRunner {
	r := &taskRunner{failed: make(chan error, 1)}
	r.ctx, r.cancel = context.WithCancel(ctx)
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.runs(FeatureTasks) {
		if len(b.tasks) > 0 {
			b.log.Info("lightbus: background tasks skipped", "tasks", len(b.tasks))
		}
		return r
	}
	b.runner = r
	for _, t := range b.tasks {
		b.startTask(r, t)
	}
	return r
}

// startTask runs t in a goroutine of r. b.mu is held.
func (b *Bus) startTask(r *taskRunner, t *task) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		b.runTask(r, t)
	}()
}

// runTask runs t until it is done, fails for good or the worker stops.
func (b *Bus) runTask(r *taskRunner, t *task) {
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
func (b *Bus) stopTasks(r *taskRunner, timeout time.Duration) {
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

// callTask runs fn, turning a panic into an error.
func callTask(ctx context.Context, fn TaskFunc) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &panicError{value: v, stack: debug.Stack()}
		}
	}()
	return fn(ctx)
}
