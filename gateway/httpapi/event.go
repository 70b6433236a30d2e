package httpapi

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/lightbus-go/lightbus/gateway"
)

func (h *Handler) fireEvent(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(w, r, h.cfg.MaxBodyBytes, "the body")
	if err != nil {
		return err
	}
	ev, err := gateway.NewEvent(chi.URLParam(r, "api"), chi.URLParam(r, "event"), body)
	if err != nil {
		return err
	}
	if keys := r.Header.Values("Idempotency-Key"); len(keys) > 0 {
		if len(keys) > 1 {
			return gateway.Errorf(gateway.EInvalid, "more than one Idempotency-Key header")
		}
		if keys[0] == "" {
			return gateway.ValidateIdempotencyKey("")
		}
		ev.IdempotencyKey = keys[0]
	}
	res, err := h.svc.Fire(r.Context(), ev)
	if err != nil {
		return err
	}
	if res.Repeat {
		w.Header().Set("Idempotency-Replayed", "true")
		writeJSON(w, http.StatusOK, res)
		return nil
	}
	writeJSON(w, http.StatusAccepted, res)
	return nil
}

func (h *Handler) fireBatch(w http.ResponseWriter, r *http.Request) error {
	var items []gateway.BatchItem
	err := h.decodeJSON(w, r, decoding{what: "the batch", want: "a JSON array of events", limit: h.cfg.MaxBatchBytes}, &items)
	if err != nil {
		return err
	}
	results, err := h.svc.FireBatch(r.Context(), items)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"results": results})
	return nil
}

func (h *Handler) listEvents(w http.ResponseWriter, r *http.Request) error {
	v := r.URL.Query()
	q := gateway.EventQuery{API: v.Get("api"), Event: v.Get("event"), Before: v.Get("before"), Limit: 100}
	var err error
	if q.Since, err = parseTime(v, "since"); err != nil {
		return err
	}
	if q.Until, err = parseTime(v, "until"); err != nil {
		return err
	}
	if q.Limit, err = parseLimit(v, q.Limit); err != nil {
		return err
	}
	events, next, err := h.svc.ListEvents(r.Context(), q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": events, "next_cursor": next})
	return nil
}

func (h *Handler) getEvent(w http.ResponseWriter, r *http.Request) error {
	ev, err := h.svc.Event(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ev)
	return nil
}

// parseTime reads an optional RFC 3339 time from the query parameter name.
func parseTime(v url.Values, name string) (time.Time, error) {
	s := v.Get(name)
	if s == "" {
		return time.Time{}, nil
	}
	return gateway.ParseTime(name, s)
}

// parseLimit reads the limit query parameter, def when absent; its range
// is the service's to check.
func parseLimit(v url.Values, def int) (int, error) {
	s := v.Get("limit")
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, gateway.Errorf(gateway.EInvalid, "limit %q: want 1 to %d", s, gateway.MaxListLimit)
	}
	return n, nil
}
