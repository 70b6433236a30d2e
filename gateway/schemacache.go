package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/lightbus-go/lightbus/internal/schemacheck"
)

// CompiledAPI is an API's schema version compiled for validation.
type CompiledAPI struct {
	Version  int
	Hash     string
	Validate bool
	events   map[string]*jsonschema.Schema // nil value: declared without schema
	rpcs     map[string][2]*jsonschema.Schema
}

// SchemaCacheConfig configures a SchemaCache.
type SchemaCacheConfig struct {
	Store  SchemaStore
	Logger *slog.Logger
	// TTL is how long a looked-up current version is trusted before the
	// store is asked again (one cheap query per API per TTL). Another
	// replica's new version is seen within it; this replica's own at once.
	TTL time.Duration
}

// SchemaCache looks up and compiles the current schema of each API. A
// schema version is compiled once, keyed by its hash; the current version
// of an API is re-checked in the store at most once per TTL, so validation
// costs no database round trip in the common case.
type SchemaCache struct {
	cfg SchemaCacheConfig

	mu     sync.Mutex
	byAPI  map[string]cachedAPI
	byHash map[string]*CompiledAPI
}

type cachedAPI struct {
	checked time.Time
	api     *CompiledAPI // nil: the API has no schema
}

// maxCompiled bounds the compiled schemas kept; over it the cache starts
// again from empty.
const maxCompiled = 4096

// NewSchemaCache returns a cache over cfg.Store.
func NewSchemaCache(cfg SchemaCacheConfig) *SchemaCache {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 5 * time.Second
	}
	return &SchemaCache{cfg: cfg, byAPI: map[string]cachedAPI{}, byHash: map[string]*CompiledAPI{}}
}

// Invalidate forgets what the cache knows of api's current version, after
// this replica published a new one.
func (c *SchemaCache) Invalidate(api string) {
	c.mu.Lock()
	delete(c.byAPI, api)
	c.mu.Unlock()
}

// Fresh returns the compiled current schema of api (nil when it has none)
// and true when the cache holds it and it was checked within the TTL: then
// no store call is needed.
func (c *SchemaCache) Fresh(api string) (*CompiledAPI, bool) {
	c.mu.Lock()
	e, ok := c.byAPI[api]
	c.mu.Unlock()
	if ok && time.Since(e.checked) < c.cfg.TTL {
		return e.api, true
	}
	return nil, false
}

// Lookup returns the compiled current schema of api, or nil when it has
// none, asking the store when the cache's answer is older than the TTL.
func (c *SchemaCache) Lookup(ctx context.Context, api string) (*CompiledAPI, error) {
	c.mu.Lock()
	e, ok := c.byAPI[api]
	c.mu.Unlock()
	if ok && time.Since(e.checked) < c.cfg.TTL {
		return e.api, nil
	}
	checked := time.Now()
	ref, err := c.cfg.Store.CurrentSchemaRef(ctx, api)
	if errors.Is(err, ErrNotFound) {
		c.put(api, cachedAPI{checked: checked})
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if ok && e.api != nil && e.api.Hash == ref.Hash {
		c.put(api, cachedAPI{checked: checked, api: e.api})
		return e.api, nil
	}
	c.mu.Lock()
	compiled := c.byHash[ref.Hash]
	c.mu.Unlock()
	if compiled == nil {
		sv, err := c.cfg.Store.SchemaVersion(ctx, api, ref.Version)
		if errors.Is(err, ErrNotFound) { // replaced meanwhile: look again next time
			return nil, Errorf(EUnavailable, "the schema of API %q changed while it was read; try again", api)
		}
		if err != nil {
			return nil, err
		}
		if compiled, err = c.Compile(sv); err != nil {
			// Stored versions compiled when published; this one no longer
			// does (a different validator?). Do not block the API on it.
			c.cfg.Logger.ErrorContext(ctx, "stored schema does not compile; not validating the API",
				slog.String("api", api), slog.Int("version", sv.Version), slog.String("error", err.Error()))
			c.put(api, cachedAPI{checked: checked})
			return nil, nil
		}
	}
	if compiled.Version != ref.Version {
		cp := *compiled
		cp.Version = ref.Version
		compiled = &cp
	}
	c.put(api, cachedAPI{checked: checked, api: compiled})
	return compiled, nil
}

func (c *SchemaCache) put(api string, e cachedAPI) {
	c.mu.Lock()
	c.byAPI[api] = e
	c.mu.Unlock()
}

// Compile compiles a schema version's document, or returns the compiled
// form kept for its hash. A schema that does not compile is an EInvalid
// error naming the event or RPC.
func (c *SchemaCache) Compile(sv *SchemaVersion) (*CompiledAPI, error) {
	c.mu.Lock()
	compiled := c.byHash[sv.Hash]
	c.mu.Unlock()
	if compiled != nil {
		out := *compiled
		out.Version = sv.Version
		return &out, nil
	}
	var doc SchemaDocument
	if err := json.Unmarshal(sv.Schema, &doc); err != nil {
		return nil, Errorf(EInvalid, "the schema document of API %q does not decode: %v", sv.API, err)
	}
	compiled = &CompiledAPI{Version: sv.Version, Hash: sv.Hash, Validate: doc.Validates(),
		events: map[string]*jsonschema.Schema{}, rpcs: map[string][2]*jsonschema.Schema{}}
	for _, name := range slices.Sorted(maps.Keys(doc.Events)) {
		s, err := schemacheck.Compile(doc.Events[name].ParamsSchema)
		if err != nil {
			return nil, Errorf(EInvalid, "the params_schema of event %s.%s does not compile: %v", sv.API, name, err)
		}
		compiled.events[name] = s
	}
	for _, name := range slices.Sorted(maps.Keys(doc.RPCs)) {
		p, err := schemacheck.Compile(doc.RPCs[name].ParamsSchema)
		if err != nil {
			return nil, Errorf(EInvalid, "the params_schema of rpc %s.%s does not compile: %v", sv.API, name, err)
		}
		r, err := schemacheck.Compile(doc.RPCs[name].ResultSchema)
		if err != nil {
			return nil, Errorf(EInvalid, "the result_schema of rpc %s.%s does not compile: %v", sv.API, name, err)
		}
		compiled.rpcs[name] = [2]*jsonschema.Schema{p, r}
	}
	c.mu.Lock()
	if len(c.byHash) >= maxCompiled {
		clear(c.byHash)
	}
	c.byHash[sv.Hash] = compiled
	c.mu.Unlock()
	return compiled, nil
}

// Event reports whether the API declares the event and returns its
// parameters schema (nil when it has none).
func (c *CompiledAPI) Event(name string) (*jsonschema.Schema, bool) {
	s, ok := c.events[name]
	return s, ok
}

// Events returns the names of the events the API declares, sorted.
func (c *CompiledAPI) Events() []string { return slices.Sorted(maps.Keys(c.events)) }

// RPCs returns the names of the RPCs the API declares, sorted.
func (c *CompiledAPI) RPCs() []string { return slices.Sorted(maps.Keys(c.rpcs)) }

// RPC reports whether the API declares the RPC and returns its parameters
// and result schemas (nil when absent).
func (c *CompiledAPI) RPC(name string) (params, result *jsonschema.Schema, ok bool) {
	s, ok := c.rpcs[name]
	return s[0], s[1], ok
}

// ValidateJSON checks data, a JSON value, against s (nil accepts all) and
// returns each violation, sorted by pointer; none when data is valid. Data
// that is not JSON is an EInvalid error.
func ValidateJSON(s *jsonschema.Schema, data []byte) ([]Violation, error) {
	vs, err := schemacheck.Validate(s, data)
	if errors.Is(err, schemacheck.ErrInvalidJSON) {
		return nil, Errorf(EInvalid, "the body is not valid JSON")
	}
	return vs, err
}
