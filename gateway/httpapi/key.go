package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"
)

func (h *Handler) listKeys(w http.ResponseWriter, r *http.Request) error {
	keys, err := h.svc.Keys(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": keys})
	return nil
}

func (h *Handler) createKey(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
	}
	if err := h.decodeJSON(w, r, decoding{what: "the key", want: `a JSON object {"name": ..., "scopes": [...]}`}, &req); err != nil {
		return err
	}
	key, err := h.svc.CreateKey(r.Context(), req.Name, req.Scopes)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store") // the token is shown once
	writeJSON(w, http.StatusCreated, key)
	return nil
}

func (h *Handler) revokeKey(w http.ResponseWriter, r *http.Request) error {
	if err := h.svc.RevokeKey(r.Context(), chi.URLParam(r, "name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
