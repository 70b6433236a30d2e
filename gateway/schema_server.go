package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
)

// validateEvent checks a fired event against its API's current schema:
// unknown APIs and events pass unless the gateway is strict (ENotFound);
// parameters that do not match are an EValidation error listing each
// violation. Call it before the event is stored.
func (s *Server) validateEvent(ctx context.Context, ev *Event) error {
	if s.cfg.SchemaCache == nil {
		return nil
	}
	api, err := s.cfg.SchemaCache.Lookup(ctx, ev.API)
	if err != nil {
		return err
	}
	if api == nil {
		if s.cfg.StrictSchemas {
			return Errorf(ENotFound, "API %q has no schema, and the gateway only accepts events of APIs with one", ev.API)
		}
		return nil
	}
	sch, ok := api.Event(ev.Name)
	if !ok {
		if s.cfg.StrictSchemas {
			return Errorf(ENotFound, "the schema of API %q (version %d) declares no event %q", ev.API, api.Version, ev.Name)
		}
		return nil
	}
	if !api.Validate {
		return nil
	}
	vs, err := ValidateJSON(sch, ev.Params)
	if err != nil {
		return err
	}
	if len(vs) > 0 {
		return &Error{Code: EValidation, Violations: vs,
			Message: fmt.Sprintf("the parameters of %s.%s do not match its schema (version %d)", ev.API, ev.Name, api.Version)}
	}
	return nil
}

// validateCall checks an RPC's parameters as validateEvent checks an
// event's, and returns the compiled schema of its API (nil when none) for
// validateResult.
func (s *Server) validateCall(ctx context.Context, call *Call) (*CompiledAPI, error) {
	if s.cfg.SchemaCache == nil {
		return nil, nil
	}
	api, err := s.cfg.SchemaCache.Lookup(ctx, call.API)
	if err != nil {
		return nil, err
	}
	if api == nil {
		if s.cfg.StrictSchemas {
			return nil, Errorf(ENotFound, "API %q has no schema, and the gateway only accepts calls to APIs with one", call.API)
		}
		return nil, nil
	}
	params, _, ok := api.RPC(call.Method)
	if !ok {
		if s.cfg.StrictSchemas {
			return nil, Errorf(ENotFound, "the schema of API %q (version %d) declares no rpc %q", call.API, api.Version, call.Method)
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
func (s *Server) validateResult(api *CompiledAPI, call *Call, result json.RawMessage) error {
	if api == nil || !s.cfg.ValidateResults || !api.Validate {
		return nil
	}
	_, sch, ok := api.RPC(call.Method)
	if !ok {
		return nil
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
func (s *Server) compileDeclared(reg *Registration) error {
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

// afterRegistration forgets cached schemas the registration replaced and
// warns about workers that disagree on a schema.
func (s *Server) afterRegistration(ctx context.Context, reg *Registration, res *RegistrationResult) {
	if s.cfg.SchemaCache != nil {
		for _, api := range res.Published {
			s.cfg.SchemaCache.Invalidate(api)
		}
	}
	for _, api := range res.Published {
		s.logger.InfoContext(ctx, "new schema version", slog.String("api", api), slog.String("worker_id", reg.WorkerID))
	}
	for _, c := range res.SchemaConflicts {
		s.logger.WarnContext(ctx, "schema_conflict: a live worker declares another schema than the API's current version",
			slog.String("api", c.API), slog.String("worker_id", c.WorkerID), slog.String("service", c.Service),
			slog.String("hash", c.Hash), slog.String("registering_worker_id", reg.WorkerID))
	}
}

func (s *Server) listSchemas(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Schemas == nil {
		writeJSON(w, http.StatusOK, map[string]any{"schemas": []SchemaVersion{}})
		return
	}
	all, err := s.cfg.Schemas.ListSchemas(r.Context())
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	if all == nil {
		all = []SchemaVersion{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"schemas": all})
}

func (s *Server) getSchema(w http.ResponseWriter, r *http.Request) {
	api := chi.URLParam(r, "api")
	if err := ValidateAPIName(api); err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	version := 0
	if v := r.URL.Query().Get("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			writeError(w, r, s.logger, Errorf(EInvalid, "version %q: want a positive integer", v))
			return
		}
		version = n
	}
	if s.cfg.Schemas == nil {
		writeError(w, r, s.logger, Errorf(ENotFound, "API %q has no schema", api))
		return
	}
	sv, err := s.cfg.Schemas.SchemaVersion(r.Context(), api, version)
	if err != nil {
		if ErrorCode(err) == ENotFound {
			err = Errorf(ENotFound, "API %q has no schema%s", api, versionSuffix(version))
		}
		writeError(w, r, s.logger, err)
		return
	}
	if version == 0 {
		if sv.Conflicts, err = s.cfg.Schemas.SchemaConflicts(r.Context(), api); err != nil {
			writeError(w, r, s.logger, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, sv)
}

func versionSuffix(version int) string {
	if version == 0 {
		return ""
	}
	return " version " + strconv.Itoa(version)
}

func (s *Server) schemaVersions(w http.ResponseWriter, r *http.Request) {
	api := chi.URLParam(r, "api")
	if err := ValidateAPIName(api); err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	if s.cfg.Schemas == nil {
		writeError(w, r, s.logger, Errorf(ENotFound, "API %q has no schema", api))
		return
	}
	versions, err := s.cfg.Schemas.ListSchemaVersions(r.Context(), api)
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	for i := range versions {
		versions[i].Schema = nil
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": versions})
}

// schemaPut is the body of PUT /v1/schema/{api}: a schema document, plus
// the publishing service.
type schemaPut struct {
	SchemaDocument
	Service string `json:"service"`
}

func (s *Server) putSchema(w http.ResponseWriter, r *http.Request) {
	api := chi.URLParam(r, "api")
	if err := ValidateAPIName(api); err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	var put schemaPut
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&put); err != nil {
		writeError(w, r, s.logger, Errorf(EInvalid, "the schema document is not valid: %s", strings.TrimPrefix(err.Error(), "json: ")))
		return
	}
	if put.API == "" {
		put.API = api
	}
	if put.API != api {
		writeError(w, r, s.logger, Errorf(EInvalid, "the document is the schema of API %q, not %q", put.API, api))
		return
	}
	if put.Service != "" {
		if err := ValidateAPIName(put.Service); err != nil {
			writeError(w, r, s.logger, Errorf(EInvalid, "invalid service name %q: want identifiers joined by dots", put.Service))
			return
		}
	}
	if err := put.Check(); err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	canon, hash, err := put.Canonical()
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	sv := &SchemaVersion{API: api, Hash: hash, Schema: canon, Service: put.Service}
	if s.cfg.Schemas == nil || s.cfg.SchemaCache == nil {
		writeError(w, r, s.logger, Errorf(EUnavailable, "this gateway stores no schemas"))
		return
	}
	if _, err := s.cfg.SchemaCache.Compile(sv); err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	cur, created, err := s.cfg.Schemas.PublishSchema(r.Context(), sv)
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		s.cfg.SchemaCache.Invalidate(api)
		s.logger.InfoContext(r.Context(), "new schema version", slog.String("api", api), slog.Int("version", cur.Version), slog.String("service", put.Service))
	}
	writeJSON(w, status, cur)
}
