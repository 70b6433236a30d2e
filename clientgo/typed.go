package lightbus

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/lightbus-go/lightbus/internal/schemacheck"
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
//
// The handle carries the JSON Schema of P (see [SchemaFor]): Declare sends it
// to the gateway, and Fire checks p against it before sending (see
// [WithValidation]).
type Event[P any] struct {
	api, name string
	params    *compiledSchema
}

// NewEvent returns the handle of the event api.name with parameters P. It
// panics on a bad name, like regexp.MustCompile, so define handles as
// package-level variables.
func NewEvent[P any](api, name string) Event[P] {
	mustSplitName("event", api+"."+name, false)
	return Event[P]{api: api, name: name, params: &compiledSchema{raw: mustSchema[P]()}}
}

// API returns the event's API name, e.g. "auth".
func (e Event[P]) API() string { return e.api }

// Name returns the event's qualified name, e.g. "auth.user_registered".
func (e Event[P]) Name() string { return e.api + "." + e.name }

// ParamsSchema returns the JSON Schema of P that the event declares.
func (e Event[P]) ParamsSchema() json.RawMessage { return e.params.raw }

// Declare declares that bus's service fires the event, with a JSON Schema of
// P as its parameters schema (see [Bus.DeclareEvent]).
func (e Event[P]) Declare(bus *Bus) {
	bus.declareEvent(e.Name(), eventDecl{ParamsSchema: e.params.raw})
}

// Fire fires the event with parameters p through c, a *Bus or a test
// double (see [Bus.Fire]). Unless c is a *Bus created with
// WithValidation(false), p is first checked against P's schema: parameters
// that do not match are an *Error with CodeValidation and its Violations,
// and nothing is sent.
func (e Event[P]) Fire(ctx context.Context, c Client, p P, opts ...CallOption) (FireResult, error) {
	if err := checkParams(c, "fire", e.Name(), e.params, p); err != nil {
		return FireResult{}, err
	}
	return c.Fire(ctx, e.Name(), p, opts...)
}

// Listen runs fn for each delivery of the event to the listener group
// (bus's service, listener), with the parameters decoded into a P (see
// [Bus.Listen]). Parameters that do not decode are an error wrapping
// [ErrInvalidParams], without calling fn, which goes through the group's
// error policy ([OnError]): by default the answer is 400 invalid.
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
//
// The handle carries the JSON Schemas of P and R (see [SchemaFor]): Handle
// sends them to the gateway, and Call checks p before sending (see
// [WithValidation]).
type RPC[P, R any] struct {
	api, name string
	params    *compiledSchema
	result    json.RawMessage
}

// NewRPC returns the handle of the RPC api.name. It panics on a bad name,
// like regexp.MustCompile, so define handles as package-level variables.
func NewRPC[P, R any](api, name string) RPC[P, R] {
	mustSplitName("rpc", api+"."+name, false)
	return RPC[P, R]{api: api, name: name, params: &compiledSchema{raw: mustSchema[P]()}, result: mustSchema[R]()}
}

// API returns the RPC's API name, e.g. "auth".
func (r RPC[P, R]) API() string { return r.api }

// Name returns the RPC's qualified name, e.g. "auth.check_password".
func (r RPC[P, R]) Name() string { return r.api + "." + r.name }

// ParamsSchema returns the JSON Schema of P that the RPC declares.
func (r RPC[P, R]) ParamsSchema() json.RawMessage { return r.params.raw }

// ResultSchema returns the JSON Schema of R that the RPC declares.
func (r RPC[P, R]) ResultSchema() json.RawMessage { return r.result }

// Call calls the RPC with p through c, a *Bus or a test double, and
// decodes its result (see [Bus.Call]). Unless c is a *Bus created with
// WithValidation(false), p is first checked against P's schema: parameters
// that do not match are an *Error with CodeValidation and its Violations,
// and nothing is sent.
func (r RPC[P, R]) Call(ctx context.Context, c Client, p P, opts ...CallOption) (R, error) {
	var res R
	if err := checkParams(c, "call", r.Name(), r.params, p); err != nil {
		return res, err
	}
	err := c.Call(ctx, r.Name(), p, &res, opts...)
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
	bus.handle(name, h, rpcDecl{ParamsSchema: r.params.raw, ResultSchema: r.result}, opts)
}

// checkParams validates params against a locally known schema before a fire
// or call through c (what is "fire" or "call"), unless c is a *Bus with
// validation off. A schema that does not compile or parameters that do not
// encode are left for Fire and Call to report.
func checkParams(c Client, what, name string, s *compiledSchema, params any) error {
	if b, ok := c.(*Bus); (ok && !b.validate) || s == nil || s.raw == nil {
		return nil
	}
	compiled, err := s.get()
	if err != nil {
		return nil
	}
	body, err := encodeParams(params)
	if err != nil {
		return nil
	}
	vs, err := schemacheck.Validate(compiled, body)
	if err != nil || len(vs) == 0 {
		return nil
	}
	return fmt.Errorf("lightbus: %s %s: %w", what, name, &Error{
		Status:     http.StatusUnprocessableEntity,
		Code:       CodeValidation,
		Title:      "Validation failed",
		Detail:     fmt.Sprintf("the parameters of %s do not match its schema (checked before sending)", name),
		Violations: vs,
	})
}
