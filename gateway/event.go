package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// Event is one fired event as stored.
type Event struct {
	ID             string          `json:"id"`
	API            string          `json:"api"`
	Name           string          `json:"event"`
	Params         json.RawMessage `json:"params"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
	// TraceParent and TraceState are the W3C trace context the event was
	// fired in (header values), sent on each of its deliveries; empty when
	// it was fired without one. The gateway sets them from a well-formed
	// traceparent only.
	TraceParent string `json:"traceparent,omitempty"`
	TraceState  string `json:"tracestate,omitempty"`
}

// NewEvent returns an event with a fresh time-sortable id (a UUIDv7) and the
// current time, after validating its names and parameters.
func NewEvent(api, name string, params json.RawMessage) (*Event, error) {
	ev := &Event{API: api, Name: name, Params: params}
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, WrapError(EInternal, err, "generate event id")
	}
	ev.ID = id.String()
	// Postgres keeps microseconds: answer with the time as it is stored.
	ev.CreatedAt = time.Now().UTC().Truncate(time.Microsecond)
	return ev, nil
}

// Validate checks the API and event names and that Params is a JSON object.
func (e *Event) Validate() error {
	if err := ValidateAPIName(e.API); err != nil {
		return err
	}
	if err := ValidateIdent("event", e.Name); err != nil {
		return err
	}
	return ValidateParams(e.Params)
}

// ValidateParams returns an EInvalid error unless params is one well-formed
// JSON object within the bounds of CheckJSON.
func ValidateParams(params json.RawMessage) error {
	trimmed := bytes.TrimLeft(params, " \t\r\n")
	if len(trimmed) == 0 {
		return Errorf(EInvalid, "the body is empty: want a JSON object of parameters")
	}
	if !json.Valid(trimmed) {
		return Errorf(EInvalid, "the body is not valid JSON")
	}
	if trimmed[0] != '{' {
		return Errorf(EInvalid, "the body must be a JSON object of parameters")
	}
	return CheckJSON("the body", trimmed)
}

// FireResult is the answer to a fire: the stored event's id and how many
// deliveries were queued for it. Repeat is true when the fire repeated an
// earlier one's idempotency key: the result is the earlier event's, and
// nothing new was stored or queued.
type FireResult struct {
	ID         string    `json:"id"`
	API        string    `json:"api"`
	Event      string    `json:"event"`
	CreatedAt  time.Time `json:"created_at"`
	Deliveries int       `json:"deliveries"`
	Repeat     bool      `json:"repeat"`
	// Warnings says what the gateway accepted but finds suspect, such as
	// an event its API's schema does not declare; absent when none.
	Warnings []string `json:"warnings,omitempty"`
}

// Idempotency key bounds.
const (
	// MaxIdempotencyKeyLen is the longest accepted Idempotency-Key.
	MaxIdempotencyKeyLen = 255
	// DefaultIdempotencyWindow is how long a key is remembered by default.
	DefaultIdempotencyWindow = 24 * time.Hour
)

// ValidateIdempotencyKey returns an EInvalid error unless key is 1 to
// MaxIdempotencyKeyLen printable ASCII characters (space included).
func ValidateIdempotencyKey(key string) error {
	if key == "" || len(key) > MaxIdempotencyKeyLen {
		return Errorf(EInvalid, "Idempotency-Key must be 1 to %d characters", MaxIdempotencyKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if key[i] < 0x20 || key[i] > 0x7e {
			return Errorf(EInvalid, "Idempotency-Key must be printable ASCII")
		}
	}
	return nil
}

// EventQuery filters and pages a listing of events, newest first.
type EventQuery struct {
	EventFilter
	Before string // an event id: list events older than it
	Limit  int
}

// MaxListLimit is the most items one page of a listing may hold.
const MaxListLimit = 1000

// Validate checks the query's filter, cursor and limit (1 to
// MaxListLimit), and puts the cursor in canonical form.
func (q *EventQuery) Validate() error {
	if err := q.EventFilter.Validate(); err != nil {
		return err
	}
	if q.Before != "" {
		id, err := uuid.Parse(q.Before)
		if err != nil {
			return Errorf(EInvalid, "before %q is not an event id", clip(q.Before))
		}
		q.Before = id.String() // in the form Postgres reads
	}
	if q.Limit < 1 || q.Limit > MaxListLimit {
		return Errorf(EInvalid, "limit %d: want 1 to %d", q.Limit, MaxListLimit)
	}
	return nil
}

// ListEvents lists the events matching q, newest first, and the cursor of
// the next page ("" on the last page). Needs read.
func (s *Service) ListEvents(ctx context.Context, q EventQuery) ([]Event, string, error) {
	if err := s.authorize(ctx, ScopeRead, ""); err != nil {
		return nil, "", err
	}
	if err := q.Validate(); err != nil {
		return nil, "", err
	}
	return page(ctx, s, q.Limit,
		func(ctx context.Context) ([]Event, error) { return s.cfg.Events.ListEvents(ctx, q) },
		func(ev Event) string { return ev.ID })
}

// Event returns one event with the state of each of its deliveries.
// Needs read. Errors: EInvalid (not an event id), ENotFound, EUnavailable.
func (s *Service) Event(ctx context.Context, id string) (*EventDetail, error) {
	if err := s.authorize(ctx, ScopeRead, ""); err != nil {
		return nil, err
	}
	u, err := uuid.Parse(id)
	if err != nil {
		return nil, Errorf(EInvalid, "%q is not an event id", id)
	}
	id = u.String() // the forms uuid.Parse accepts and Postgres does not (urn:uuid:)
	var ev *EventDetail
	err = s.bounded(ctx, func(ctx context.Context) (err error) {
		ev, err = s.cfg.Events.GetEvent(ctx, id)
		return err
	})
	return ev, err
}

// EventDetail is an event with the state of each of its deliveries.
type EventDetail struct {
	Event
	Deliveries []Delivery `json:"deliveries"`
}

// EventStore stores events and queues their deliveries.
type EventStore interface {
	// FireEvent stores ev and, in the same transaction, queues one delivery
	// per listener group subscribed to ev's API and name. When ev has an
	// idempotency key that an event of the same API fired less than window
	// ago already has, it stores and queues nothing and returns that
	// event's result with Repeat set; an older holder of the key gives it
	// up. A repeat whose event name or parameters differ from the original
	// is an EConflict error. Returns ErrUnavailable when the database cannot
	// be reached.
	FireEvent(ctx context.Context, ev *Event, window time.Duration) (*FireResult, error)

	// FireEvents fires every event as FireEvent does, all in one
	// transaction: all are stored or none. The results are in the order of
	// evs. An idempotency conflict on any event fails the whole batch with
	// an EConflict error naming its index.
	FireEvents(ctx context.Context, evs []*Event, window time.Duration) ([]*FireResult, error)

	// ListEvents lists events matching q, newest first.
	ListEvents(ctx context.Context, q EventQuery) ([]Event, error)

	// GetEvent returns one event with its deliveries, or ErrNotFound.
	GetEvent(ctx context.Context, id string) (*EventDetail, error)
}
