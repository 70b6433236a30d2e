package gateway

import (
	"context"
	"strconv"
	"time"
)

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

// DeadQuery selects a listener group's dead deliveries. Since and Until
// bound when the delivery died; Before is a delivery-id cursor.
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

// Validate checks the query's group, filters and limit (1 to
// MaxListLimit; a bulk redrive ignores it).
func (q *DeadQuery) Validate() error {
	if err := ValidateGroup(q.Service, q.Listener); err != nil {
		return err
	}
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
	if q.Limit < 1 || q.Limit > MaxListLimit {
		return Errorf(EInvalid, "limit %d: want 1 to %d", q.Limit, MaxListLimit)
	}
	return nil
}

// ValidateGroup returns an EInvalid error unless service and listener name
// a listener group.
func ValidateGroup(service, listener string) error {
	if err := ValidateAPIName(service); err != nil {
		return Errorf(EInvalid, "invalid service name %q", service)
	}
	return ValidateIdent("listener", listener)
}

// RedriveResult answers a bulk redrive.
type RedriveResult struct {
	Redriven int `json:"redriven"`
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

// Listeners lists every listener group with its delivery counts, lag and
// replay progress. Needs read.
func (s *Service) Listeners(ctx context.Context) ([]ListenerStatus, error) {
	if err := s.authorize(ctx, ScopeRead, ""); err != nil {
		return nil, err
	}
	var groups []ListenerStatus
	err := s.bounded(ctx, func(ctx context.Context) (err error) {
		groups, err = s.cfg.Listeners.ListListeners(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	if groups == nil {
		groups = []ListenerStatus{}
	}
	return groups, nil
}

// DeleteListener removes a listener group that is gone for good. Needs
// admin. Errors: EInvalid, ENotFound, EConflict (a live worker serves it),
// EUnavailable.
func (s *Service) DeleteListener(ctx context.Context, service, listener string) error {
	if err := s.authorize(ctx, ScopeAdmin, ""); err != nil {
		return err
	}
	if err := ValidateGroup(service, listener); err != nil {
		return err
	}
	return s.bounded(ctx, func(ctx context.Context) error {
		return s.cfg.Listeners.DeleteListener(ctx, service, listener)
	})
}

// Dead lists a group's dead deliveries matching q, newest first, and the
// cursor of the next page ("" on the last page). Needs read.
func (s *Service) Dead(ctx context.Context, q DeadQuery) ([]DeliveryRecord, string, error) {
	if err := s.authorize(ctx, ScopeRead, ""); err != nil {
		return nil, "", err
	}
	if err := q.Validate(); err != nil {
		return nil, "", err
	}
	return page(ctx, s, q.Limit,
		func(ctx context.Context) ([]DeliveryRecord, error) { return s.cfg.Listeners.ListDead(ctx, q) },
		func(d DeliveryRecord) string { return strconv.FormatInt(d.ID, 10) })
}

// RedriveDead redrives every dead delivery of q's group matching its
// filters. It is not bounded by the store timeout: a large group's
// redrive takes as long as it takes, in batches. Needs admin.
func (s *Service) RedriveDead(ctx context.Context, q DeadQuery) (*RedriveResult, error) {
	if err := s.authorize(ctx, ScopeAdmin, ""); err != nil {
		return nil, err
	}
	q.Before, q.Limit = 0, MaxListLimit
	if err := q.Validate(); err != nil {
		return nil, err
	}
	n, err := s.cfg.Listeners.RedriveDead(ctx, q)
	if err != nil {
		return nil, err
	}
	return &RedriveResult{Redriven: n}, nil
}
