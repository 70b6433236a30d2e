package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// MaxBatchEvents is the most events one batch fire may carry.
const MaxBatchEvents = 1000

// BatchItem is one event of a batch fire.
type BatchItem struct {
	API            string          `json:"api"`
	Event          string          `json:"event"`
	Params         json.RawMessage `json:"params"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
	// TraceParent and TraceState are the W3C trace context to store with
	// the event (the batch request's); never read from the batch's body.
	TraceParent string `json:"-"`
	TraceState  string `json:"-"`
}

// BatchResult is one item's result in a batch fire's answer.
type BatchResult struct {
	Index int `json:"index"`
	FireResult
}

// Fire stores ev, made by NewEvent, and queues its deliveries, after
// checking its idempotency key and its parameters against the API's schema
// (validateEvent). Needs fire on its API. Errors: EInvalid, EValidation,
// ENotFound (strict schemas), EConflict (a key reused with other
// parameters), EForbidden, EUnauthorized, EUnavailable.
func (s *Service) Fire(ctx context.Context, ev *Event) (*FireResult, error) {
	if err := s.authorize(ctx, ScopeFire, ev.API); err != nil {
		return nil, err
	}
	if ev.IdempotencyKey != "" {
		if err := ValidateIdempotencyKey(ev.IdempotencyKey); err != nil {
			return nil, err
		}
	}
	warning, err := s.validateEvent(ctx, ev)
	if err != nil {
		return nil, err
	}
	var res *FireResult
	err = s.bounded(ctx, func(ctx context.Context) (err error) {
		res, err = s.cfg.Events.FireEvent(ctx, ev, s.cfg.IdempotencyWindow)
		return err
	})
	if err != nil {
		return nil, err
	}
	if warning != "" {
		out := *res // the store's result may be shared (idempotent repeats)
		out.Warnings = []string{warning}
		res = &out
	}
	return res, nil
}

// FireBatch stores every item's event and queues their deliveries in one
// transaction: all are stored or none. Every item is checked first, and
// the error lists each bad item with a pointer into the batch
// ("/3/event", "/2/params/email"). Needs fire on every event's API.
func (s *Service) FireBatch(ctx context.Context, items []BatchItem) ([]BatchResult, error) {
	events, err := NewBatch(items)
	if err != nil {
		return nil, err
	}
	for _, ev := range events {
		if err := s.authorize(ctx, ScopeFire, ev.API); err != nil {
			return nil, err
		}
	}
	warnings, err := s.validateBatch(ctx, events)
	if err != nil {
		return nil, err
	}
	var fired []*FireResult
	err = s.bounded(ctx, func(ctx context.Context) (err error) {
		fired, err = s.cfg.Events.FireEvents(ctx, events, s.cfg.IdempotencyWindow)
		return err
	})
	if err != nil {
		return nil, err
	}
	results := make([]BatchResult, len(fired))
	for i, f := range fired {
		results[i] = BatchResult{Index: i, FireResult: *f}
		if warnings[i] != "" {
			results[i].Warnings = []string{warnings[i]}
		}
	}
	return results, nil
}

// NewBatch validates items and returns their events, or an EInvalid error
// whose Violations name every bad item ("/3/event"). Nothing is stored
// unless every item is valid.
func NewBatch(items []BatchItem) ([]*Event, error) {
	if len(items) == 0 {
		return nil, Errorf(EInvalid, "the batch is empty: want an array of 1 to %d events", MaxBatchEvents)
	}
	if len(items) > MaxBatchEvents {
		return nil, Errorf(EInvalid, "the batch has %d events: at most %d", len(items), MaxBatchEvents)
	}
	events := make([]*Event, len(items))
	var bad []Violation
	for i, it := range items {
		field, err := "", error(nil)
		switch {
		case ValidateAPIName(it.API) != nil:
			field, err = "api", ValidateAPIName(it.API)
		case ValidateIdent("event", it.Event) != nil:
			field, err = "event", ValidateIdent("event", it.Event)
		case it.Params == nil:
			field, err = "params", Errorf(EInvalid, "params is missing: want a JSON object")
		case it.IdempotencyKey != "" && ValidateIdempotencyKey(it.IdempotencyKey) != nil:
			field, err = "idempotency_key", ValidateIdempotencyKey(it.IdempotencyKey)
		}
		if err == nil {
			var ev *Event
			if ev, err = NewEvent(it.API, it.Event, it.Params); err == nil {
				ev.IdempotencyKey = it.IdempotencyKey
				ev.TraceParent, ev.TraceState = it.TraceParent, it.TraceState
				events[i] = ev
				continue
			}
			field = "params"
		}
		bad = append(bad, Violation{Pointer: fmt.Sprintf("/%d/%s", i, field), Message: ErrorMessage(err)})
	}
	if len(bad) > 0 {
		return nil, &Error{Code: EInvalid, Message: fmt.Sprintf("%d of %d events are invalid; nothing was stored", len(bad), len(items)), Violations: bad}
	}
	return events, nil
}

// validateBatch checks every event of a batch against its schema, as a
// single fire would, and reports every violation with a pointer into the
// batch (/2/params/email); nothing is stored when any event fails. It
// returns each event's warning ("" when none), by index.
func (s *Service) validateBatch(ctx context.Context, events []*Event) ([]string, error) {
	var bad []Violation
	warnings := make([]string, len(events))
	for i, ev := range events {
		var err error
		warnings[i], err = s.validateEvent(ctx, ev)
		if err == nil {
			continue
		}
		var e *Error
		if !errors.As(err, &e) || (e.Code != EValidation && e.Code != ENotFound) {
			return nil, err
		}
		if len(e.Violations) == 0 {
			bad = append(bad, Violation{Pointer: fmt.Sprintf("/%d", i), Message: e.Message})
		}
		for _, v := range e.Violations {
			bad = append(bad, Violation{Pointer: fmt.Sprintf("/%d/params%s", i, v.Pointer), Message: v.Message})
		}
	}
	if len(bad) > 0 {
		return nil, &Error{Code: EValidation, Message: "events of the batch do not match their schemas; nothing was stored", Violations: bad}
	}
	return warnings, nil
}
