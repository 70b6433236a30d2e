package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// SchemaDocument is the schema of one API: the JSON Schema (2020-12) of
// each event's parameters and of each RPC's parameters and result. An event
// or RPC listed without a schema accepts any JSON object. It is what workers
// declare at registration, what PUT /v1/schema/{api} takes and what the
// gateway stores, one version per change.
type SchemaDocument struct {
	API string `json:"api"`
	// Validate turns the gateway's validation of this API on or off; absent
	// means on.
	Validate *bool                  `json:"validate,omitempty"`
	Events   map[string]EventSchema `json:"events"`
	RPCs     map[string]RPCSchema   `json:"rpcs"`
}

// EventSchema is the schema of one event.
type EventSchema struct {
	ParamsSchema json.RawMessage `json:"params_schema,omitempty"`
}

// RPCSchema is the schema of one RPC.
type RPCSchema struct {
	ParamsSchema json.RawMessage `json:"params_schema,omitempty"`
	ResultSchema json.RawMessage `json:"result_schema,omitempty"`
}

// Validates reports whether the gateway validates the API's traffic.
func (d *SchemaDocument) Validates() bool { return d.Validate == nil || *d.Validate }

// Check validates the document's names and that every schema is a JSON
// object or boolean; it does not compile the schemas (see SchemaCache.Compile).
func (d *SchemaDocument) Check() error {
	if err := ValidateAPIName(d.API); err != nil {
		return err
	}
	isSchema := func(what string, raw json.RawMessage) error {
		t := bytes.TrimLeft(raw, " \t\r\n")
		if len(t) == 0 {
			return nil
		}
		if !json.Valid(t) || (t[0] != '{' && !bytes.HasPrefix(t, []byte("true")) && !bytes.HasPrefix(t, []byte("false"))) {
			return Errorf(EInvalid, "%s: a schema must be a JSON object or boolean", what)
		}
		return nil
	}
	for name, e := range d.Events {
		if err := ValidateIdent("event", name); err != nil {
			return err
		}
		if err := isSchema("event "+d.API+"."+name+" params_schema", e.ParamsSchema); err != nil {
			return err
		}
	}
	for name, r := range d.RPCs {
		if err := ValidateIdent("rpc", name); err != nil {
			return err
		}
		if err := isSchema("rpc "+d.API+"."+name+" params_schema", r.ParamsSchema); err != nil {
			return err
		}
		if err := isSchema("rpc "+d.API+"."+name+" result_schema", r.ResultSchema); err != nil {
			return err
		}
	}
	return nil
}

// Canonical returns the document in canonical form (keys sorted, no
// insignificant space, empty maps present) and its hash, the hex SHA-256
// of those bytes: two documents that mean the same have the same hash.
func (d *SchemaDocument) Canonical() (json.RawMessage, string, error) {
	if d.Events == nil {
		d.Events = map[string]EventSchema{}
	}
	if d.RPCs == nil {
		d.RPCs = map[string]RPCSchema{}
	}
	data, err := json.Marshal(d)
	if err != nil {
		return nil, "", Errorf(EInvalid, "the schema document does not encode: %v", err)
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, "", Errorf(EInvalid, "the schema document is not valid JSON: %v", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil { // maps encode with sorted keys
		return nil, "", Errorf(EInvalid, "the schema document does not encode: %v", err)
	}
	canon := bytes.TrimRight(buf.Bytes(), "\n")
	sum := sha256.Sum256(canon)
	return canon, hex.EncodeToString(sum[:]), nil
}

// SchemaDocument returns the schema document a worker declares for the
// API, or nil when none of its events and RPCs carries a schema: such a
// declaration publishes nothing, and leaves a schema published with PUT
// /v1/schema/{api} in place.
func (a *APIDeclaration) SchemaDocument() *SchemaDocument {
	d := &SchemaDocument{API: a.Name, Events: map[string]EventSchema{}, RPCs: map[string]RPCSchema{}}
	hasSchema := false
	for _, e := range a.Events {
		d.Events[e.Name] = EventSchema{ParamsSchema: e.ParamsSchema}
		hasSchema = hasSchema || len(e.ParamsSchema) > 0
	}
	for _, r := range a.RPCs {
		d.RPCs[r.Name] = RPCSchema{ParamsSchema: r.ParamsSchema, ResultSchema: r.ResultSchema}
		hasSchema = hasSchema || len(r.ParamsSchema) > 0 || len(r.ResultSchema) > 0
	}
	if !hasSchema {
		return nil
	}
	return d
}

// SchemaVersion is one stored version of an API's schema document.
type SchemaVersion struct {
	API     string `json:"api"`
	Version int    `json:"version"`
	// Hash is the hex SHA-256 of Schema, which is in canonical form.
	Hash string `json:"hash"`
	// Service and WorkerID say who published the version: a worker's
	// registration sets both, PUT /v1/schema/{api} the service if given.
	Service   string          `json:"service"`
	WorkerID  string          `json:"worker_id,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	Schema    json.RawMessage `json:"schema"`
	// Conflicts lists the live workers that declare another schema for the
	// API (filled in by GET /v1/schema/{api} only).
	Conflicts []SchemaConflict `json:"conflicts,omitempty"`
}

// SchemaRef names a version of an API's schema cheaply.
type SchemaRef struct {
	Version int
	Hash    string
}

// SchemaConflict is a live worker whose declared schema for API differs
// from the API's current version.
type SchemaConflict struct {
	API      string `json:"api"`
	WorkerID string `json:"worker_id"`
	Service  string `json:"service"`
	Hash     string `json:"hash"`
}

// SchemaStore keeps the versions of API schemas. Registrations publish
// through WorkerStore.RegisterWorker.
type SchemaStore interface {
	// PublishSchema stores sv (API, Hash, Schema, Service, WorkerID set) as
	// the API's next version, unless the current version has the same
	// hash. It returns the current version and whether it is new.
	PublishSchema(ctx context.Context, sv *SchemaVersion) (*SchemaVersion, bool, error)

	// CurrentSchemaRef returns the version and hash of the API's current
	// schema, or ErrNotFound when it has none. It is the cheap check that
	// keeps SchemaCache current.
	CurrentSchemaRef(ctx context.Context, api string) (SchemaRef, error)

	// SchemaVersion returns one version of the API's schema (version 0:
	// the current one), or ErrNotFound.
	SchemaVersion(ctx context.Context, api string, version int) (*SchemaVersion, error)

	// ListSchemas returns the current version of every API's schema, by
	// API name.
	ListSchemas(ctx context.Context) ([]SchemaVersion, error)

	// ListSchemaVersions returns every version of the API's schema, newest
	// first, without their documents; ErrNotFound when there is none.
	ListSchemaVersions(ctx context.Context, api string) ([]SchemaVersion, error)

	// SchemaConflicts returns the live workers whose declared schema for
	// the API differs from its current version.
	SchemaConflicts(ctx context.Context, api string) ([]SchemaConflict, error)
}

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
	// Timeout bounds the store calls of one lookup, so that a database that
	// stops answering gives 503 unavailable rather than a hanging request.
	// 0 means no bound beyond the caller's context.
	Timeout time.Duration
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

// Lookup returns the compiled current schema of api, or nil when it has
// none.
func (c *SchemaCache) Lookup(ctx context.Context, api string) (_ *CompiledAPI, err error) {
	c.mu.Lock()
	e, ok := c.byAPI[api]
	c.mu.Unlock()
	if ok && time.Since(e.checked) < c.cfg.TTL {
		return e.api, nil
	}
	checked := time.Now()
	if c.cfg.Timeout > 0 {
		parent := ctx
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.Timeout)
		defer cancel()
		defer func() {
			if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && parent.Err() == nil {
				err = WrapError(EUnavailable, err, fmt.Sprintf("the database did not answer within %s", c.cfg.Timeout))
			}
		}()
	}
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
		s, err := compileSchema(doc.Events[name].ParamsSchema)
		if err != nil {
			return nil, Errorf(EInvalid, "the params_schema of event %s.%s does not compile: %v", sv.API, name, err)
		}
		compiled.events[name] = s
	}
	for _, name := range slices.Sorted(maps.Keys(doc.RPCs)) {
		p, err := compileSchema(doc.RPCs[name].ParamsSchema)
		if err != nil {
			return nil, Errorf(EInvalid, "the params_schema of rpc %s.%s does not compile: %v", sv.API, name, err)
		}
		r, err := compileSchema(doc.RPCs[name].ResultSchema)
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

// RPC reports whether the API declares the RPC and returns its parameters
// and result schemas (nil when absent).
func (c *CompiledAPI) RPC(name string) (params, result *jsonschema.Schema, ok bool) {
	s, ok := c.rpcs[name]
	return s[0], s[1], ok
}

// errNoLoader refuses every reference to a document outside the schema.
var errNoLoader = errors.New("a schema may not refer to other documents")

type noLoader struct{}

func (noLoader) Load(url string) (any, error) { return nil, fmt.Errorf("%w (%s)", errNoLoader, url) }

// compileSchema compiles one JSON Schema (2020-12 unless it says
// otherwise), asserting formats such as date-time and loading nothing it
// refers to outside itself. An empty schema compiles to nil (accept all).
func compileSchema(raw json.RawMessage) (*jsonschema.Schema, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	const url = "mem:///schema.json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	return c.Compile(url)
}

// printer renders validation messages.
var printer = message.NewPrinter(language.English)

// ValidateJSON checks data, a JSON value, against s (nil accepts all) and
// returns each violation, sorted by pointer; none when data is valid.
func ValidateJSON(s *jsonschema.Schema, data []byte) ([]Violation, error) {
	if s == nil {
		return nil, nil
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, Errorf(EInvalid, "the body is not valid JSON")
	}
	err = s.Validate(v)
	if err == nil {
		return nil, nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return nil, err
	}
	return violations(ve), nil
}

// violations flattens a validation error into one violation per failing
// keyword; each missing required property gets its own pointer, and the
// failing "null" branch of a nullable value is left out (its other branch
// says more).
func violations(ve *jsonschema.ValidationError) []Violation {
	var out []Violation
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		ptr := jsonPointer(e.InstanceLocation)
		switch k := e.ErrorKind.(type) {
		case *kind.Required:
			for _, m := range k.Missing {
				out = append(out, Violation{Pointer: ptr + "/" + escapePointer(m), Message: "missing required property"})
			}
			return
		case *kind.Type:
			if len(k.Want) == 1 && k.Want[0] == "null" {
				return
			}
		}
		out = append(out, Violation{Pointer: ptr, Message: e.ErrorKind.LocalizedString(printer)})
	}
	walk(ve)
	if len(out) == 0 {
		out = append(out, Violation{Pointer: jsonPointer(ve.InstanceLocation), Message: ve.ErrorKind.LocalizedString(printer)})
	}
	slices.SortStableFunc(out, func(a, b Violation) int { return strings.Compare(a.Pointer, b.Pointer) })
	return slices.Compact(out)
}

func jsonPointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(escapePointer(t))
	}
	return b.String()
}

func escapePointer(tok string) string {
	return strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1")
}
