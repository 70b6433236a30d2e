package httpapi

import (
	"net/http"
	"net/url"

	"github.com/go-chi/chi/v5"

	"github.com/lightbus-go/lightbus/gateway"
)

func (h *Handler) listListeners(w http.ResponseWriter, r *http.Request) error {
	groups, err := h.svc.Listeners(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"listeners": groups})
	return nil
}

func (h *Handler) deleteListener(w http.ResponseWriter, r *http.Request) error {
	if err := h.svc.DeleteListener(r.Context(), chi.URLParam(r, "service"), chi.URLParam(r, "listener")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deadFilter holds the filters shared by listing and bulk redrive: query
// parameters of the one, the JSON body of the other.
type deadFilter struct {
	API   string `json:"api"`
	Event string `json:"event"`
	Since string `json:"since"`
	Until string `json:"until"`
}

// query returns the group's dead-delivery query with f's filters.
func (f deadFilter) query(r *http.Request) (gateway.DeadQuery, error) {
	q := gateway.DeadQuery{Service: chi.URLParam(r, "service"), Listener: chi.URLParam(r, "listener"), API: f.API, Event: f.Event, Limit: 100}
	times := url.Values{"since": {f.Since}, "until": {f.Until}}
	var err error
	if q.Since, err = parseTime(times, "since"); err != nil {
		return q, err
	}
	q.Until, err = parseTime(times, "until")
	return q, err
}

func (h *Handler) listDead(w http.ResponseWriter, r *http.Request) error {
	v := r.URL.Query()
	q, err := deadFilter{API: v.Get("api"), Event: v.Get("event"), Since: v.Get("since"), Until: v.Get("until")}.query(r)
	if err != nil {
		return err
	}
	if c := v.Get("before"); c != "" {
		if q.Before, err = gateway.ParseDeliveryID(c); err != nil {
			return gateway.Errorf(gateway.EInvalid, "before %q is not a delivery id", c)
		}
	}
	if q.Limit, err = parseLimit(v, q.Limit); err != nil {
		return err
	}
	dead, next, err := h.svc.Dead(r.Context(), q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": dead, "next_cursor": next})
	return nil
}

func (h *Handler) redriveDead(w http.ResponseWriter, r *http.Request) error {
	var f deadFilter
	if err := h.decodeJSON(w, r, decoding{what: "the filter", want: "a JSON object", optional: true}, &f); err != nil {
		return err
	}
	q, err := f.query(r)
	if err != nil {
		return err
	}
	res, err := h.svc.RedriveDead(r.Context(), q)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (h *Handler) replayListener(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Since string `json:"since"`
	}
	if err := h.decodeJSON(w, r, decoding{what: "the replay request", want: `a JSON object {"since": ...}`}, &req); err != nil {
		return err
	}
	rp, err := h.svc.Replay(r.Context(), chi.URLParam(r, "service"), chi.URLParam(r, "listener"), req.Since)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, rp)
	return nil
}

func (h *Handler) getDelivery(w http.ResponseWriter, r *http.Request) error {
	id, err := gateway.ParseDeliveryID(chi.URLParam(r, "delivery_id"))
	if err != nil {
		return err
	}
	d, err := h.svc.Delivery(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (h *Handler) redriveDelivery(w http.ResponseWriter, r *http.Request) error {
	id, err := gateway.ParseDeliveryID(chi.URLParam(r, "delivery_id"))
	if err != nil {
		return err
	}
	d, err := h.svc.RedriveDelivery(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}
