package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
)

// ReplayKind is the River job kind of a replay.
const ReplayKind = "lightbus.replay"

// ReplayArgs are the River job args of one replay; its state is in the
// replay's row.
type ReplayArgs struct {
	ReplayID int64 `json:"replay_id"`
}

// Kind implements river.JobArgs.
func (ReplayArgs) Kind() string { return ReplayKind }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (ReplayArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 25}
}

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
		return Since{Time: t}, nil
	}
	if id, err := uuid.Parse(s); err == nil {
		return Since{EventID: id.String()}, nil
	}
	return Since{}, Errorf(EInvalid, "since %q: want now, earliest, an RFC 3339 time or an event id", s)
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

// ReplayStore runs replays.
type ReplayStore interface {
	// StartReplay records a replay of the group from since and queues its
	// job. Returns ErrNotFound when the group does not exist.
	StartReplay(ctx context.Context, service, listener string, since Since, redeliver bool) (*Replay, error)

	// ReplayPage queues the deliveries of the replay's next page of at most
	// limit events, in one transaction with its progress, and reports
	// whether the replay is done. A replay whose group is gone is done.
	ReplayPage(ctx context.Context, replayID int64, limit int) (bool, error)
}

// ReplayWorker is the River worker that runs replays page by page; each
// page is its own short transaction, so replays never hold up fires, and a
// replay interrupted by a restart goes on from its cursor.
type ReplayWorker struct {
	river.WorkerDefaults[ReplayArgs]

	page  int
	store ReplayStore
}

// NewReplayWorker returns a replay worker paging by page events (default
// 500).
func NewReplayWorker(store ReplayStore, page int) *ReplayWorker {
	if page <= 0 {
		page = 500
	}
	return &ReplayWorker{page: page, store: store}
}

// Work pages through the replay until it is done.
func (w *ReplayWorker) Work(ctx context.Context, job *river.Job[ReplayArgs]) error {
	for {
		done, err := w.store.ReplayPage(ctx, job.Args.ReplayID, w.page)
		if err != nil || done {
			return err
		}
	}
}

func (s *Server) replayListener(w http.ResponseWriter, r *http.Request) {
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
	var req struct {
		Since string `json:"since"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, r, s.logger, Errorf(EInvalid, "the body is not valid: want {\"since\": ...}"))
		return
	}
	since, err := ParseSince(req.Since)
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	if since.Now {
		writeError(w, r, s.logger, Errorf(EInvalid, "since is required: earliest, an RFC 3339 time or an event id"))
		return
	}
	rp, err := s.cfg.Replays.StartReplay(r.Context(), service, listener, since, true)
	if err != nil {
		writeError(w, r, s.logger, err)
		return
	}
	writeJSON(w, http.StatusAccepted, rp)
}
