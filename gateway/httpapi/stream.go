package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
)

// streamWriteTimeout bounds each write of a stream: the server's write
// timeout is for requests that end, so a stream sets its own deadline
// before every write instead.
const streamWriteTimeout = 30 * time.Second

// streamEvent is the SSE event type of every event message.
const streamEvent = "lightbus.event"

// streamEvents serves GET /v1/events/stream: Server-Sent Events of the
// events matching the filter, from the position in Last-Event-ID (or
// ?after=), else from now. The first message carries only the stream's
// position (id:), so a client that reconnects before any event resumes
// without a gap; a comment (": ping") is sent whenever no event came for
// the heartbeat interval, preceded by the position when the stream moved
// past events the filter skipped.
func (h *Handler) streamEvents(w http.ResponseWriter, r *http.Request) error {
	v := r.URL.Query()
	f, err := parseFilter(v)
	if err != nil {
		return err
	}
	q := gateway.StreamQuery{EventFilter: f, After: v.Get("after")}
	// A browser's EventSource sends Last-Event-ID on reconnecting to the
	// same URL: the header is newer than the query.
	if ids := r.Header.Values("Last-Event-ID"); len(ids) > 0 {
		if len(ids) > 1 {
			return gateway.Errorf(gateway.EInvalid, "more than one Last-Event-ID header")
		}
		if ids[0] != "" {
			q.After = ids[0]
		}
	}
	st, err := h.svc.OpenStream(r.Context(), q)
	if err != nil {
		return err
	}
	defer st.Close()

	// The stream ends when the client goes or the server shuts down.
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(h.closing, cancel)
	defer stop()

	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no") // proxies: do not buffer
	write := func(s string) error {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout)) // not every writer has deadlines
		if _, err := w.Write([]byte(s)); err != nil {
			return err
		}
		return rc.Flush()
	}
	w.WriteHeader(http.StatusOK)
	sent := st.Position()
	if err := write(fmt.Sprintf("retry: %d\nid: %s\n\n", h.cfg.StreamRetry.Milliseconds(), sent)); err != nil {
		return nil // the client went away
	}
	for {
		evs, err := st.Next(ctx, h.cfg.StreamHeartbeat)
		if err != nil {
			if ctx.Err() == nil {
				h.logger.WarnContext(r.Context(), "event stream ended", slog.String("error", err.Error()))
			}
			return nil // the answer has begun: the client reconnects with its last id
		}
		var msg []byte
		for _, ev := range evs {
			data, err := json.Marshal(ev.Event)
			if err != nil {
				return fmt.Errorf("encode event %s: %w", ev.ID, err)
			}
			msg = fmt.Appendf(msg, "id: %s\nevent: %s\ndata: %s\n\n", ev.Cursor, streamEvent, data)
			sent = ev.Cursor
		}
		if len(evs) == 0 {
			if pos := st.Position(); pos.After(sent) {
				msg = fmt.Appendf(msg, "id: %s\n\n", pos)
				sent = pos
			}
			msg = append(msg, ": ping\n\n"...)
		}
		if err := write(string(msg)); err != nil {
			if !errors.Is(err, context.Canceled) && ctx.Err() == nil {
				h.logger.DebugContext(r.Context(), "event stream write failed", slog.String("error", err.Error()))
			}
			return nil
		}
	}
}
