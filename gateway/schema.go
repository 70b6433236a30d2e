package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"time"
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
	if len(d.Events) > MaxAPIMembers || len(d.RPCs) > MaxAPIMembers {
		return Errorf(EInvalid, "the schema of API %q has %d events and %d RPCs: at most %d of each", d.API, len(d.Events), len(d.RPCs), MaxAPIMembers)
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
	Service   string    `json:"service"`
	WorkerID  string    `json:"worker_id,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// Schema is the document; the versions list leaves it out (omitted on
	// the wire, never null).
	Schema json.RawMessage `json:"schema,omitempty"`
	// Conflicts lists the live workers that declare another schema for the
	// API (filled in by GET /v1/schema/{api} only).
	Conflicts []SchemaConflict `json:"conflicts,omitempty"`
}

// MaxSchemaVersion is the highest version number an API's schema can
// have (versions are stored as 32-bit integers).
const MaxSchemaVersion = math.MaxInt32

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
//
// The current version of an API follows its live workers: it is the newest
// version that a live worker declares (by hash) or that was published
// without a worker (PUT /v1/schema/{api}); when no live worker declares a
// schema for the API, it is the newest version. A version published by a
// worker that is gone is thus not enforced on the workers still live, and a
// schema outlives all its workers.
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

// Schemas returns the current version of every API's schema. Needs read.
func (s *Service) Schemas(ctx context.Context) ([]SchemaVersion, error) {
	if err := s.authorize(ctx, ScopeRead, ""); err != nil {
		return nil, err
	}
	if s.cfg.Schemas == nil {
		return []SchemaVersion{}, nil
	}
	var all []SchemaVersion
	err := s.bounded(ctx, func(ctx context.Context) (err error) {
		all, err = s.cfg.Schemas.ListSchemas(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	if all == nil {
		all = []SchemaVersion{}
	}
	return all, nil
}

// Schema returns one version of an API's schema (version 0: the current
// one, with the live workers that declare another). Needs read. Errors:
// EInvalid, ENotFound, EUnavailable.
func (s *Service) Schema(ctx context.Context, api string, version int) (*SchemaVersion, error) {
	if err := s.authorize(ctx, ScopeRead, ""); err != nil {
		return nil, err
	}
	if err := ValidateAPIName(api); err != nil {
		return nil, err
	}
	if version < 0 || version > MaxSchemaVersion {
		return nil, Errorf(EInvalid, "version %d: want a positive integer up to %d", version, MaxSchemaVersion)
	}
	if s.cfg.Schemas == nil {
		return nil, Errorf(ENotFound, "API %q has no schema", api)
	}
	var sv *SchemaVersion
	err := s.bounded(ctx, func(ctx context.Context) (err error) {
		if sv, err = s.cfg.Schemas.SchemaVersion(ctx, api, version); err != nil {
			return err
		}
		if version == 0 {
			sv.Conflicts, err = s.cfg.Schemas.SchemaConflicts(ctx, api)
		}
		return err
	})
	if ErrorCode(err) == ENotFound {
		suffix := ""
		if version > 0 {
			suffix = fmt.Sprintf(" version %d", version)
		}
		return nil, Errorf(ENotFound, "API %q has no schema%s", api, suffix)
	}
	if err != nil {
		return nil, err
	}
	return sv, nil
}

// SchemaVersions lists an API's schema versions, newest first, without
// their documents. Needs read. Errors: EInvalid, ENotFound, EUnavailable.
func (s *Service) SchemaVersions(ctx context.Context, api string) ([]SchemaVersion, error) {
	if err := s.authorize(ctx, ScopeRead, ""); err != nil {
		return nil, err
	}
	if err := ValidateAPIName(api); err != nil {
		return nil, err
	}
	if s.cfg.Schemas == nil {
		return nil, Errorf(ENotFound, "API %q has no schema", api)
	}
	var versions []SchemaVersion
	err := s.bounded(ctx, func(ctx context.Context) (err error) {
		versions, err = s.cfg.Schemas.ListSchemaVersions(ctx, api)
		return err
	})
	if err != nil {
		return nil, err
	}
	for i := range versions {
		versions[i].Schema = nil
	}
	return versions, nil
}

// PublishSchema publishes doc as api's next schema version, on behalf of
// service (may be empty), unless the current version means the same. It
// returns the current version and whether it is new. The document must be
// of api, and its schemas must compile. Needs admin. Errors: EInvalid,
// EUnavailable.
func (s *Service) PublishSchema(ctx context.Context, api string, doc *SchemaDocument, service string) (*SchemaVersion, bool, error) {
	if err := s.authorize(ctx, ScopeAdmin, ""); err != nil {
		return nil, false, err
	}
	if err := ValidateAPIName(api); err != nil {
		return nil, false, err
	}
	if doc.API == "" {
		doc.API = api
	}
	if doc.API != api {
		return nil, false, Errorf(EInvalid, "the document is the schema of API %q, not %q", doc.API, api)
	}
	if service != "" {
		if err := ValidateAPIName(service); err != nil {
			return nil, false, Errorf(EInvalid, "invalid service name %q: want identifiers joined by dots", service)
		}
	}
	if err := doc.Check(); err != nil {
		return nil, false, err
	}
	canon, hash, err := doc.Canonical()
	if err != nil {
		return nil, false, err
	}
	sv := &SchemaVersion{API: api, Hash: hash, Schema: canon, Service: service}
	if s.cfg.Schemas == nil || s.cfg.SchemaCache == nil {
		return nil, false, Errorf(EUnavailable, "this gateway stores no schemas")
	}
	if _, err := s.cfg.SchemaCache.Compile(sv); err != nil {
		return nil, false, err
	}
	var cur *SchemaVersion
	var created bool
	err = s.bounded(ctx, func(ctx context.Context) (err error) {
		cur, created, err = s.cfg.Schemas.PublishSchema(ctx, sv)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	if created {
		s.cfg.SchemaCache.Invalidate(api)
		s.logger.InfoContext(ctx, "new schema version", slog.String("api", api), slog.Int("version", cur.Version), slog.String("service", service))
	}
	return cur, created, nil
}
