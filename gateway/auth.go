package gateway

import (
	"context"
	"strings"
)

// Scope actions: what an API key may do. Fire, call, serve and listen take
// a pattern of API names; read and admin take none.
const (
	// ScopeFire fires events of the matching APIs (one, or a batch where
	// every event's API matches).
	ScopeFire = "fire"
	// ScopeCall calls RPCs of the matching APIs.
	ScopeCall = "call"
	// ScopeServe registers workers that provide the matching APIs.
	ScopeServe = "serve"
	// ScopeListen registers listener groups whose every subscribed event
	// is of a matching API.
	ScopeListen = "listen"
	// ScopeRead lists and shows events, deliveries, listener groups,
	// workers and schemas.
	ScopeRead = "read"
	// ScopeAdmin allows everything: keys, redrives, replays, deleting
	// listener groups, publishing schemas, and all the other scopes.
	ScopeAdmin = "admin"
)

// Scope is one permission of an API key: an action and, for fire, call,
// serve and listen, the pattern of the API names it covers. A pattern is an
// API name ("billing": that API alone), a prefix wildcard ("billing.*": the
// APIs whose name starts with "billing.", not "billing" itself) or "*"
// (every API).
type Scope struct {
	Action  string
	Pattern string
}

// String returns the scope as written: "fire:billing.*", "read".
func (s Scope) String() string {
	if s.Pattern == "" {
		return s.Action
	}
	return s.Action + ":" + s.Pattern
}

// ParseScope parses a scope as written ("fire:billing", "call:billing.*",
// "serve:*", "read", "admin"). Errors: EInvalid for an unknown action or a
// bad pattern.
func ParseScope(s string) (Scope, error) {
	action, pattern, hasPattern := strings.Cut(s, ":")
	switch action {
	case ScopeRead, ScopeAdmin:
		if hasPattern {
			return Scope{}, Errorf(EInvalid, "invalid scope %q: %s takes no API pattern", s, action)
		}
		return Scope{Action: action}, nil
	case ScopeFire, ScopeCall, ScopeServe, ScopeListen:
		if !validPattern(pattern) {
			return Scope{}, Errorf(EInvalid, "invalid scope %q: want %s:PATTERN, where PATTERN is an API name (billing), a prefix wildcard (billing.*) or *", s, action)
		}
		return Scope{Action: action, Pattern: pattern}, nil
	}
	return Scope{}, Errorf(EInvalid, "invalid scope %q: want fire:PATTERN, call:PATTERN, serve:PATTERN, listen:PATTERN, read or admin", s)
}

// ParseScopes parses a key's scopes: at least one, each valid. Repeats are
// dropped; the order is kept.
func ParseScopes(scopes []string) ([]Scope, error) {
	if len(scopes) == 0 {
		return nil, Errorf(EInvalid, "a key needs at least one scope")
	}
	out := make([]Scope, 0, len(scopes))
	seen := map[Scope]bool{}
	for _, s := range scopes {
		sc, err := ParseScope(s)
		if err != nil {
			return nil, err
		}
		if !seen[sc] {
			seen[sc] = true
			out = append(out, sc)
		}
	}
	return out, nil
}

// validPattern reports whether p is "*", an API name or an API name
// followed by ".*".
func validPattern(p string) bool {
	if p == "*" {
		return true
	}
	p = strings.TrimSuffix(p, ".*")
	return ValidateAPIName(p) == nil
}

// matchAPI reports whether the API name api matches pattern (see Scope).
func matchAPI(pattern, api string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasSuffix(pattern, ".*"):
		prefix := pattern[:len(pattern)-1] // "billing."
		return len(api) > len(prefix) && strings.HasPrefix(api, prefix)
	}
	return api == pattern
}

// Allows reports whether s permits action on api (api is ignored for read
// and admin). Admin permits everything.
func (s Scope) Allows(action, api string) bool {
	switch {
	case s.Action == ScopeAdmin:
		return true
	case s.Action != action:
		return false
	case action == ScopeRead:
		return true
	}
	return matchAPI(s.Pattern, api)
}

// Principal is who makes a request: the API key it authenticated with,
// by name, and that key's scopes.
type Principal struct {
	// Key is the name of the API key.
	Key string
	// Scopes are the key's scopes.
	Scopes []Scope
}

// Allows reports whether one of p's scopes permits action on api.
func (p *Principal) Allows(action, api string) bool {
	for _, s := range p.Scopes {
		if s.Allows(action, api) {
			return true
		}
	}
	return false
}

// allowsAction reports whether p has a scope of one of the actions, on any
// pattern, or admin.
func (p *Principal) allowsAction(actions ...string) bool {
	for _, s := range p.Scopes {
		if s.Action == ScopeAdmin {
			return true
		}
		for _, a := range actions {
			if s.Action == a {
				return true
			}
		}
	}
	return false
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p, the authenticated caller whose
// scopes the service checks.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal ctx carries, or nil.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// errNoPrincipal answers a request that reached the service without an
// authenticated principal while authentication is required.
var errNoPrincipal = &Error{Code: EUnauthorized, Message: "this request needs an API key: send Authorization: Bearer <token>"}

// principal returns the caller's principal, nil (with no error) when
// authentication is off: then everyone may do everything.
func (s *Service) principal(ctx context.Context) (*Principal, error) {
	if !s.cfg.RequireAuth {
		return nil, nil
	}
	p := PrincipalFrom(ctx)
	if p == nil {
		return nil, errNoPrincipal
	}
	return p, nil
}

// authorize returns nil when the caller may do action on api (api is ""
// for read and admin): always when authentication is off. Otherwise an
// EUnauthorized error (no principal) or an EForbidden error naming the
// scope that is missing.
func (s *Service) authorize(ctx context.Context, action, api string) error {
	p, err := s.principal(ctx)
	if err != nil || p == nil {
		return err
	}
	if p.Allows(action, api) {
		return nil
	}
	return forbidden(Scope{Action: action, Pattern: api}.String())
}

// forbidden is the EForbidden error for a missing scope.
func forbidden(scope string) *Error {
	return Errorf(EForbidden, "this key lacks the scope %s", scope)
}

// authorizeRegistration checks that the caller may register reg: serve for
// every API it provides, listen for the API of every event its listener
// groups subscribe to, serve on the service's own name when it declares
// scheduled tasks, and, for a registration with none of these, a serve or
// listen scope on any pattern. reg is valid.
func (s *Service) authorizeRegistration(ctx context.Context, reg *Registration) error {
	p, err := s.principal(ctx)
	if err != nil || p == nil {
		return err
	}
	for _, a := range reg.APIs {
		if !p.Allows(ScopeServe, a.Name) {
			return forbidden(ScopeServe + ":" + a.Name)
		}
	}
	for _, l := range reg.Listeners {
		for _, e := range l.Events {
			api, _, _ := SplitQualified("event", e) // validated
			if !p.Allows(ScopeListen, api) {
				return forbidden(ScopeListen + ":" + api)
			}
		}
	}
	if len(reg.Tasks) > 0 && !p.Allows(ScopeServe, reg.Service) {
		return forbidden(ScopeServe + ":" + reg.Service)
	}
	if len(reg.APIs) == 0 && len(reg.Listeners) == 0 && len(reg.Tasks) == 0 {
		return s.authorizeWorker(ctx)
	}
	return nil
}

// authorizeWorker checks that the caller may act as a worker at all: a
// serve or listen scope on any pattern, or admin.
func (s *Service) authorizeWorker(ctx context.Context) error {
	p, err := s.principal(ctx)
	if err != nil || p == nil {
		return err
	}
	if !p.allowsAction(ScopeServe, ScopeListen) {
		return Errorf(EForbidden, "this key lacks a serve or listen scope")
	}
	return nil
}

// AuthRequired reports whether every operation needs an authenticated
// principal (LIGHTBUS_AUTH=required).
func (s *Service) AuthRequired() bool { return s.cfg.RequireAuth }

// AuthorizeMetrics returns nil when the caller may read the gateway's
// metrics, which name APIs, events, listener groups and services: it needs
// read, as listing them does. Errors: EUnauthorized, EForbidden.
func (s *Service) AuthorizeMetrics(ctx context.Context) error {
	return s.authorize(ctx, ScopeRead, "")
}

// AuthorizeRiverUI returns nil when the caller may use the River UI, which
// shows every job's arguments and can retry, cancel and delete jobs and
// pause queues: it needs admin. Errors: EUnauthorized, EForbidden.
func (s *Service) AuthorizeRiverUI(ctx context.Context) error {
	return s.authorize(ctx, ScopeAdmin, "")
}
