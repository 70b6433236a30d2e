package gateway

import (
	"context"
	"encoding/json"
	"fmt"
)

// validateEvent checks a fired event against its API's current schema:
// unknown APIs and events pass unless the gateway is strict (ENotFound);
// parameters that do not match are an EValidation error listing each
// violation. Call it before the event is stored. An event that passes
// although its API's schema does not declare it (a typo, often) comes with
// a warning for the caller, naming the declared event it is closest to.
func (s *Service) validateEvent(ctx context.Context, ev *Event) (warning string, err error) {
	if s.cfg.SchemaCache == nil {
		return "", nil
	}
	api, err := s.schemaOf(ctx, ev.API)
	if err != nil {
		return "", err
	}
	if api == nil {
		if s.cfg.StrictSchemas {
			return "", Errorf(ENotFound, "API %q has no schema, and the gateway only accepts events of APIs with one", ev.API)
		}
		return "", nil
	}
	sch, ok := api.Event(ev.Name)
	if !ok {
		undeclared := fmt.Sprintf("event %q is not declared by the schema of API %q (version %d)", ev.Name, ev.API, api.Version)
		hint := didYouMean(ev.Name, api.Events())
		if s.cfg.StrictSchemas {
			return "", Errorf(ENotFound, "%s%s", undeclared, hint)
		}
		return undeclared + "; it was stored all the same" + hint, nil
	}
	if !api.Validate {
		return "", nil
	}
	vs, err := ValidateJSON(sch, ev.Params)
	if err != nil {
		return "", err
	}
	if len(vs) > 0 {
		return "", &Error{Code: EValidation, Violations: vs,
			Message: fmt.Sprintf("the parameters of %s.%s do not match its schema (version %d)", ev.API, ev.Name, api.Version)}
	}
	return "", nil
}

// validateCall checks an RPC's parameters as validateEvent checks an
// event's, and returns the compiled schema of its API (nil when none) for
// validateResult. Unlike an event, a call is refused when its API is
// unknown to the gateway (EUnknownAPI: no worker would ever answer it), or
// when its API's schema does not declare its RPC (ENotFound), unless the
// schema turns validation off; both errors name the nearest known name.
func (s *Service) validateCall(ctx context.Context, call *Call) (*CompiledAPI, error) {
	var api *CompiledAPI
	if s.cfg.SchemaCache != nil {
		var err error
		if api, err = s.schemaOf(ctx, call.API); err != nil {
			return nil, err
		}
	}
	if api == nil {
		if err := s.checkKnownAPI(ctx, call.API); err != nil {
			return nil, err
		}
		if s.cfg.StrictSchemas && s.cfg.SchemaCache != nil {
			return nil, Errorf(ENotFound, "API %q has no schema, and the gateway only accepts calls to APIs with one", call.API)
		}
		return nil, nil
	}
	params, _, ok := api.RPC(call.Method)
	if !ok {
		if s.cfg.StrictSchemas || api.Validate {
			return nil, undeclaredRPC(api, call)
		}
		return api, nil
	}
	if !api.Validate {
		return api, nil
	}
	vs, err := ValidateJSON(params, call.Params)
	if err != nil {
		return nil, err
	}
	if len(vs) > 0 {
		return nil, &Error{Code: EValidation, Violations: vs,
			Message: fmt.Sprintf("the parameters of %s.%s do not match its schema (version %d)", call.API, call.Method, api.Version)}
	}
	return api, nil
}

// validateResult checks a worker's result against the RPC's result schema
// (when ValidateResults is on). A result that does not match is the
// worker's fault: EBadGateway, with the violations pointing into the result.
func (s *Service) validateResult(api *CompiledAPI, call *Call, result json.RawMessage) error {
	if api == nil || !s.cfg.ValidateResults || !api.Validate {
		return nil
	}
	_, sch, ok := api.RPC(call.Method)
	if !ok || sch == nil {
		return nil
	}
	// The validator is safe on what the JSON bounds allow (a number beyond
	// them can make it panic); a worker's result is held to them too.
	if err := CheckJSON("the result", result); err != nil {
		return WrapError(EBadGateway, err, fmt.Sprintf("the result of %s.%s is beyond the gateway's JSON limits: %s", call.API, call.Method, ErrorMessage(err)))
	}
	vs, err := ValidateJSON(sch, result)
	if err != nil {
		return WrapError(EBadGateway, err, fmt.Sprintf("the result of %s.%s is not valid JSON", call.API, call.Method))
	}
	if len(vs) > 0 {
		return &Error{Code: EBadGateway, Violations: vs,
			Message: fmt.Sprintf("the worker's result of %s.%s does not match its result schema (version %d)", call.API, call.Method, api.Version)}
	}
	return nil
}

// compileDeclared checks that the schemas a registration declares compile,
// so that a broken schema is refused at registration (EInvalid) instead of
// becoming the current version.
func (s *Service) compileDeclared(reg *Registration) error {
	if s.cfg.SchemaCache == nil {
		return nil
	}
	for _, a := range reg.APIs {
		doc := a.SchemaDocument()
		if doc == nil {
			continue
		}
		canon, hash, err := doc.Canonical()
		if err != nil {
			return err
		}
		if _, err := s.cfg.SchemaCache.Compile(&SchemaVersion{API: a.Name, Hash: hash, Schema: canon}); err != nil {
			return err
		}
	}
	return nil
}

// schemaOf returns the compiled current schema of api (nil when it has
// none): from the cache when it is fresh, else from the store, bounded by
// the store timeout like every store call.
func (s *Service) schemaOf(ctx context.Context, api string) (*CompiledAPI, error) {
	if compiled, ok := s.cfg.SchemaCache.Fresh(api); ok {
		return compiled, nil
	}
	var compiled *CompiledAPI
	err := s.bounded(ctx, func(ctx context.Context) (err error) {
		compiled, err = s.cfg.SchemaCache.Lookup(ctx, api)
		return err
	})
	return compiled, err
}
