package gateway

import (
	"context"
	"encoding/json"
	"time"
)

// Call is one RPC to route.
type Call struct {
	API    string
	Method string
	Params json.RawMessage
	// Timeout overrides the declared or default deadline when positive.
	Timeout time.Duration
}

// Validate checks the call's names and that Params is a JSON object.
func (c *Call) Validate() error {
	if err := ValidateAPIName(c.API); err != nil {
		return err
	}
	if err := ValidateIdent("rpc", c.Method); err != nil {
		return err
	}
	return ValidateParams(c.Params)
}

// RPCTarget is a live worker that provides an API.
type RPCTarget struct {
	WorkerID string
	BaseURL  string
	// ExpiresAt is the end of the worker's lease; zero when unknown. A
	// cached target is not called after it.
	ExpiresAt time.Time
	// Secrets are the worker's RPC signing secrets ("whsec_..."): the
	// current one first, then the previous one while its overlap lasts.
	// None for a worker registered before secrets were issued: its calls
	// go unsigned until its next heartbeat gives it one.
	Secrets []string
}

// Forwarder sends an RPC to a live worker that provides its API.
type Forwarder interface {
	// Forward returns the worker's result. While no worker is live it
	// waits for one until the call's deadline. Errors: ENoWorker,
	// ETimeout, ERemote (the handler's own error), EInvalid, ENotFound and
	// EValidation (passed through from the worker), EBadGateway,
	// EUnavailable.
	Forward(ctx context.Context, call *Call) (json.RawMessage, error)
}

// Call checks call (names, parameters against the RPC's schema), forwards
// it to a live worker and checks the worker's result against the result
// schema. Needs call on its API. Errors: those of Forwarder.Forward,
// EValidation for parameters, EBadGateway for a result that does not
// match, EForbidden, EUnauthorized.
func (s *Service) Call(ctx context.Context, call *Call) (json.RawMessage, error) {
	if err := call.Validate(); err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, ScopeCall, call.API); err != nil {
		return nil, err
	}
	api, err := s.validateCall(ctx, call)
	if err != nil {
		return nil, err
	}
	result, err := s.cfg.Forwarder.Forward(ctx, call)
	if err != nil {
		return nil, err
	}
	if err := s.validateResult(api, call, result); err != nil {
		return nil, err
	}
	return result, nil
}
