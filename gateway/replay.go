package gateway

import (
	"context"
	"time"

	"github.com/google/uuid"
)

// Since is where a listener group starts reading the event log: now (only
// events fired from now on), the earliest retained event, a time, or an
// event id (that event and every later one).
type Since struct {
	Now      bool
	Earliest bool
	Time     time.Time
	EventID  string
}

// ParseSince reads "now", "earliest", an RFC 3339 time or an event id.
func ParseSince(s string) (Since, error) {
	switch s {
	case "", "now":
		return Since{Now: true}, nil
	case "earliest":
		return Since{Earliest: true}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		if err := checkTimeRange("since", s, t); err != nil {
			return Since{}, err
		}
		return Since{Time: t}, nil
	}
	if id, err := uuid.Parse(s); err == nil {
		return Since{EventID: id.String()}, nil
	}
	return Since{}, Errorf(EInvalid, "since %q: want now, earliest, an RFC 3339 time or an event id", s)
}

// The times a request may carry: years 1 to 9999 in UTC. An RFC 3339 time
// with an offset can fall outside them (0000-01-01T00:00:00+01:00), and
// such a time can be stored but not written back as JSON.
var (
	minTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// ParseTime reads the RFC 3339 time s, named what ("since") in errors,
// from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z. Errors:
// EInvalid.
func ParseTime(what, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, Errorf(EInvalid, "%s %q is not an RFC 3339 time", what, s)
	}
	return t, checkTimeRange(what, s, t)
}

func checkTimeRange(what, s string, t time.Time) error {
	if t.Before(minTime) || !t.Before(maxTime) {
		return Errorf(EInvalid, "%s %q is out of range: want a time from year 1 to 9999 in UTC", what, s)
	}
	return nil
}

// Replay is a re-queuing of a group's deliveries from a point in the event
// log, with its progress.
type Replay struct {
	ID       int64      `json:"id"`
	Service  string     `json:"service"`
	Listener string     `json:"listener"`
	FromID   string     `json:"from_id,omitempty"`
	Since    *time.Time `json:"since,omitempty"`
	Until    time.Time  `json:"until"`
	// Redeliver is true for a rewind: events already delivered are
	// delivered again.
	Redeliver bool `json:"redeliver"`
	// Cursor is the last event id the replay has gone past.
	Cursor string `json:"cursor,omitempty"`
	// Queued counts the deliveries queued so far.
	Queued int64 `json:"queued"`
	// State is running or done.
	State      string     `json:"state"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}

// ReplayStore starts replays; the replay job (package dispatch) runs them.
type ReplayStore interface {
	// StartReplay records a replay of the group from since and queues its
	// job. Returns ErrNotFound when the group does not exist.
	StartReplay(ctx context.Context, service, listener string, since Since, redeliver bool) (*Replay, error)
}

// Replay rewinds a listener group: every retained event from since on
// ("earliest", an RFC 3339 time or an event id) is delivered to it again,
// by a job that pages through the event log. Needs admin. Errors:
// EInvalid, ENotFound.
func (s *Service) Replay(ctx context.Context, service, listener, since string) (*Replay, error) {
	if err := s.authorize(ctx, ScopeAdmin, ""); err != nil {
		return nil, err
	}
	if err := ValidateGroup(service, listener); err != nil {
		return nil, err
	}
	from, err := ParseSince(since)
	if err != nil {
		return nil, err
	}
	if from.Now {
		return nil, Errorf(EInvalid, "since is required: earliest, an RFC 3339 time or an event id")
	}
	return s.cfg.Replays.StartReplay(ctx, service, listener, from, true)
}
