package lightbus

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type runBundle struct {
	gw     *fakeGateway
	bus    *Bus
	cancel context.CancelFunc
	done   chan error // Run's result

	mu     sync.Mutex
	hooks  []string
	events chan newCustomerParams
}

// startWorker runs a worker of service "auth" against a fake gateway; the
// worker checks passwords, declares auth.user_registered and listens to
// customers.new_customer.
func startWorker(t *testing.T, gw *fakeGateway, opts ...Option) *runBundle {
	t.Helper()
	rb := &runBundle{gw: gw, done: make(chan error, 1), events: make(chan newCustomerParams, 10)}
	rb.bus = newTestBus(t, gw.URL(), append([]Option{WithService("auth"), WithLeaseTTL(time.Second)}, opts...)...)
	checkPassword.Handle(rb.bus, func(ctx context.Context, p checkPasswordParams) (bool, error) {
		if p.Username == "" {
			return false, NewError("InvalidUsername", "no username")
		}
		return p.Username == "admin" && p.Password == "secret", nil
	}, RPCTimeout(3*time.Second))
	NewEvent[struct{}]("auth", "user_registered").Declare(rb.bus)
	hook := func(name string) func(context.Context) error {
		return func(context.Context) error {
			rb.mu.Lock()
			defer rb.mu.Unlock()
			rb.hooks = append(rb.hooks, name)
			return nil
		}
	}
	rb.bus.OnStart(hook("start 1"))
	rb.bus.OnStart(func(ctx context.Context) error {
		newCustomer.Listen(rb.bus, "create_user", func(ctx context.Context, ev EventMessage, p newCustomerParams) error {
			rb.events <- p
			return nil
		})
		return hook("start 2")(ctx)
	})
	rb.bus.OnStop(hook("stop 1"))
	rb.bus.OnStop(hook("stop 2"))
	ctx, cancel := context.WithCancel(context.Background())
	rb.cancel = cancel
	go func() { rb.done <- rb.bus.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-rb.done
	})
	return rb
}

// stop stops the worker and returns Run's result.
func (rb *runBundle) stop(t *testing.T) error {
	t.Helper()
	rb.cancel()
	select {
	case err := <-rb.done:
		rb.done <- err // for the cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

func (rb *runBundle) waitRegistered(t *testing.T) registrationBody {
	t.Helper()
	return rb.gw.waitRegistered(t, rb.bus.WorkerID())
}

func TestRun(t *testing.T) {
	t.Parallel()
	gw := newFakeGateway(t)
	rb := startWorker(t, gw)
	reg := rb.waitRegistered(t)

	// The registration declares what was set up, hooks included.
	if reg.Service != "auth" || reg.LeaseTTLMS != 1000 || !strings.HasPrefix(reg.BaseURL, "http://127.0.0.1:") {
		t.Errorf("registration = %+v", reg)
	}
	if len(reg.APIs) != 1 || reg.APIs[0].Name != "auth" ||
		len(reg.APIs[0].RPCs) != 1 || reg.APIs[0].RPCs[0].Name != "check_password" || reg.APIs[0].RPCs[0].TimeoutMS != 3000 ||
		len(reg.APIs[0].RPCs[0].ParamsSchema) == 0 || len(reg.APIs[0].RPCs[0].ResultSchema) == 0 ||
		len(reg.APIs[0].Events) != 1 || reg.APIs[0].Events[0].Name != "user_registered" {
		t.Errorf("apis = %+v", reg.APIs)
	}
	wantListeners := []listenerDecl{{Name: "create_user", Events: []string{"customers.new_customer"}, Path: "/lightbus/events/create_user"}}
	if len(reg.Listeners) != 1 || reg.Listeners[0].Name != wantListeners[0].Name || reg.Listeners[0].Path != wantListeners[0].Path ||
		!slices.Equal(reg.Listeners[0].Events, wantListeners[0].Events) {
		t.Errorf("listeners = %+v, want %+v", reg.Listeners, wantListeners)
	}

	// A client calls the worker's RPC through the gateway.
	client := newTestBus(t, gw.URL())
	ok, err := checkPassword.Call(t.Context(), client, checkPasswordParams{"admin", "secret"})
	if err != nil || !ok {
		t.Errorf("CheckPassword = %v, %v; want true", ok, err)
	}
	_, err = checkPassword.Call(t.Context(), client, checkPasswordParams{})
	var lerr *Error
	if !errors.As(err, &lerr) || lerr.Code != CodeRemoteError || lerr.ErrorType != "InvalidUsername" || lerr.Message != "no username" {
		t.Errorf("CheckPassword without username: err = %v", err)
	}
	var raw json.RawMessage
	if err := client.Call(t.Context(), "auth.create_user", nil, &raw); !IsCode(err, CodeNotFound) {
		t.Errorf("an RPC the worker does not serve: err = %v", err)
	}

	// A client fires an event; the gateway delivers it, signed with the
	// granted secret, to the listener.
	res, err := newCustomer.Fire(t.Context(), client, newCustomerParams{"Sally", "sally@example.com"})
	if err != nil || res.Deliveries != 1 {
		t.Fatalf("Fire = %+v, %v", res, err)
	}
	if d := <-gw.delivered; d.status != http.StatusNoContent || d.listener != "auth.create_user" {
		t.Errorf("delivery = %+v", d)
	}
	if p := <-rb.events; p != (newCustomerParams{"Sally", "sally@example.com"}) {
		t.Errorf("listener got %+v", p)
	}

	// The worker heartbeats.
	puts, _ := gw.counts()
	poll.For(t, waitTimeout, "heartbeats", func() bool { p, _ := gw.counts(); return p >= puts+2 })

	// A gateway that lost the registration gets it back at the next heartbeat.
	gw.forget()
	rb.waitRegistered(t)

	// Stopping deregisters and runs the hooks.
	if err := rb.stop(t); err != nil {
		t.Fatalf("Run = %v, want nil after a clean stop", err)
	}
	if _, deletes := gw.counts(); deletes != 1 {
		t.Errorf("DELETEs = %d, want 1", deletes)
	}
	if _, ok := gw.registered(rb.bus.WorkerID()); ok {
		t.Error("the worker is still registered")
	}
	if want := []string{"start 1", "start 2", "stop 2", "stop 1"}; !slices.Equal(rb.hooks, want) {
		t.Errorf("hooks ran %q, want %q", rb.hooks, want)
	}
}

func TestRunDrainsBeforeDeregistering(t *testing.T) {
	t.Parallel()
	gw := newFakeGateway(t)
	bus := newTestBus(t, gw.URL(), WithService("slow"))
	entered, release := make(chan struct{}), make(chan struct{})
	bus.Handle("slow.work", func(ctx context.Context, params json.RawMessage) (any, error) {
		close(entered)
		<-release
		return "done", nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- bus.Run(ctx) }()
	gw.waitRegistered(t, bus.WorkerID())

	client := newTestBus(t, gw.URL())
	result := make(chan error, 1)
	go func() {
		var s string
		err := client.Call(context.Background(), "slow.work", nil, &s)
		if err == nil && s != "done" {
			err = errors.New("result " + s)
		}
		result <- err
	}()
	<-entered
	cancel()
	// Run waits for the handler: it has not returned nor deregistered.
	select {
	case err := <-done:
		t.Fatalf("Run returned %v with a handler in flight", err)
	default:
	}
	if _, deletes := gw.counts(); deletes != 0 {
		t.Fatal("the worker deregistered with a handler in flight")
	}
	close(release)
	if err := <-result; err != nil {
		t.Errorf("the in-flight call failed: %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
	if _, deletes := gw.counts(); deletes != 1 {
		t.Errorf("DELETEs = %d, want 1", deletes)
	}
}

func TestRunRetriesRegistration(t *testing.T) {
	t.Parallel()
	gw := newFakeGateway(t)
	gw.failPuts = 3
	rb := startWorker(t, gw)
	rb.waitRegistered(t)
	if puts, _ := gw.counts(); puts < 4 {
		t.Errorf("PUTs = %d, want the 3 failures then a success", puts)
	}
	if err := rb.stop(t); err != nil {
		t.Errorf("Run = %v", err)
	}
}

func TestRunRefused(t *testing.T) {
	t.Parallel()
	gw := newFakeGateway(t)
	gw.conflict = true
	rb := startWorker(t, gw)
	select {
	case err := <-rb.done:
		rb.done <- err
		if !IsCode(err, CodeConflict) {
			t.Errorf("Run = %v, want a conflict", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run kept going after the gateway refused the registration")
	}
	if puts, _ := gw.counts(); puts != 1 {
		t.Errorf("PUTs = %d, want 1: a refusal is not retried", puts)
	}
}

func TestRunNeedsAService(t *testing.T) {
	t.Parallel()
	bus := newTestBus(t, "http://127.0.0.1:1", WithService(""))
	if err := bus.Run(t.Context()); !errors.Is(err, errNoService) {
		t.Errorf("Run = %v", err)
	}
}

func TestRunStartHookFails(t *testing.T) {
	t.Parallel()
	gw := newFakeGateway(t)
	bus := newTestBus(t, gw.URL(), WithService("auth"))
	bus.OnStart(func(context.Context) error { return errors.New("no database") })
	if err := bus.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "no database") {
		t.Errorf("Run = %v", err)
	}
	if puts, _ := gw.counts(); puts != 0 {
		t.Errorf("the worker registered although a start hook failed")
	}
}

func TestRunRegistration(t *testing.T) {
	t.Parallel()
	gw := newFakeGateway(t)
	bus := newTestBus(t, gw.URL(), WithService("orders"), WithLeaseTTL(time.Second))
	bus.Handle("orders.count", func(ctx context.Context, params json.RawMessage) (any, error) { return 7, nil })

	// The service's own server mounts the worker endpoints.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("home")) })
	mux.Handle("POST /lightbus/", bus.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bus.RunRegistration(ctx, srv.URL) }()
	gw.waitRegistered(t, bus.WorkerID())

	var n int
	if err := bus.Call(t.Context(), "orders.count", nil, &n); err != nil || n != 7 {
		t.Errorf("orders.count = %d, %v", n, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("RunRegistration = %v", err)
	}
	if _, ok := gw.registered(bus.WorkerID()); ok {
		t.Error("still registered after RunRegistration returned")
	}
}

func TestCreate(t *testing.T) {
	t.Parallel()
	for name, opt := range map[string]Option{
		"bad URL":         WithURL("localhost:8080"),
		"bad worker URL":  WithWorkerURL("ftp://x"),
		"bad service":     WithService("my service"),
		"bad worker id":   WithWorkerID("a/b"),
		"short lease":     WithLeaseTTL(100 * time.Millisecond),
		"no concurrency":  WithMaxConcurrency(0),
		"no shutdown":     WithShutdownTimeout(0),
		"negative timout": WithCallTimeout(-time.Second),
	} {
		if _, err := Create(opt); err == nil {
			t.Errorf("%s: Create succeeded", name)
		}
	}
	bus, err := Create(WithURL("http://gw.internal:8080/prefix/"), WithService("support.case"))
	if err != nil {
		t.Fatal(err)
	}
	if bus.URL() != "http://gw.internal:8080/prefix" || bus.Service() != "support.case" || !isWorkerID(bus.WorkerID()) ||
		!strings.HasPrefix(bus.WorkerID(), "support.case-") {
		t.Errorf("bus = %s %s %s", bus.URL(), bus.Service(), bus.WorkerID())
	}
}

// TestInstanceID: a Bus sends the same instance id on every PUT (its
// heartbeats), and another Bus (a new process) another one, so that the
// gateway tells a registration from a heartbeat.
func TestInstanceID(t *testing.T) {
	t.Parallel()
	a := newTestBus(t, "http://127.0.0.1:1", WithService("auth"), WithWorkerID("auth-1"))
	b := newTestBus(t, "http://127.0.0.1:1", WithService("auth"), WithWorkerID("auth-1"))
	first, again := a.registrationBody("http://127.0.0.1:2"), a.registrationBody("http://127.0.0.1:2")
	other := b.registrationBody("http://127.0.0.1:2")
	if first.InstanceID == "" || first.InstanceID != again.InstanceID || other.InstanceID == first.InstanceID {
		t.Fatalf("instance ids %q, %q (same bus), %q (another bus)", first.InstanceID, again.InstanceID, other.InstanceID)
	}
}
