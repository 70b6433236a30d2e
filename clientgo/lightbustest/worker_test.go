package lightbustest_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/clientgo/lightbustest"
	"github.com/lightbus-go/lightbus/internal/testwait"
)

// logTo returns the logger of gw's clients, which logs to t (and drops
// what comes after t ends).
func logTo(t *testing.T, gw *lightbustest.Gateway) *slog.Logger {
	return gw.Client(t).Logger()
}

// counter counts calls by key.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) add(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[key]++
}

func (c *counter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

// finalDelivery waits until the delivery of event id to listener is
// finished (completed, dead or cancelled) and returns it.
func finalDelivery(t *testing.T, client *lightbus.Bus, id, listener string) lightbus.Delivery {
	t.Helper()
	var got lightbus.Delivery
	testwait.For(t, 2*time.Minute, "the delivery of "+id+" to "+listener+" finished", func() bool {
		ev, err := client.Event(t.Context(), id)
		if err != nil {
			t.Logf("event %s: %v", id, err)
			return false
		}
		i := slices.IndexFunc(ev.Deliveries, func(d lightbus.Delivery) bool { return d.Listener == listener })
		if i < 0 {
			return false
		}
		got = ev.Deliveries[i]
		return got.State == "completed" || got.State == "dead" || got.State == "cancelled"
	})
	return got
}

// TestListenerErrorPolicy fires events whose listeners fail or panic at
// two listener groups of a real gateway: the group with AcknowledgeAndLog
// is delivered once and recorded delivered; the group with the default
// policy is retried until it is dead.
func TestListenerErrorPolicy(t *testing.T) {
	t.Parallel()
	gw := lightbustest.StartGateway(t)

	var calls counter
	failing := func(group string) lightbus.ListenerFunc {
		return func(ctx context.Context, ev lightbus.EventMessage) error {
			calls.add(group + "/" + ev.ID)
			if ev.Event == "crashed" {
				panic("the listener panics")
			}
			return errors.New("the listener fails")
		}
	}
	bus := lightbus.MustCreate(append(gw.Options(), lightbus.WithService("shop"), lightbus.WithLogger(logTo(t, gw)))...)
	bus.DeclareEvent("shop.failed")
	bus.DeclareEvent("shop.crashed")
	policy := lightbus.WithPolicy(lightbus.Policy{MaxAttempts: 3})
	for _, event := range []string{"shop.failed", "shop.crashed"} {
		bus.Listen(event, "acknowledged", failing("acknowledged"), policy, lightbus.OnError(lightbus.AcknowledgeAndLog))
		bus.Listen(event, "retried", failing("retried"), policy)
	}
	gw.Run(t, bus)

	client := gw.Client(t)
	for _, event := range []string{"shop.failed", "shop.crashed"} {
		res, err := client.Fire(t.Context(), event, nil)
		if err != nil {
			t.Fatal(err)
		}
		if d := finalDelivery(t, client, res.ID, "acknowledged"); d.State != "completed" || d.Attempt != 1 {
			t.Errorf("%s to the acknowledging group: %s after %d attempts, want completed after 1", event, d.State, d.Attempt)
		}
		if n := calls.get("acknowledged/" + res.ID); n != 1 {
			t.Errorf("%s: the acknowledging listener ran %d times, want once", event, n)
		}
		if d := finalDelivery(t, client, res.ID, "retried"); d.State != "dead" || d.Attempt != 3 {
			t.Errorf("%s to the retrying group: %s after %d attempts, want dead after 3", event, d.State, d.Attempt)
		}
		if n := calls.get("retried/" + res.ID); n != 3 {
			t.Errorf("%s: the retrying listener ran %d times, want 3", event, n)
		}
	}
}

// TestBackgroundTaskFailureStopsWorker runs a worker whose background task
// fails once the worker is registered: Run returns the task's error and the
// gateway no longer lists the worker.
func TestBackgroundTaskFailureStopsWorker(t *testing.T) {
	t.Parallel()
	gw := lightbustest.StartGateway(t)

	errBroken := errors.New("the feed is broken")
	fail := make(chan struct{})
	bus := lightbus.MustCreate(append(gw.Options(), lightbus.WithService("feeds"), lightbus.WithLogger(logTo(t, gw)))...)
	bus.Handle("feeds.ping", func(ctx context.Context, params json.RawMessage) (any, error) { return "pong", nil })
	bus.Go(func(ctx context.Context) error {
		select {
		case <-fail:
			return errBroken
		case <-ctx.Done():
			return nil
		}
	}, lightbus.TaskName("poll_feed"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- bus.Run(ctx) }()

	client := gw.Client(t)
	listed := func() bool {
		workers, err := client.Workers(t.Context())
		if err != nil {
			t.Fatalf("workers: %v", err)
		}
		return slices.ContainsFunc(workers, func(w lightbus.Worker) bool { return w.ID == bus.WorkerID() })
	}
	testwait.For(t, time.Minute, "the worker registered", listed)

	close(fail)
	select {
	case err := <-done:
		if !errors.Is(err, errBroken) {
			t.Errorf("Run = %v, want the task's error", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the worker still runs a minute after its background task failed")
	}
	if listed() {
		t.Error("the gateway still lists the worker after it stopped")
	}
}

// testSpanContext is a caller's trace, sent with a fire.
var testSpanContext = trace.NewSpanContext(trace.SpanContextConfig{
	TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
	SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
	TraceFlags: trace.FlagsSampled,
	Remote:     true,
})

// TestMiddlewareThroughGateway checks what a worker's middleware sees of
// real requests through a gateway: an RPC middleware the API, method and
// deadline of a call; a listener middleware the event id and attempt of
// each delivery, and the trace of the fire.
func TestMiddlewareThroughGateway(t *testing.T) {
	t.Parallel()
	gw := lightbustest.StartGateway(t)

	type seenDelivery struct {
		info  lightbus.DeliveryInfo
		ok    bool
		trace trace.TraceID
	}
	rpcs := make(chan lightbus.RPCInfo, 10)
	deliveries := make(chan seenDelivery, 10)
	bus := lightbus.MustCreate(append(gw.Options(), lightbus.WithService("auth"), lightbus.WithLogger(logTo(t, gw)),
		lightbus.WithRPCMiddleware(func(next lightbus.HandlerFunc) lightbus.HandlerFunc {
			return func(ctx context.Context, params json.RawMessage) (any, error) {
				info, ok := lightbus.RPCFromContext(ctx)
				if !ok {
					t.Error("RPCFromContext in RPC middleware: no RPC")
				}
				rpcs <- info
				return next(ctx, params)
			}
		}),
		lightbus.WithListenerMiddleware(func(next lightbus.ListenerFunc) lightbus.ListenerFunc {
			return func(ctx context.Context, ev lightbus.EventMessage) error {
				info, ok := lightbus.DeliveryFromContext(ctx)
				deliveries <- seenDelivery{info: info, ok: ok, trace: trace.SpanContextFromContext(ctx).TraceID()}
				return next(ctx, ev)
			}
		}),
	)...)
	checkPassword.Handle(bus, func(ctx context.Context, p checkParams) (bool, error) { return true, nil })
	userRegistered.Declare(bus)
	userRegistered.Listen(bus, "welcome", func(ctx context.Context, ev lightbus.EventMessage, p registeredParams) error {
		if ev.Attempt == 1 {
			return errors.New("the first attempt fails")
		}
		return nil
	}, lightbus.WithPolicy(lightbus.Policy{MaxAttempts: 5}))
	gw.Run(t, bus)
	client := gw.Client(t)

	// An RPC with a 7s timeout: the handler's deadline is 7s after the call
	// left, give or take the clocks of one machine.
	start := time.Now()
	if _, err := checkPassword.Call(t.Context(), client, checkParams{Username: "admin"}, lightbus.Timeout(7*time.Second)); err != nil {
		t.Fatal(err)
	}
	end := time.Now()
	select {
	case info := <-rpcs:
		if info.API != "auth" || info.Method != "check_password" || info.RequestID == "" {
			t.Errorf("RPC middleware saw %+v, want auth.check_password with a request id", info)
		}
		if info.Deadline.Before(start.Add(6*time.Second)) || info.Deadline.After(end.Add(7*time.Second)) {
			t.Errorf("RPC middleware saw deadline %v, want 7s after the call (%v to %v)", info.Deadline, start, end)
		}
	default:
		t.Error("the RPC middleware did not run")
	}

	// A traced fire whose first delivery attempt fails: the middleware sees
	// both attempts of the same event, with the fire's trace.
	traced := trace.ContextWithRemoteSpanContext(t.Context(), testSpanContext)
	res, err := userRegistered.Fire(traced, client, registeredParams{Username: "sally", Email: "sally@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; attempt <= 2; attempt++ {
		select {
		case got := <-deliveries:
			want := lightbus.DeliveryInfo{
				EventID: res.ID, API: "auth", Event: "user_registered", Attempt: attempt,
				Service: "auth", Listener: "welcome", Time: got.info.Time,
			}
			if !got.ok || got.info != want || got.info.Time.IsZero() {
				t.Errorf("listener middleware, attempt %d: %+v (ok %v), want %+v with a time", attempt, got.info, got.ok, want)
			}
			if got.trace != testSpanContext.TraceID() {
				t.Errorf("listener middleware, attempt %d: trace %v, want the fire's %v", attempt, got.trace, testSpanContext.TraceID())
			}
		case <-time.After(2 * time.Minute):
			t.Fatalf("no delivery attempt %d within two minutes", attempt)
		}
	}
}
