package lightbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// EnvParentFD names the file descriptor of the pipe that `lightbus run`
// hands its worker: the worker never reads data from it, and end of file
// means `lightbus run` is gone, so the worker stops (see [Main]).
const EnvParentFD = "LIGHTBUS_PARENT_FD"

// errParentGone is the cause of the stop of a worker whose `lightbus run`
// exited without stopping it first (killed with SIGKILL, say).
var errParentGone = errors.New("lightbus run exited")

// orphanTimeout bounds each step of the shutdown (in-flight handlers,
// deregistration, each OnStop hook) of a worker whose parent is gone:
// nobody waits for it, and a new worker may be starting in its place.
const orphanTimeout = 3 * time.Second

// Main runs bus as the worker process until SIGINT or SIGTERM, and exits
// with status 1 when [Bus.Run] fails.
//
// Main first applies the worker settings of the environment over those of
// the code: $LIGHTBUS_URL, $LIGHTBUS_TOKEN, $LIGHTBUS_SERVICE_NAME,
// $LIGHTBUS_PROCESS_NAME (the worker id, see [ProcessName]),
// $LIGHTBUS_LOG_LEVEL and $LIGHTBUS_LOG_FORMAT (a new logger to standard
// error, in place of [WithLogger]'s), and $LIGHTBUS_ONLY or $LIGHTBUS_SKIP
// (the features run: [FeatureRPCs], [FeatureEvents], [FeatureTasks]).
// `lightbus run` sets them from its flags, so a flag beats the
// environment, which beats the code. A bad value stops the worker. The main package that `lightbus run`
// generates is one call:
//
//	func main() { lightbus.Main(bus.Bus) }
//
// Started by `lightbus run`, the worker also stops when `lightbus run` goes
// away, even when killed with SIGKILL: it watches a pipe inherited from it
// ($LIGHTBUS_PARENT_FD), and on Linux it is sent SIGTERM when its parent
// dies. It then deregisters, with each shutdown step bounded by a few
// seconds, so that it never keeps taking calls with old code beside the
// worker of the next `lightbus run`.
func Main(bus *Bus) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if err := bus.applyEnv(os.Getenv); err != nil {
		bus.log.Error("lightbus: worker failed", "error", err)
		os.Exit(1)
	}
	if err := watchParent(os.Getenv(EnvParentFD), cancel); err != nil {
		bus.log.Error("lightbus: worker failed", "error", err)
		os.Exit(1)
	}
	if err := bus.Run(ctx); err != nil {
		bus.log.Error("lightbus: worker failed", "error", err)
		stop()
		os.Exit(1)
	}
}

// watchParent reads the pipe at file descriptor fd (a decimal number; ""
// for none) until end of file, then calls cancel with errParentGone.
func watchParent(fd string, cancel context.CancelCauseFunc) error {
	if fd == "" {
		return nil
	}
	n, err := strconv.Atoi(fd)
	if err != nil || n < 3 {
		return fmt.Errorf("lightbus: %s=%q: want the number of an inherited file descriptor", EnvParentFD, fd)
	}
	f := os.NewFile(uintptr(n), "lightbus-run")
	if f == nil {
		return fmt.Errorf("lightbus: %s=%q: not an open file descriptor", EnvParentFD, fd)
	}
	go func() {
		_, _ = io.Copy(io.Discard, f)
		f.Close()
		cancel(errParentGone)
	}()
	return nil
}

// stopTimeout is the bound of each shutdown step: the shutdown timeout, or
// orphanTimeout when it is shorter and the worker stops because its parent
// is gone.
func (b *Bus) stopTimeout(ctx context.Context) time.Duration {
	if errors.Is(context.Cause(ctx), errParentGone) {
		return min(b.shutdownTimeout, orphanTimeout)
	}
	return b.shutdownTimeout
}
