package httpapi

import (
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"github.com/lightbus-go/lightbus/gateway"
)

func (h *Handler) listSchemas(w http.ResponseWriter, r *http.Request) error {
	all, err := h.svc.Schemas(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"schemas": all})
	return nil
}

func (h *Handler) getSchema(w http.ResponseWriter, r *http.Request) error {
	version := 0
	if v := r.URL.Query().Get("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return gateway.Errorf(gateway.EInvalid, "version %q: want a positive integer up to %d", v, gateway.MaxSchemaVersion)
		}
		version = n
	}
	sv, err := h.svc.Schema(r.Context(), chi.URLParam(r, "api"), version)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, sv)
	return nil
}

func (h *Handler) schemaVersions(w http.ResponseWriter, r *http.Request) error {
	versions, err := h.svc.SchemaVersions(r.Context(), chi.URLParam(r, "api"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": versions})
	return nil
}

func (h *Handler) putSchema(w http.ResponseWriter, r *http.Request) error {
	// The body is a schema document plus the publishing service.
	var put struct {
		gateway.SchemaDocument
		Service string `json:"service"`
	}
	if err := h.decodeJSON(w, r, decoding{what: "the schema document", want: "a JSON object"}, &put); err != nil {
		return err
	}
	cur, created, err := h.svc.PublishSchema(r.Context(), chi.URLParam(r, "api"), &put.SchemaDocument, put.Service)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, cur)
	return nil
}
