package lightbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"log"
	"net/http"
	"time"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
)

func ExampleBus_Call() {
	bus := lightbus.MustCreate() // the gateway from $LIGHTBUS_URL
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var valid bool
	err := bus.Call(ctx, "auth.check_password", map[string]string{"username": "admin", "password": "secret"}, &valid)
	var lerr *lightbus.Error
	switch {
	case errors.As(err, &lerr) && lerr.Code == lightbus.CodeRemoteError:
		log.Printf("check_password failed: %s: %s", lerr.ErrorType, lerr.Message)
	case lightbus.IsCode(err, lightbus.CodeNoWorker):
		log.Print("no auth worker is running")
	case err != nil:
		log.Print(err)
	default:
		log.Printf("valid: %v", valid)
	}
}

func ExampleBus_Fire() {
	bus := lightbus.MustCreate(lightbus.WithService("auth"))
	res, err := bus.Fire(context.Background(), "auth.user_registered", map[string]string{"username": "sally", "email": "sally@example.com"})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("event %s queued for %d listener groups", res.ID, res.Deliveries)
}

type CheckPasswordParams struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

var CheckPassword = lightbus.NewRPC[CheckPasswordParams, bool]("auth", "check_password")

func ExampleNewRPC() {
	bus := lightbus.MustCreate(lightbus.WithService("auth"))

	// In the auth service's worker:
	CheckPassword.Handle(bus, func(ctx context.Context, p CheckPasswordParams) (bool, error) {
		if p.Username == "" {
			return false, lightbus.NewError("InvalidUsername", "username is empty")
		}
		return p.Username == "admin" && p.Password == "secret", nil
	}, lightbus.RPCTimeout(2*time.Second))

	// Anywhere:
	ok, err := CheckPassword.Call(context.Background(), bus, CheckPasswordParams{Username: "admin", Password: "secret"})
	log.Print(ok, err)
}

type NewCustomerParams struct {
	Name  string `json:"name"`
	Email string `json:"email"`
}

var NewCustomer = lightbus.NewEvent[NewCustomerParams]("customers", "new_customer")

func ExampleBus_Listen() {
	bus := lightbus.MustCreate(lightbus.WithService("auth"))
	bus.OnStart(func(ctx context.Context) error {
		// Typed: the parameters decoded into a NewCustomerParams.
		NewCustomer.Listen(bus, "create_user", func(ctx context.Context, ev lightbus.EventMessage, p NewCustomerParams) error {
			return bus.Call(ctx, "auth.create_user", map[string]string{"username": p.Name, "email": p.Email}, nil)
		})
		// Untyped, and every event of an API, in another listener group.
		bus.Listen("customers.*", "audit", func(ctx context.Context, ev lightbus.EventMessage) error {
			log.Printf("%s.%s %s attempt %d: %s", ev.API, ev.Event, ev.ID, ev.Attempt, ev.Params)
			return nil
		})
		return nil
	})
	lightbus.Main(bus) // serves, registers and heartbeats until SIGINT or SIGTERM
}

func ExampleBus_Handler() {
	bus := lightbus.MustCreate(lightbus.WithService("orders"))
	bus.Handle("orders.count", func(ctx context.Context, params json.RawMessage) (any, error) {
		return 42, nil
	})

	// The service's own server also serves the worker endpoints.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("orders")) })
	mux.Handle("POST /lightbus/", bus.Handler())
	srv := &http.Server{Addr: ":8000", Handler: mux}
	go func() { log.Print(srv.ListenAndServe()) }()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := bus.RunRegistration(ctx, "http://orders.internal:8000"); err != nil {
		log.Fatal(err)
	}
}
