package httpapi

import (
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/lightbus-go/lightbus/gateway"
)

func (h *Handler) listTasks(w http.ResponseWriter, r *http.Request) error {
	tasks, err := h.svc.Tasks(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"tasks": tasks})
	return nil
}

func (h *Handler) reportTaskRun(w http.ResponseWriter, r *http.Request) error {
	var run gateway.TaskRun
	if err := h.decodeJSON(w, r, decoding{what: "the task run", want: "a JSON object"}, &run); err != nil {
		return err
	}
	run.Service, run.Task = chi.URLParam(r, "service"), chi.URLParam(r, "task")
	if err := h.svc.ReportTaskRun(r.Context(), &run); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
