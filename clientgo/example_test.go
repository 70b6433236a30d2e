package lightbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
)

func ExampleBus_Call() {
	// The auth service's worker, usually a process of its own.
	auth := lightbus.MustCreate(lightbus.WithService("auth"))
	auth.Handle("auth.check_password", func(ctx context.Context, params json.RawMessage) (any, error) {
		var p struct{ Username, Password string }
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, err
		}
		if p.Username == "" {
			return nil, lightbus.NewError("InvalidUsername", "username is empty")
		}
		return p.Username == "admin" && p.Password == "secret", nil
	})
	ctx, stop := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- auth.Run(ctx) }() // its main runs lightbus.Main(auth) instead
	defer func() { stop(); <-stopped }()

	// A client anywhere: a call waits for a live worker up to its deadline.
	bus := lightbus.MustCreate() // the gateway from $LIGHTBUS_URL
	for _, username := range []string{"admin", ""} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var valid bool
		err := bus.Call(ctx, "auth.check_password", map[string]string{"username": username, "password": "secret"}, &valid)
		cancel()
		var lerr *lightbus.Error
		switch {
		case errors.As(err, &lerr) && lerr.Code == lightbus.CodeRemoteError:
			fmt.Printf("check_password failed: %s: %s\n", lerr.ErrorType, lerr.Message)
		case lightbus.IsCode(err, lightbus.CodeNoWorker):
			fmt.Println("no auth worker is running")
		case err != nil:
			fmt.Println(err)
		default:
			fmt.Println("valid:", valid)
		}
	}
	// Output:
	// valid: true
	// check_password failed: InvalidUsername: username is empty
}

func ExampleBus_Fire() {
	bus := lightbus.MustCreate(lightbus.WithService("auth"))
	res, err := bus.Fire(context.Background(), "auth.user_registered", map[string]string{"username": "sally", "email": "sally@example.com"})
	if err != nil {
		log.Fatal(err)
	}
	// The event is stored: every listener group subscribed to it (none
	// here) gets it at least once, with res.ID as its id.
	fmt.Printf("%s.%s queued for %d listener groups\n", res.API, res.Event, res.Deliveries)
	// Output: auth.user_registered queued for 0 listener groups
}

type CheckPasswordParams struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

var CheckPassword = lightbus.NewRPC[CheckPasswordParams, bool]("auth", "check_password")

func ExampleNewRPC() {
	// In the auth service's worker:
	worker := lightbus.MustCreate(lightbus.WithService("auth"))
	CheckPassword.Handle(worker, func(ctx context.Context, p CheckPasswordParams) (bool, error) {
		if p.Username == "" {
			return false, lightbus.NewError("InvalidUsername", "username is empty")
		}
		return p.Username == "admin" && p.Password == "secret", nil
	}, lightbus.RPCTimeout(2*time.Second))
	ctx, stop := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- worker.Run(ctx) }() // its main runs lightbus.Main(worker) instead
	defer func() { stop(); <-stopped }()

	// Anywhere:
	bus := lightbus.MustCreate()
	ok, err := CheckPassword.Call(context.Background(), bus, CheckPasswordParams{Username: "admin", Password: "secret"})
	fmt.Println(ok, err)
	// Output: true <nil>
}

type NewCustomerParams struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

var NewCustomer = lightbus.NewEvent[NewCustomerParams]("customers", "new_customer")

func ExampleBus_Listen() {
	bus := lightbus.MustCreate(lightbus.WithService("auth"))
	var handled sync.WaitGroup // for this example: both groups got the event
	handled.Add(2)
	// Listeners are registered where the Bus is created (in a bus package,
	// its constructor); only Run serves them.
	// Typed: the parameters decoded into a NewCustomerParams.
	NewCustomer.Listen(bus, "create_user", func(ctx context.Context, ev lightbus.EventMessage, p NewCustomerParams) error {
		defer handled.Done()
		fmt.Printf("create_user: %s <%s>\n", p.Name, p.Email)
		return nil
	})
	// Untyped, and every event of an API, in another listener group.
	bus.Listen("customers.*", "audit", func(ctx context.Context, ev lightbus.EventMessage) error {
		defer handled.Done()
		fmt.Printf("audit: %s.%s attempt %d: %s\n", ev.API, ev.Event, ev.Attempt, ev.Params)
		return nil
	})
	// Serve, register and heartbeat; a worker's main runs lightbus.Main(bus)
	// instead, until SIGINT or SIGTERM.
	ctx, stop := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- bus.Run(ctx) }()
	defer func() { stop(); <-stopped }()

	// Events fired from now on reach the worker's groups once the gateway
	// lists it (lightbus workers).
	for {
		workers, _ := bus.Workers(ctx)
		if slices.ContainsFunc(workers, func(w lightbus.Worker) bool { return w.ID == bus.WorkerID() }) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := NewCustomer.Fire(ctx, bus, NewCustomerParams{Name: "Sally", Email: "sally@example.com"}); err != nil {
		log.Fatal(err)
	}
	handled.Wait()
	// Unordered output:
	// create_user: Sally <sally@example.com>
	// audit: customers.new_customer attempt 1: {"name":"Sally","email":"sally@example.com"}
}

func ExampleOnError() {
	bus := lightbus.MustCreate(lightbus.WithService("orders"))
	// A best-effort notification: when Slack fails, log and move on rather
	// than have the gateway retry the delivery for hours.
	bus.Listen("orders.shipped", "notify_slack", func(ctx context.Context, ev lightbus.EventMessage) error {
		return postToSlack(ctx, ev.Params)
	}, lightbus.OnError(lightbus.AcknowledgeAndLog))
	// The default: an error makes the gateway deliver the event again,
	// with backoff, up to the group's max attempts (then it is dead).
	bus.Listen("orders.shipped", "update_stock", func(ctx context.Context, ev lightbus.EventMessage) error {
		return updateStock(ctx, ev.Params)
	}, lightbus.WithPolicy(lightbus.Policy{MaxAttempts: 10}))
}

func postToSlack(context.Context, json.RawMessage) error { return nil }
func updateStock(context.Context, json.RawMessage) error { return nil }

func ExampleBus_Handler() {
	bus := lightbus.MustCreate(lightbus.WithService("orders"))
	bus.Handle("orders.count", func(ctx context.Context, params json.RawMessage) (any, error) {
		return 42, nil
	})

	// The service's own server also serves the worker endpoints.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("orders")) })
	mux.Handle("POST /lightbus/", bus.Handler())
	ln, err := net.Listen("tcp", "127.0.0.1:0") // e.g. ":8000" in production
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()

	// Keep the worker registered at the server's address until ctx is
	// done; cancel it after the server stopped serving.
	ctx, cancel := context.WithCancel(context.Background())
	registered := make(chan error, 1)
	go func() { registered <- bus.RunRegistration(ctx, "http://"+ln.Addr().String()) }()
	defer func() {
		_ = srv.Shutdown(context.Background())
		cancel()
		<-registered
	}()

	var n int
	err = bus.Call(context.Background(), "orders.count", nil, &n)
	fmt.Println(n, err)
	// Output: 42 <nil>
}
