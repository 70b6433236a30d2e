package gateway

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
)

// StreamCursor is a position in the live stream of events: the stream
// orders events by the transaction that stored them (XID, a Postgres
// xid8) and then by id, and a cursor stands after every event at or
// before (XID, ID) in that order. Time is when the position was reached
// (the event's creation time, or the time the stream caught up), which
// bounds how far back a stream may resume.
type StreamCursor struct {
	XID  uint64
	ID   uuid.UUID
	Time time.Time
}

// cursorVersion is the first byte of an encoded cursor.
const cursorVersion = 1

// String encodes c opaquely (URL-safe base64), as sent in SSE id fields.
func (c StreamCursor) String() string {
	var b [1 + 8 + 16 + 8]byte
	b[0] = cursorVersion
	binary.BigEndian.PutUint64(b[1:], c.XID)
	copy(b[9:], c.ID[:])
	binary.BigEndian.PutUint64(b[25:], uint64(c.Time.UnixMicro()))
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// After reports whether c stands after o in stream order.
func (c StreamCursor) After(o StreamCursor) bool {
	if c.XID != o.XID {
		return c.XID > o.XID
	}
	for i := range c.ID {
		if c.ID[i] != o.ID[i] {
			return c.ID[i] > o.ID[i]
		}
	}
	return false
}

// ParseStreamCursor decodes a cursor made by StreamCursor.String.
// Errors: EInvalid.
func ParseStreamCursor(s string) (StreamCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 33 || b[0] != cursorVersion {
		return StreamCursor{}, Errorf(EInvalid, "stream position %q is not one this gateway made: resume with the id of the last message received", clip(s))
	}
	var c StreamCursor
	c.XID = binary.BigEndian.Uint64(b[1:])
	copy(c.ID[:], b[9:25])
	c.Time = time.UnixMicro(int64(binary.BigEndian.Uint64(b[25:]))).UTC()
	return c, nil
}

// StreamedEvent is an event with its position in the stream.
type StreamedEvent struct {
	Event
	Cursor StreamCursor
}

// StreamStore reads the live stream of events.
type StreamStore interface {
	// StreamHead returns the position that every finished transaction's
	// events stand at or before: a new stream starts there. Returns
	// ErrUnavailable when the database cannot be reached.
	StreamHead(ctx context.Context) (StreamCursor, error)

	// StreamEvents returns up to limit events matching f after the cursor
	// in stream order, only from transactions that have finished (so that
	// none can later appear before them), and the position the read
	// reached: the last event's, or the head when fewer than limit
	// matched. Returns ErrUnavailable when the database cannot be reached.
	StreamEvents(ctx context.Context, after StreamCursor, f EventFilter, limit int) ([]StreamedEvent, StreamCursor, error)
}

// StreamConfig bounds the live streams of one gateway process.
type StreamConfig struct {
	// Store reads the stream; nil serves no streams (EUnavailable).
	Store StreamStore
	// MaxStreams is how many streams may be open at once; more are
	// refused with EUnavailable. 0 means 100.
	MaxStreams int
	// PollInterval is how often the head of the stream is read while any
	// stream waits for events: the most a new event waits before streams
	// see it. 0 means 250 ms.
	PollInterval time.Duration
	// MaxResume is how far back a stream may resume (EGone beyond). 0
	// means 24 h.
	MaxResume time.Duration
	// Retention is how long events are kept; a position older than it is
	// EGone too. 0 is no bound.
	Retention time.Duration
	// BatchSize is the most events one read returns. 0 means 500.
	BatchSize int
}

// StreamQuery opens a stream: the events matching Filter after the
// position After (an encoded StreamCursor), or from now when After is
// empty.
type StreamQuery struct {
	EventFilter
	After string
}

// EventStream is one open stream. Next returns its events; Close gives
// back its slot.
type EventStream struct {
	svc    *Service
	filter EventFilter
	pos    StreamCursor
	once   sync.Once
}

// Position returns the stream's position: after every event returned so
// far and every non-matching event already passed.
func (s *EventStream) Position() StreamCursor { return s.pos }

// Next returns the next events, waiting up to wait for some to be
// committed; it returns none (and no error) when wait passes first.
func (s *EventStream) Next(ctx context.Context, wait time.Duration) ([]StreamedEvent, error) {
	hub := s.svc.streams
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for {
		changed := hub.changed()
		var evs []StreamedEvent
		var pos StreamCursor
		err := s.svc.bounded(ctx, func(ctx context.Context) (err error) {
			evs, pos, err = hub.cfg.Store.StreamEvents(ctx, s.pos, s.filter, hub.cfg.BatchSize)
			return err
		})
		if err != nil {
			return nil, err
		}
		if pos.After(s.pos) {
			s.pos = pos
		}
		if len(evs) > 0 {
			return evs, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, nil
		case <-changed:
		}
	}
}

// Close releases the stream's slot. It may be called more than once.
func (s *EventStream) Close() {
	s.once.Do(s.svc.streams.release)
}

// OpenStream opens a live stream of the events matching q. Needs read.
// Errors: EInvalid (a bad filter or position), EGone (a position older
// than the resume bound or the retention), EUnavailable (too many streams
// open, or the database).
func (s *Service) OpenStream(ctx context.Context, q StreamQuery) (*EventStream, error) {
	if err := s.authorize(ctx, ScopeRead, ""); err != nil {
		return nil, err
	}
	if err := q.EventFilter.Validate(); err != nil {
		return nil, err
	}
	hub := s.streams
	if hub.cfg.Store == nil {
		return nil, Errorf(EUnavailable, "this gateway serves no event streams")
	}
	var pos StreamCursor
	if q.After != "" {
		var err error
		if pos, err = ParseStreamCursor(q.After); err != nil {
			return nil, err
		}
		now := time.Now()
		if pos.Time.Before(now.Add(-hub.cfg.MaxResume)) {
			return nil, Errorf(EGone, "the stream position is from %s, older than the %s a stream may resume from: open a new stream, and list older events with GET /v1/events", pos.Time.Format(time.RFC3339), hub.cfg.MaxResume)
		}
		if hub.cfg.Retention > 0 && pos.Time.Before(now.Add(-hub.cfg.Retention)) {
			return nil, Errorf(EGone, "the stream position is from %s, older than the %s events are kept: open a new stream", pos.Time.Format(time.RFC3339), hub.cfg.Retention)
		}
	}
	if !hub.acquire() {
		return nil, &Error{Code: EUnavailable, RetryAfter: time.Second,
			Message: "too many event streams are open on this gateway; try again later"}
	}
	st := &EventStream{svc: s, filter: q.EventFilter, pos: pos}
	if q.After == "" {
		err := s.bounded(ctx, func(ctx context.Context) (err error) {
			st.pos, err = hub.cfg.Store.StreamHead(ctx)
			return err
		})
		if err != nil {
			st.Close()
			return nil, err
		}
	}
	return st, nil
}

// streamHub counts the open streams and, while any is open, reads the
// head of the stream every poll interval, waking the streams when it
// moved: one query per interval per process, however many streams wait.
type streamHub struct {
	cfg    StreamConfig
	logger *slog.Logger

	mu     sync.Mutex
	open   int
	wake   chan struct{} // closed when the head moves
	stop   context.CancelFunc
	polled StreamCursor
}

func newStreamHub(cfg StreamConfig, logger *slog.Logger) *streamHub {
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = 100
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 250 * time.Millisecond
	}
	if cfg.MaxResume <= 0 {
		cfg.MaxResume = 24 * time.Hour
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	return &streamHub{cfg: cfg, logger: logger, wake: make(chan struct{})}
}

// changed returns a channel closed when the head next moves.
func (h *streamHub) changed() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.wake
}

func (h *streamHub) acquire() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.open >= h.cfg.MaxStreams {
		return false
	}
	h.open++
	if h.open == 1 {
		ctx, cancel := context.WithCancel(context.Background())
		h.stop = cancel
		go h.poll(ctx)
	}
	return true
}

func (h *streamHub) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.open--
	if h.open == 0 {
		h.stop()
	}
}

func (h *streamHub) poll(ctx context.Context) {
	t := time.NewTicker(h.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		qctx, cancel := context.WithTimeout(ctx, h.cfg.PollInterval+5*time.Second)
		head, err := h.cfg.Store.StreamHead(qctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				h.logger.Warn("reading the head of the event stream", slog.String("error", err.Error()))
			}
			continue
		}
		h.mu.Lock()
		if head.XID != h.polled.XID || head.ID != h.polled.ID {
			h.polled = head
			close(h.wake)
			h.wake = make(chan struct{})
		}
		h.mu.Unlock()
	}
}
