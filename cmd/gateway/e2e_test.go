package main

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	authbus "github.com/lightbus-go/lightbus/examples/auth/bus"
	customersbus "github.com/lightbus-go/lightbus/examples/customers/bus"
	"github.com/lightbus-go/lightbus/internal/testwait"
)

// startBus runs bus as a worker against its gateway until stop is called;
// stop returns what Run returned.
func startBus(bus *lightbus.Bus) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- bus.Run(ctx) }()
	return sync.OnceValue(func() error {
		cancel()
		return <-done
	})
}

// runWorker runs bus as a worker until the test ends.
func runWorker(t *testing.T, bus *lightbus.Bus) {
	t.Helper()
	stop := startBus(bus)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("worker %s: %v", bus.WorkerID(), err)
		}
	})
}

// runBus runs bus as a worker until the test ends, and waits until it is
// registered.
func runBus(t *testing.T, bus *lightbus.Bus) {
	t.Helper()
	runWorker(t, bus)
	testwait.For(t, 10*time.Second, bus.WorkerID()+" to register", func() bool {
		workers, err := bus.Workers(context.Background())
		if err != nil {
			return false
		}
		return slices.ContainsFunc(workers, func(w lightbus.Worker) bool { return w.ID == bus.WorkerID() })
	})
}

// workerOptions configure a worker of gw serving on loopback with the given
// lease.
func workerOptions(gw *testGateway, lease time.Duration) []lightbus.Option {
	return []lightbus.Option{
		lightbus.WithURL(gw.URL),
		lightbus.WithWorkerAddr("127.0.0.1:0"),
		lightbus.WithLeaseTTL(lease),
	}
}

// TestSeedScenario runs the anatomy lesson end to end: the auth and customers
// example services as workers, a new customer fired over HTTP as curl would,
// and the user it causes auth to create.
func TestSeedScenario(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	ctx := context.Background()

	runWorker(t, authbus.New(workerOptions(gw, 2*time.Second)...))
	runWorker(t, customersbus.New(workerOptions(gw, 2*time.Second)...))
	client := newBus(t, gw.URL)
	testwait.For(t, 10*time.Second, "both workers to register", func() bool {
		workers, err := client.Workers(ctx)
		return err == nil && len(workers) == 2
	})

	// An RPC through the gateway, typed on the caller's side.
	ok, err := authbus.CheckPassword.Call(ctx, client, authbus.CheckPasswordParams{Username: "admin", Password: "secret"})
	if err != nil || !ok {
		t.Fatalf("auth.check_password(admin, secret) = %v, %v; want true", ok, err)
	}
	ok, err = authbus.CheckPassword.Call(ctx, client, authbus.CheckPasswordParams{Username: "admin", Password: "wrong"})
	if err != nil || ok {
		t.Fatalf("auth.check_password(admin, wrong) = %v, %v; want false", ok, err)
	}

	// The customers service fires new_customer; its listener calls
	// auth.create_user, which fires auth.user_registered.
	var fired fireResult
	resp := gw.do(t, "POST", "/v1/events/customers/new_customer", `{"name":"Sally","email":"sally@example.com"}`, nil, &fired)
	if resp.StatusCode != http.StatusAccepted || fired.Deliveries != 1 {
		t.Fatalf("fire new_customer: %d %+v", resp.StatusCode, fired)
	}
	var registered *lightbus.EventPage
	testwait.For(t, 15*time.Second, "auth.user_registered for sally", func() bool {
		registered, err = client.Events(ctx, lightbus.EventQuery{API: "auth", Event: "user_registered"})
		return err == nil && len(registered.Events) == 1
	})
	if got := string(registered.Events[0].Params); got != `{"username":"sally","email":"sally@example.com"}` {
		t.Errorf("user_registered params = %s", got)
	}
	ev, err := client.Event(ctx, fired.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Deliveries) != 1 || ev.Deliveries[0].Service != "customers" || ev.Deliveries[0].Listener != "create_user" {
		t.Fatalf("new_customer deliveries = %+v", ev.Deliveries)
	}
	testwait.For(t, 10*time.Second, "the new_customer delivery to complete", func() bool {
		ev, err = client.Event(ctx, fired.ID)
		return err == nil && ev.Deliveries[0].State == "completed"
	})

	// The user exists now: creating it again reports so, and fires nothing.
	res, err := authbus.CreateUser.Call(ctx, client, authbus.CreateUserParams{Username: "sally", Email: "sally@example.com"})
	if err != nil || res.Created {
		t.Fatalf("create_user(sally) again = %+v, %v; want created=false", res, err)
	}
	// A remote handler error keeps its type and message across the gateway.
	_, err = authbus.CreateUser.Call(ctx, client, authbus.CreateUserParams{Username: "nobody"})
	var lbErr *lightbus.Error
	if !errors.As(err, &lbErr) || lbErr.Code != lightbus.CodeInvalid {
		t.Fatalf("create_user without email: %v, want an invalid-params error", err)
	}
}

// TestWorkerShutdownDeregisters checks that a worker leaves routing when it
// stops, and that a call made while no worker is live waits for the next one.
func TestWorkerShutdownDeregisters(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	ctx := context.Background()
	client := newBus(t, gw.URL)

	stop := startBus(authbus.New(workerOptions(gw, 2*time.Second)...))
	testwait.For(t, 10*time.Second, "the worker to register", func() bool {
		workers, err := client.Workers(ctx)
		return err == nil && len(workers) == 1
	})
	if err := stop(); err != nil {
		t.Fatalf("worker stopped with %v", err)
	}
	workers, err := client.Workers(ctx)
	if err != nil || len(workers) != 0 {
		t.Fatalf("after shutdown: workers %+v, %v; want none", workers, err)
	}

	// A call now waits for a worker; one starts a moment later.
	go func() {
		time.Sleep(300 * time.Millisecond)
		runWorker(t, authbus.New(workerOptions(gw, 2*time.Second)...))
	}()
	callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ok, err := authbus.CheckPassword.Call(callCtx, client, authbus.CheckPasswordParams{Username: "admin", Password: "secret"})
	if err != nil || !ok {
		t.Fatalf("call across a worker restart = %v, %v", ok, err)
	}
}
