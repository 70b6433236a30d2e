package httpapi

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/attribute"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/tracing"
)

func (h *Handler) fireEvent(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	r, span := h.serverSpan(r, "fire")
	ev, res, err := h.fire(w, r)
	var api, event string // labels: the names, once valid
	if ev != nil {
		api, event = ev.API, ev.Name
	} else {
		api, event = nameLabels(chi.URLParam(r, "api"), "event", chi.URLParam(r, "event"))
	}
	h.rec.EventFired(api, event, fireOutcome(res, err))
	h.rec.FireDone(api, time.Since(start))
	if span.IsRecording() {
		span.SetAttributes(attribute.String("lightbus.api", api), attribute.String("lightbus.event", event))
		if res != nil {
			span.SetAttributes(attribute.String("lightbus.event_id", res.ID), attribute.Int("lightbus.deliveries", res.Deliveries),
				attribute.Bool("lightbus.repeat", res.Repeat))
		}
	}
	status := http.StatusAccepted
	if res != nil && res.Repeat {
		status = http.StatusOK
	}
	endSpan(span, status, err)
	if err != nil {
		return err
	}
	for _, warning := range res.Warnings {
		w.Header().Add("Lightbus-Warning", warning)
	}
	if res.Repeat {
		w.Header().Set("Idempotency-Replayed", "true")
		writeJSON(w, http.StatusOK, res)
		return nil
	}
	writeJSON(w, http.StatusAccepted, res)
	return nil
}

// fire reads the request of fireEvent and fires its event. The event is
// returned once made (its names valid), whatever comes after.
func (h *Handler) fire(w http.ResponseWriter, r *http.Request) (*gateway.Event, *gateway.FireResult, error) {
	body, err := readBody(w, r, h.cfg.MaxBodyBytes, "the body")
	if err != nil {
		return nil, nil, err
	}
	ev, err := gateway.NewEvent(chi.URLParam(r, "api"), chi.URLParam(r, "event"), body)
	if err != nil {
		return nil, nil, err
	}
	ev.TraceParent, ev.TraceState = tracing.Headers(r.Context())
	if keys := r.Header.Values("Idempotency-Key"); len(keys) > 0 {
		if len(keys) > 1 {
			return ev, nil, gateway.Errorf(gateway.EInvalid, "more than one Idempotency-Key header")
		}
		if keys[0] == "" {
			return ev, nil, gateway.ValidateIdempotencyKey("")
		}
		ev.IdempotencyKey = keys[0]
	}
	res, err := h.svc.Fire(r.Context(), ev)
	return ev, res, err
}

// fireBatch fires a batch. A refused batch counts as one fired event of no
// names with the error's code; an accepted one counts each of its events.
// The request's trace context is every event's: one span, "fire batch",
// is the parent of the deliveries of all of them.
func (h *Handler) fireBatch(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	r, span := h.serverSpan(r, "fire batch")
	var items []gateway.BatchItem
	err := h.decodeJSON(w, r, decoding{what: "the batch", want: "a JSON array of events", limit: h.cfg.MaxBatchBytes}, &items)
	var results []gateway.BatchResult
	if err == nil {
		if tp, ts := tracing.Headers(r.Context()); tp != "" {
			for i := range items {
				items[i].TraceParent, items[i].TraceState = tp, ts
			}
		}
		results, err = h.svc.FireBatch(r.Context(), items)
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("lightbus.batch_size", len(items)))
	}
	endSpan(span, http.StatusAccepted, err)
	if err != nil {
		h.rec.EventFired("", "", errorCode(err))
	}
	for i := range results {
		h.rec.EventFired(results[i].API, results[i].Event, fireOutcome(&results[i].FireResult, nil))
	}
	h.rec.FireDone("", time.Since(start))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"results": results})
	return nil
}

func (h *Handler) listEvents(w http.ResponseWriter, r *http.Request) error {
	v := r.URL.Query()
	f, err := parseFilter(v)
	if err != nil {
		return err
	}
	q := gateway.EventQuery{EventFilter: f, Before: v.Get("before"), Limit: 100}
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

// parseFilter reads the filter of a listing or a stream of events: api,
// event, since, until and any number of where; the service checks them.
func parseFilter(v url.Values) (gateway.EventFilter, error) {
	f := gateway.EventFilter{API: v.Get("api"), Event: v.Get("event")}
	var err error
	if f.Since, err = parseTime(v, "since"); err != nil {
		return f, err
	}
	if f.Until, err = parseTime(v, "until"); err != nil {
		return f, err
	}
	f.Where, err = gateway.ParseConditions(v["where"])
	return f, err
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
