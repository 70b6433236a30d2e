package lightbus

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// FollowQuery selects the events [Bus.Follow] follows; zero fields do not
// filter. API, Event, Since, Until and Where are as in [EventQuery].
type FollowQuery struct {
	API   string
	Event string
	Since time.Time
	Until time.Time
	Where []string
	// After resumes after this position (a [FollowedEvent]'s Position, or
	// one given to OnPosition); empty starts from now.
	After string

	// OnPosition, when set, is told each position the stream reaches
	// without an event: the position a new stream starts from, and where
	// it moved past events the filter skipped. Resuming from the last
	// position seen (events' included) misses and repeats nothing.
	OnPosition func(position string)
	// OnRetry, when set, is told why the stream broke and how long Follow
	// waits before reconnecting.
	OnRetry func(err error, wait time.Duration)
	// IdleTimeout is how long the stream may stay silent (the gateway
	// sends a heartbeat every 15 s by default) before Follow reconnects.
	// 0 means 1 minute.
	IdleTimeout time.Duration
}

// FollowedEvent is an event of a stream and its position.
type FollowedEvent struct {
	StoredEvent
	// Position is the stream's position after this event: resume after it
	// with FollowQuery.After.
	Position string
}

// Follow streams the events matching q as they commit
// (GET /v1/events/stream) and calls fn with each, in order, until ctx
// ends (then it returns ctx's error) or fn returns an error (returned as
// is). When the stream breaks (a network error, the gateway restarting or
// refusing with 503 or 429) it reconnects from the last position with
// backoff (up to 10 s), so fn sees every event once. Errors that a retry
// cannot mend are returned: an *Error with code invalid (a bad filter),
// unauthorized, forbidden, or gone (the position is older than the
// gateway resumes from). An http.Client given with [WithHTTPClient] must
// not have a Timeout, or it cuts the stream.
func (b *Bus) Follow(ctx context.Context, q FollowQuery, fn func(FollowedEvent) error) error {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("api", q.API)
	set("event", q.Event)
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	for _, w := range q.Where {
		v.Add("where", w)
	}
	if q.IdleTimeout <= 0 {
		q.IdleTimeout = time.Minute
	}
	pos := q.After
	const maxWait = 10 * time.Second
	wait := 250 * time.Millisecond
	for {
		progressed, err := b.followOnce(ctx, v, &pos, q, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ferr *fnError
		if errors.As(err, &ferr) {
			return ferr.err
		}
		var e *Error
		if errors.As(err, &e) && e.Status != http.StatusServiceUnavailable && e.Status != http.StatusTooManyRequests && e.Status < 500 {
			return fmt.Errorf("lightbus: follow events: %w", err)
		}
		if progressed {
			wait = 250 * time.Millisecond
		}
		if err == nil {
			err = io.ErrUnexpectedEOF // the gateway ended the stream (shutting down)
		}
		if q.OnRetry != nil {
			q.OnRetry(err, wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, maxWait)
	}
}

// fnError is an error of Follow's callback, which ends Follow.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }

// followOnce reads one connection of a stream, moving *pos with each
// message. It reports whether any message came.
func (b *Bus) followOnce(ctx context.Context, v url.Values, pos *string, q FollowQuery, fn func(FollowedEvent) error) (progressed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.gateway+"/v1/events/stream?"+v.Encode(), nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("User-Agent", "lightbus-go")
	if *pos != "" {
		req.Header.Set("Last-Event-ID", *pos)
	}
	if b.authorization != nil {
		req.Header["Authorization"] = b.authorization
	}
	idle := time.AfterFunc(q.IdleTimeout, cancel)
	defer idle.Stop()
	resp, err := b.hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, err := readLimited(resp)
		if err != nil {
			return false, err
		}
		return false, problemFromResponse(resp, data)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return false, fmt.Errorf("%w: the stream answered with Content-Type %q", errBadResponse, ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxResponseBytes)
	var id, data string
	var hasID bool
	for sc.Scan() {
		idle.Reset(q.IdleTimeout)
		line := sc.Text()
		if line != "" {
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				id, hasID = value, true
			case "data":
				if data != "" {
					data += "\n"
				}
				data += value
			}
			continue
		}
		// A blank line ends a message.
		progressed = true
		if hasID {
			*pos = id
		}
		if data != "" {
			var ev StoredEvent
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				return progressed, fmt.Errorf("%w: an event of the stream: %v", errBadResponse, err)
			}
			if err := fn(FollowedEvent{StoredEvent: ev, Position: *pos}); err != nil {
				return progressed, &fnError{err}
			}
		} else if hasID && q.OnPosition != nil {
			q.OnPosition(id)
		}
		id, data, hasID = "", "", false
	}
	if err := sc.Err(); err != nil {
		return progressed, err
	}
	return progressed, nil
}
