package gateway

import (
	"context"
	"testing"
	"time"
)

// Times are RFC 3339 and within years 1 to 9999 in UTC: an offset can put
// a valid RFC 3339 time outside them, and such a time cannot be written
// back as JSON.
func TestParseTime(t *testing.T) {
	t.Parallel()

	for s, ok := range map[string]bool{
		"2024-05-01T10:00:00Z":           true,
		"0001-01-01T00:00:00Z":           true,
		"9999-12-31T23:59:59.999999999Z": true,
		"0001-01-01T00:30:00+00:30":      true,
		"0000-12-31T23:59:59Z":           false,
		"0001-01-01T00:00:00+00:01":      false,
		"9999-12-31T23:59:59-00:01":      false,
		"300000-01-01T00:00:00Z":         false,
		"yesterday":                      false,
		"":                               false,
	} {
		_, err := ParseTime("since", s)
		if ok != (err == nil) || (err != nil && ErrorCode(err) != EInvalid) {
			t.Errorf("ParseTime(%q) = %v, want accepted: %v", s, err, ok)
		}
		if s == "" {
			continue
		}
		if _, err := ParseSince(s); ok != (err == nil) {
			t.Errorf("ParseSince(%q) = %v, want accepted: %v", s, err, ok)
		}
	}
}

// eventIDStore records the event id it is asked for.
type eventIDStore struct {
	EventStore
	got string
}

func (s *eventIDStore) GetEvent(ctx context.Context, id string) (*EventDetail, error) {
	s.got = id
	return nil, ErrNotFound
}

// Event ids in any form uuid.Parse reads reach the store in the canonical
// form Postgres reads.
func TestEventIDCanonical(t *testing.T) {
	t.Parallel()

	const id = "01936f6e-0000-7000-8000-000000000000"
	st := &eventIDStore{}
	s := NewService(ServiceConfig{Events: st, StoreTimeout: time.Second})
	for _, form := range []string{id, "urn:uuid:" + id, "{" + id + "}", "01936f6e000070008000000000000000"} {
		st.got = ""
		if _, err := s.Event(t.Context(), form); ErrorCode(err) != ENotFound || st.got != id {
			t.Errorf("Event(%q): %v, store asked for %q", form, err, st.got)
		}
		q := EventQuery{Before: form, Limit: 10}
		if err := q.Validate(); err != nil || q.Before != id {
			t.Errorf("EventQuery{Before: %q}: %v, cursor %q", form, err, q.Before)
		}
	}
}
