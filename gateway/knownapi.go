package gateway

import (
	"context"
	"slices"
	"sync"
	"time"
)

// APIDirectory knows which APIs the gateway has heard of.
type APIDirectory interface {
	// KnownAPIs returns the name of every API the gateway knows: one with
	// a schema, an owner, or named by a worker's registration, live or
	// not. Errors: EUnavailable.
	KnownAPIs(ctx context.Context) ([]string, error)
}

// knownAPITTL is how long a replica trusts its list of known APIs for an
// API on it; an API not on it is looked up again at once.
const knownAPITTL = 5 * time.Second

// knownAPIs is a replica's list of the APIs the gateway knows.
type knownAPIs struct {
	mu      sync.Mutex
	names   []string // sorted
	checked time.Time
}

// checkKnownAPI returns nil when the gateway knows api (APIDirectory), so
// that a call to it may wait for a worker to register; otherwise an
// EUnknownAPI error naming the known API closest to it. With no directory
// every API is known.
func (s *Service) checkKnownAPI(ctx context.Context, api string) error {
	if s.cfg.APIs == nil {
		return nil
	}
	s.known.mu.Lock()
	names, fresh := s.known.names, time.Since(s.known.checked) < knownAPITTL
	s.known.mu.Unlock()
	if _, found := slices.BinarySearch(names, api); found && fresh {
		return nil
	}
	checked := time.Now()
	err := s.bounded(ctx, func(ctx context.Context) (err error) {
		names, err = s.cfg.APIs.KnownAPIs(ctx)
		return err
	})
	if err != nil {
		return err
	}
	slices.Sort(names)
	s.known.mu.Lock()
	s.known.names, s.known.checked = names, checked
	s.known.mu.Unlock()
	if _, found := slices.BinarySearch(names, api); found {
		return nil
	}
	return Errorf(EUnknownAPI, "the gateway knows no API %q: no worker has registered it and it has no schema, so no worker is awaited%s",
		api, didYouMean(api, names))
}

// undeclaredRPC is the ENotFound error of a call to an RPC that the API's
// schema does not declare, naming the declared RPC closest to it.
func undeclaredRPC(api *CompiledAPI, call *Call) error {
	return Errorf(ENotFound, "the schema of API %q (version %d) declares no rpc %q%s",
		call.API, api.Version, call.Method, didYouMean(call.Method, api.RPCs()))
}
