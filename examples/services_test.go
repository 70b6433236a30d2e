// The example services together, against a private gateway: a new customer
// becomes a user, as in the README's walk-through.
package examples_test

import (
	"context"
	"errors"
	"testing"
	"time"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/clientgo/lightbustest"
	authbus "github.com/lightbus-go/lightbus/examples/auth/bus"
	customersbus "github.com/lightbus-go/lightbus/examples/customers/bus"
)

func TestMain(m *testing.M) { lightbustest.Main(m) }

func TestServices(t *testing.T) {
	t.Parallel()
	gw := lightbustest.StartGateway(t)
	gw.Run(t, authbus.New(gw.Options()...))
	gw.Run(t, customersbus.New(gw.Options()...))

	// A third service listens to auth.user_registered, to see the end of
	// the chain.
	registered := make(chan authbus.UserRegisteredParams, 10)
	watcher := lightbus.MustCreate(append(gw.Options(), lightbus.WithService("watcher"))...)
	authbus.UserRegistered.Listen(watcher, "record", func(ctx context.Context, ev lightbus.EventMessage, p authbus.UserRegisteredParams) error {
		registered <- p
		return nil
	})
	gw.Run(t, watcher)

	client := gw.Client(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if _, err := customersbus.NewCustomer.Fire(ctx, client, customersbus.NewCustomerParams{Name: "Bob Smith", Email: "bob@example.com"}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-registered:
		if p != (authbus.UserRegisteredParams{Username: "bob_smith", Email: "bob@example.com"}) {
			t.Errorf("auth.user_registered with %+v, want bob_smith", p)
		}
	case <-ctx.Done():
		t.Fatal("no auth.user_registered within two minutes of the new customer")
	}

	// The user exists now: creating it again says so.
	res, err := authbus.CreateUser.Call(ctx, client, authbus.CreateUserParams{Username: "bob_smith", Email: "bob@example.com"})
	if err != nil || res.Created {
		t.Errorf("create_user bob_smith again = %+v %v, want it found", res, err)
	}
	// The domain error of auth reaches the caller through the gateway.
	_, err = authbus.CreateUser.Call(ctx, client, authbus.CreateUserParams{Username: "x"})
	if !errors.Is(err, authbus.ErrMissingFields) || !lightbus.IsCode(err, lightbus.CodeInvalid) {
		t.Errorf("create_user without email = %v, want 400 invalid MissingFields", err)
	}
}
