package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
)

// DeliveryRecord is one delivery with the event it carries, as listed by the
// dead-letter routes and GET /v1/deliveries/{id}.
type DeliveryRecord struct {
	Delivery
	EventID string `json:"event_id"`
	// API and Event name the event; empty when the event was pruned.
	API   string `json:"api,omitempty"`
	Event string `json:"event,omitempty"`
}

// DeadQuery selects a listener group's dead deliveries. Since and Until
// bound when the delivery died; After and Before are delivery-id cursors.
type DeadQuery struct {
	Service  string
	Listener string
	API      string
	Event    string
	Since    time.Time // inclusive; zero for no bound
	Until    time.Time // exclusive; zero for no bound
	Before   int64     // list deliveries with a smaller id; 0 for no bound
	Limit    int
}

// RedriveResult answers a bulk redrive.
type RedriveResult struct {
	Redriven int `json:"redriven"`
}

// ListenerStatus is a listener group with the state of its deliveries.
type ListenerStatus struct {
	Service string   `json:"service"`
	Name    string   `json:"name"`
	Events  []string `json:"events"`
	// Endpoints is the number of live endpoints serving the group.
	Endpoints int            `json:"endpoints"`
	Policy    DeliveryPolicy `json:"policy"`
	// Pending counts deliveries waiting for an attempt (new, scheduled,
	// or retrying after a failure).
	Pending int64 `json:"pending"`
	// InFlight counts deliveries being attempted now.
	InFlight int64 `json:"in_flight"`
	// Dead counts dead deliveries.
	Dead int64 `json:"dead"`
	// OldestUndelivered is when the oldest event not yet delivered (pending
	// or in flight) was fired; LagMS is its age. Both are absent/0 when
	// the group is caught up.
	OldestUndelivered *time.Time `json:"oldest_undelivered,omitempty"`
	LagMS             int64      `json:"lag_ms"`
	// Replay is the group's latest replay, if any, with its progress.
	Replay *Replay `json:"replay,omitempty"`
}

// ListenerStore inspects listener groups and their deliveries.
type ListenerStore interface {
	// ListListeners lists every listener group with its delivery counts.
	ListListeners(ctx context.Context) ([]ListenerStatus, error)

	// ListDead lists a group's dead deliveries matching q, newest first.
	// Returns ErrNotFound when the group does not exist.
	ListDead(ctx context.Context, q DeadQuery) ([]DeliveryRecord, error)

	// GetDelivery returns one delivery, or ErrNotFound.
	GetDelivery(ctx context.Context, id int64) (*DeliveryRecord, error)

	// RedriveDelivery gives a dead delivery a fresh allowance of its
	// group's max_attempts and makes it available at once. Returns
	// ErrNotFound for an unknown delivery and an EConflict error when the
	// delivery is not dead.
	RedriveDelivery(ctx context.Context, id int64) (*DeliveryRecord, error)

	// RedriveDead redrives every dead delivery of q's group matching q's
	// filters (its cursor and limit are ignored), in batches, and returns
	// how many it redrove. Returns ErrNotFound when the group does not
	// exist.
	RedriveDead(ctx context.Context, q DeadQuery) (int, error)

	// DeleteListener removes a listener group with its subscriptions: no
	// delivery is queued for it afterwards, and its unfinished deliveries
	// are cancelled when they next run. Returns ErrNotFound when the group
	// does not exist, and an EConflict error while a live worker serves it
	// (its next heartbeat would create the group again).
	DeleteListener(ctx context.Context, service, listener string) error
}

var attemptStatus = regexp.MustCompile(`^listener answered ([1-5][0-9][0-9])\b`)

// AttemptStatus returns the HTTP status a failed attempt's error text
// records ("listener answered 503: ..."), or 0 when the attempt got no
// answer.
func AttemptStatus(errText string) int {
	m := attemptStatus.FindStringSubmatch(errText)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// parseDeliveryID reads a delivery id path parameter.
func parseDeliveryID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, Errorf(EInvalid, "%q is not a delivery id", s)
	}
	return id, nil
}

// parseGroup reads the {service} and {listener} path parameters.
func parseGroup(r *http.Request) (string, string, error) {
	service, listener := chi.URLParam(r, "service"), chi.URLParam(r, "listener")
	if err := ValidateAPIName(service); err != nil {
		return "", "", Errorf(EInvalid, "invalid service name %q", service)
	}
	if err := ValidateIdent("listener", listener); err != nil {
		return "", "", err
	}
	return service, listener, nil
}

// deadFilter holds the filters shared by listing and bulk redrive.
type deadFilter struct {
	API   string `json:"api"`
	Event string `json:"event"`
	Since string `json:"since"`
	Until string `json:"until"`
}

func (f deadFilter) apply(q *DeadQuery) error {
	q.API, q.Event = f.API, f.Event
	if q.API != "" {
		if err := ValidateAPIName(q.API); err != nil {
			return err
		}
	}
	if q.Event != "" {
		if err := ValidateIdent("event", q.Event); err != nil {
			return err
		}
	}
	for name, v := range map[string]struct {
		s   string
		dst *time.Time
	}{"since": {f.Since, &q.Since}, "until": {f.Until, &q.Until}} {
		if v.s == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, v.s)
		if err != nil {
			return Errorf(EInvalid, "%s %q is not an RFC 3339 time", name, v.s)
		}
		*v.dst = t
	}
	return nil
}

func (s *Server) deleteListener(w http.ResponseWriter, r *http.Request) {
	service, listener, err := parseGroup(r)
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	if err := s.cfg.Listeners.DeleteListener(r.Context(), service, listener); err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listDead(w http.ResponseWriter, r *http.Request) {
	service, listener, err := parseGroup(r)
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	v := r.URL.Query()
	q := DeadQuery{Service: service, Listener: listener, Limit: 100}
	if err := (deadFilter{API: v.Get("api"), Event: v.Get("event"), Since: v.Get("since"), Until: v.Get("until")}).apply(&q); err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	if c := v.Get("before"); c != "" {
		if q.Before, err = parseDeliveryID(c); err != nil {
			writeError(w, r, s.logger, Errorf(EInvalid, "before %q is not a delivery id", c))
			return
		}
	}
	if c := v.Get("limit"); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, r, s.logger, Errorf(EInvalid, "limit %q: want 1 to 1000", c))
			return
		}
		q.Limit = n
	}
	dead, err := s.cfg.Listeners.ListDead(r.Context(), q)
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	next := ""
	if len(dead) == q.Limit {
		next = strconv.FormatInt(dead[len(dead)-1].ID, 10)
	}
	if dead == nil {
		dead = []DeliveryRecord{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": dead, "next_cursor": next})
}

func (s *Server) getDelivery(w http.ResponseWriter, r *http.Request) {
	id, err := parseDeliveryID(chi.URLParam(r, "delivery_id"))
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	d, err := s.cfg.Listeners.GetDelivery(r.Context(), id)
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) redriveDelivery(w http.ResponseWriter, r *http.Request) {
	id, err := parseDeliveryID(chi.URLParam(r, "delivery_id"))
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	d, err := s.cfg.Listeners.RedriveDelivery(r.Context(), id)
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) redriveDead(w http.ResponseWriter, r *http.Request) {
	service, listener, err := parseGroup(r)
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	var f deadFilter
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			writeError(w, r, s.logger, Errorf(EInvalid, "the filter is not valid JSON: %s", strings.TrimPrefix(err.Error(), "json: ")))
			return
		}
	}
	q := DeadQuery{Service: service, Listener: listener}
	if err := f.apply(&q); err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	n, err := s.cfg.Listeners.RedriveDead(r.Context(), q)
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	writeJSON(w, http.StatusOK, RedriveResult{Redriven: n})
}

func (s *Server) listListeners(w http.ResponseWriter, r *http.Request) {
	groups, err := s.cfg.Listeners.ListListeners(r.Context())
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	if groups == nil {
		groups = []ListenerStatus{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"listeners": groups})
}
