package lightbus

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/internal/testwait"
)

// runTestWorker runs bus as a worker until the returned stop is called;
// stop returns what Run returned. done is closed when Run has returned,
// result then holds what it returned.
func runTestWorker(t *testing.T, bus *Bus) (stop func() error, done <-chan struct{}, result *error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan struct{})
	var err error
	go func() {
		err = bus.Run(ctx)
		close(ch)
	}()
	stop = func() error {
		cancel()
		select {
		case <-ch:
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return")
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop, ch, &err
}

func TestBackgroundTasks(t *testing.T) {
	t.Parallel()

	t.Run("an error stops the worker, which deregisters", func(t *testing.T) {
		t.Parallel()
		gw := newFakeGateway(t)
		bus := newTestBus(t, gw.URL(), WithService("auth"))
		bus.Go(func(ctx context.Context) error { return errors.New("the queue is gone") }, TaskName("drain"))
		_, done, result := runTestWorker(t, bus)
		select {
		case <-done:
			if err := *result; err == nil || err.Error() != "lightbus: background task drain: the queue is gone" {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the worker did not stop")
		}
		gw.mu.Lock()
		defer gw.mu.Unlock()
		if !slices.Contains(gw.deletes, bus.WorkerID()) {
			t.Error("the worker did not deregister")
		}
	})

	t.Run("a panic stops the worker", func(t *testing.T) {
		t.Parallel()
		gw := newFakeGateway(t)
		bus := newTestBus(t, gw.URL(), WithService("auth"))
		bus.Go(func(ctx context.Context) error { panic("boom") })
		_, done, result := runTestWorker(t, bus)
		select {
		case <-done:
			if err := *result; err == nil || err.Error() != "lightbus: background task task-1: panic: boom" {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the worker did not stop")
		}
	})

	t.Run("cancelled on shutdown; nil is done", func(t *testing.T) {
		t.Parallel()
		gw := newFakeGateway(t)
		bus := newTestBus(t, gw.URL(), WithService("auth"))
		var cancelled, finished atomic.Bool
		bus.Go(func(ctx context.Context) error {
			<-ctx.Done()
			cancelled.Store(true)
			return ctx.Err() // an error at shutdown is not a failure
		})
		bus.Go(func(ctx context.Context) error { finished.Store(true); return nil })
		stop, _, _ := runTestWorker(t, bus)
		testwait.For(t, 10*time.Second, "the short task to finish", finished.Load)
		if err := stop(); err != nil {
			t.Fatalf("Run = %v", err)
		}
		if !cancelled.Load() {
			t.Error("Run returned before the task saw its ctx cancelled")
		}
	})

	t.Run("restart on failure", func(t *testing.T) {
		t.Parallel()
		gw := newFakeGateway(t)
		bus := newTestBus(t, gw.URL(), WithService("auth"))
		var runs atomic.Int32
		bus.Go(func(ctx context.Context) error {
			switch runs.Add(1) {
			case 1:
				return errors.New("first")
			case 2:
				panic("second")
			}
			<-ctx.Done()
			return nil
		}, RestartOnFailure())
		stop, done, result := runTestWorker(t, bus)
		testwait.For(t, 10*time.Second, "the third run", func() bool { return runs.Load() == 3 })
		select {
		case <-done:
			t.Fatalf("the worker stopped: %v", *result)
		default:
		}
		if err := stop(); err != nil {
			t.Fatalf("Run = %v", err)
		}
	})

	t.Run("skipped", func(t *testing.T) {
		t.Parallel()
		gw := newFakeGateway(t)
		bus := newTestBus(t, gw.URL(), WithService("auth"))
		var ran atomic.Bool
		bus.Go(func(ctx context.Context) error { ran.Store(true); return errors.New("should not run") })
		if err := bus.applyEnv(func(k string) string {
			if k == EnvSkip {
				return "tasks"
			}
			return ""
		}); err != nil {
			t.Fatal(err)
		}
		stop, _, _ := runTestWorker(t, bus)
		testwait.For(t, 10*time.Second, "the worker to register", func() bool {
			gw.mu.Lock()
			defer gw.mu.Unlock()
			return len(gw.puts) > 0
		})
		if err := stop(); err != nil || ran.Load() {
			t.Fatalf("Run = %v, task ran: %v", err, ran.Load())
		}
	})

	t.Run("added while running", func(t *testing.T) {
		t.Parallel()
		gw := newFakeGateway(t)
		bus := newTestBus(t, gw.URL(), WithService("auth"))
		started := make(chan struct{})
		bus.OnStart(func(context.Context) error { close(started); return nil })
		_, done, result := runTestWorker(t, bus)
		<-started
		testwait.For(t, 10*time.Second, "the worker to run its tasks", func() bool {
			bus.mu.RLock()
			defer bus.mu.RUnlock()
			return bus.runner != nil
		})
		bus.Go(func(ctx context.Context) error { return errors.New("late") })
		select {
		case <-done:
			if err := *result; err == nil || !strings.Contains(err.Error(), "late") {
				t.Errorf("Run = %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("a task added while running did not run")
		}
	})
}
