package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// MaxBatchEvents is the most events one batch fire may carry.
const MaxBatchEvents = 1000

// BatchItem is one event of a batch fire.
type BatchItem struct {
	API            string          `json:"api"`
	Event          string          `json:"event"`
	Params         json.RawMessage `json:"params"`
	IdempotencyKey string          `json:"idempotency_key,omitempty"`
}

// BatchResult is one item's result in a batch fire's answer.
type BatchResult struct {
	Index int `json:"index"`
	FireResult
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

func (s *Server) fireBatch(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBatchBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, r, s.logger, Errorf(ETooLarge, "the batch is larger than %d bytes", s.cfg.MaxBatchBytes))
			return
		}
		writeError(w, r, s.logger, Errorf(EInvalid, "could not read the body"))
		return
	}
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '[' {
		writeError(w, r, s.logger, Errorf(EInvalid, "the body must be a JSON array of events"))
		return
	}
	var items []BatchItem
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&items); err != nil {
		writeError(w, r, s.logger, Errorf(EInvalid, "the batch is not valid: %s", strings.TrimPrefix(err.Error(), "json: ")))
		return
	}
	events, err := NewBatch(items)
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	if err := s.validateBatch(r.Context(), events); err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	var fired []*FireResult
	err = s.store(r, func(ctx context.Context) (err error) {
		fired, err = s.cfg.Events.FireEvents(ctx, events, s.cfg.IdempotencyWindow)
		return err
	})
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	results := make([]BatchResult, len(fired))
	for i, f := range fired {
		results[i] = BatchResult{Index: i, FireResult: *f}
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"results": results})
}

// validateBatch checks every event of a batch against its schema, as a
// single fire would, and reports every violation with a pointer into the
// batch (/2/params/email); nothing is stored when any event fails.
func (s *Server) validateBatch(ctx context.Context, events []*Event) error {
	var bad []Violation
	for i, ev := range events {
		err := s.validateEvent(ctx, ev)
		if err == nil {
			continue
		}
		var e *Error
		if !errors.As(err, &e) || (e.Code != EValidation && e.Code != ENotFound) {
			return err
		}
		if len(e.Violations) == 0 {
			bad = append(bad, Violation{Pointer: fmt.Sprintf("/%d", i), Message: e.Message})
		}
		for _, v := range e.Violations {
			bad = append(bad, Violation{Pointer: fmt.Sprintf("/%d/params%s", i, v.Pointer), Message: v.Message})
		}
	}
	if len(bad) > 0 {
		return &Error{Code: EValidation, Message: "events of the batch do not match their schemas; nothing was stored", Violations: bad}
	}
	return nil
}
