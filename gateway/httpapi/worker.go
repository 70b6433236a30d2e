package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/lightbus-go/lightbus/gateway"
)

func (h *Handler) listWorkers(w http.ResponseWriter, r *http.Request) error {
	workers, err := h.svc.Workers(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"workers": workers})
	return nil
}

func (h *Handler) putWorker(w http.ResponseWriter, r *http.Request) error {
	// Lenient: a newer worker may declare members this gateway does not
	// know yet.
	var reg gateway.Registration
	if err := h.decodeJSON(w, r, decoding{what: "the registration", want: "a JSON object", lenient: true}, &reg); err != nil {
		return err
	}
	reg.WorkerID = chi.URLParam(r, "worker_id")
	res, err := h.svc.Register(r.Context(), &reg)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (h *Handler) deleteWorker(w http.ResponseWriter, r *http.Request) error {
	if err := h.svc.Deregister(r.Context(), chi.URLParam(r, "worker_id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) releaseAPI(w http.ResponseWriter, r *http.Request) error {
	if err := h.svc.ReleaseAPI(r.Context(), chi.URLParam(r, "api")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
