// Package bus is the bus package of the example "customers" service. It
// declares the event customers.new_customer, and its worker (`lightbus run`
// in examples/customers) listens to it: for each new customer it calls
// auth.create_user, so that every customer gets a user account.
package bus

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
)

// NewCustomerParams are the parameters of customers.new_customer.
type NewCustomerParams struct {
	Name  string `json:"name"`  // the customer's name, e.g. "Sally"
	Email string `json:"email"` // the customer's email
}

// NewCustomer is fired for each new customer.
var NewCustomer = lightbus.NewEvent[NewCustomerParams]("customers", "new_customer")

// Bus is the customers service's bus, configured from the environment
// (LIGHTBUS_URL, ...).
var Bus = New()

// New returns a Bus of service "customers" that declares NewCustomer and
// listens to it as the listener group "create_user"; opts add to or
// override the defaults. Like every bus package, it registers everything
// here, where the Bus is created: only the worker (`lightbus run`) serves
// the listener, so a process that merely fires events with Bus runs none.
func New(opts ...lightbus.Option) *lightbus.Bus {
	bus := lightbus.MustCreate(append([]lightbus.Option{lightbus.WithService("customers")}, opts...)...)
	setUp(bus, bus)
	return bus
}

// setUp declares NewCustomer on bus and listens to it with a listener that
// calls RPCs through calls: bus itself, or a mock in unit tests. The
// listener keeps the default error policy (lightbus.RetryThroughGateway):
// when auth is down, the gateway delivers the event again later.
func setUp(bus *lightbus.Bus, calls lightbus.Client) {
	NewCustomer.Declare(bus)
	NewCustomer.Listen(bus, "create_user", func(ctx context.Context, ev lightbus.EventMessage, p NewCustomerParams) error {
		return createUserForCustomer(ctx, calls, bus.Logger(), ev, p)
	})
}

// createUserForCustomer creates a user account for a new customer with the
// RPC auth.create_user. An error makes the gateway deliver the event again
// later; create_user is idempotent, so a retry is harmless.
func createUserForCustomer(ctx context.Context, calls lightbus.Client, log *slog.Logger, ev lightbus.EventMessage, p NewCustomerParams) error {
	// The customers service does not import the auth service's code: it calls
	// the RPC by name, with parameters of its own.
	params := map[string]string{
		"username": strings.ToLower(strings.Join(strings.Fields(p.Name), "_")),
		"email":    p.Email,
	}
	var result struct {
		Username string `json:"username"`
		Created  bool   `json:"created"`
	}
	if err := calls.Call(ctx, "auth.create_user", params, &result); err != nil {
		return fmt.Errorf("creating a user for customer %q: %w", p.Name, err)
	}
	log.Info("customers: user account ready", "customer", p.Name, "username", result.Username, "created", result.Created, "event_id", ev.ID, "attempt", ev.Attempt)
	return nil
}
