package lightbus

import (
	"context"
	"encoding/json"
	"fmt"
)

// Event is a typed handle on one event, api.name, whose parameters are a P
// (a struct, usually). Define it once, in the bus package of the service that
// fires it, and use it on both sides:
//
//	var UserRegistered = lightbus.NewEvent[UserRegisteredParams]("auth", "user_registered")
//
//	UserRegistered.Declare(bus)                      // the auth service fires it
//	res, err := UserRegistered.Fire(ctx, bus, p)     // fire it
//	UserRegistered.Listen(bus, "send_welcome", fn)   // another service listens
type Event[P any] struct {
	api, name string
}

// NewEvent returns the handle of the event api.name with parameters P. It
// panics on a bad name, like regexp.MustCompile, so define handles as
// package-level variables.
func NewEvent[P any](api, name string) Event[P] {
	mustSplitName("event", api+"."+name, false)
	return Event[P]{api: api, name: name}
}

// API returns the event's API name, e.g. "auth".
func (e Event[P]) API() string { return e.api }

// Name returns the event's qualified name, e.g. "auth.user_registered".
func (e Event[P]) Name() string { return e.api + "." + e.name }

// Declare declares that bus's service fires the event, with a JSON Schema of
// P as its parameters schema (see [Bus.DeclareEvent]).
func (e Event[P]) Declare(bus *Bus) {
	bus.declareEvent(e.Name(), eventDecl{ParamsSchema: schemaOf[P]()})
}

// Fire fires the event with parameters p (see [Bus.Fire]).
func (e Event[P]) Fire(ctx context.Context, bus *Bus, p P, opts ...CallOption) (FireResult, error) {
	return bus.Fire(ctx, e.Name(), p, opts...)
}

// Listen runs fn for each delivery of the event to the listener group
// (bus's service, listener), with the parameters decoded into a P (see
// [Bus.Listen]). Parameters that do not decode are answered 400 invalid
// without calling fn.
func (e Event[P]) Listen(bus *Bus, listener string, fn func(ctx context.Context, ev EventMessage, p P) error, opts ...ListenOption) {
	name := e.Name()
	bus.Listen(name, listener, func(ctx context.Context, ev EventMessage) error {
		var p P
		if err := json.Unmarshal(ev.Params, &p); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrInvalidParams, name, err)
		}
		return fn(ctx, ev, p)
	}, opts...)
}

// RPC is a typed handle on one remote procedure, api.name, that takes a P
// and returns an R. Define it once, in the bus package of the service that
// provides it:
//
//	var CheckPassword = lightbus.NewRPC[CheckPasswordParams, bool]("auth", "check_password")
//
//	CheckPassword.Handle(bus, checkPassword)         // the auth service serves it
//	ok, err := CheckPassword.Call(ctx, bus, p)       // anyone calls it
type RPC[P, R any] struct {
	api, name string
}

// NewRPC returns the handle of the RPC api.name. It panics on a bad name,
// like regexp.MustCompile, so define handles as package-level variables.
func NewRPC[P, R any](api, name string) RPC[P, R] {
	mustSplitName("rpc", api+"."+name, false)
	return RPC[P, R]{api: api, name: name}
}

// API returns the RPC's API name, e.g. "auth".
func (r RPC[P, R]) API() string { return r.api }

// Name returns the RPC's qualified name, e.g. "auth.check_password".
func (r RPC[P, R]) Name() string { return r.api + "." + r.name }

// Call calls the RPC with p and decodes its result (see [Bus.Call]).
func (r RPC[P, R]) Call(ctx context.Context, bus *Bus, p P, opts ...CallOption) (R, error) {
	var res R
	err := bus.Call(ctx, r.Name(), p, &res, opts...)
	return res, err
}

// Handle serves the RPC in bus's worker with fn, declaring JSON Schemas of P
// and R as its parameters and result schemas (see [Bus.Handle]). Parameters
// that do not decode into a P are answered 400 invalid without calling fn.
func (r RPC[P, R]) Handle(bus *Bus, fn func(ctx context.Context, p P) (R, error), opts ...HandleOption) {
	name := r.Name()
	h := func(ctx context.Context, params json.RawMessage) (any, error) {
		var p P
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrInvalidParams, name, err)
		}
		return fn(ctx, p)
	}
	bus.handle(name, h, rpcDecl{ParamsSchema: schemaOf[P](), ResultSchema: schemaOf[R]()}, opts)
}
