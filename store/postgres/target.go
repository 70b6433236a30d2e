package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/lightbus-go/lightbus/gateway"
)

// WithDeliveryTargetTTL makes DeliveryTarget keep each listener group's
// secret, policy and live endpoints for ttl, so that a delivery reads only
// its event from the database. Changes made through this store (worker
// registration and deregistration, an endpoint removed after a 410, a group
// deleted) take effect at once; changes made through another gateway replica
// within ttl. 0 (the default) reads the group for every delivery.
func WithDeliveryTargetTTL(ttl time.Duration) Option {
	return func(o *options) { o.targetTTL = ttl }
}

// groupCache holds listener groups as DeliveryTarget last read them.
type groupCache struct {
	ttl time.Duration

	mu     sync.Mutex
	groups map[groupKey]*cachedGroup
}

type groupKey struct{ service, listener string }

// cachedGroup is a group's part of a DeliveryTarget, with when each
// endpoint's worker lease ends.
type cachedGroup struct {
	secret    string
	policy    gateway.DeliveryPolicy
	endpoints []cachedEndpoint
	fetched   time.Time
}

type cachedEndpoint struct {
	gateway.Endpoint
	expires time.Time
}

// get returns the group's secret, policy and the endpoints whose lease has
// not ended, if the group was read less than ttl ago and still has one.
func (c *groupCache) get(service, listener string, now time.Time) (secret string, policy gateway.DeliveryPolicy, endpoints []gateway.Endpoint, ok bool) {
	if c == nil {
		return "", policy, nil, false
	}
	c.mu.Lock()
	g := c.groups[groupKey{service, listener}]
	c.mu.Unlock()
	if g == nil || now.Sub(g.fetched) >= c.ttl {
		return "", policy, nil, false
	}
	for _, e := range g.endpoints {
		if now.Before(e.expires) {
			endpoints = append(endpoints, e.Endpoint)
		}
	}
	if len(endpoints) == 0 {
		return "", policy, nil, false
	}
	return g.secret, g.policy, endpoints, true
}

// put keeps a group read at fetched. Groups without live endpoints are not
// kept: a delivery waiting for one must see it as soon as it registers.
func (c *groupCache) put(service, listener string, g *cachedGroup) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(g.endpoints) == 0 {
		delete(c.groups, groupKey{service, listener})
		return
	}
	c.groups[groupKey{service, listener}] = g
}

// forget drops one group.
func (c *groupCache) forget(service, listener string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.groups, groupKey{service, listener})
}

// clear drops every group.
func (c *groupCache) clear() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.groups)
}

// eventLoader reads the events of concurrent deliveries together: while
// maxEventReads reads are in flight, the events asked for meanwhile wait and
// are read by the next one, in a single statement. A lone delivery is never
// held back, and one read that hangs (a connection gone silent) does not stop
// the others.
type eventLoader struct {
	db *DB

	mu      sync.Mutex
	pending []*eventReq
	running int // reads in flight (drain goroutines)
}

// eventReq is one delivery's event read; done is closed when ev or err is
// set.
type eventReq struct {
	id   string // canonical form
	ev   *gateway.Event
	err  error
	done chan struct{}
}

// maxEventBatch bounds the events read in one statement.
const maxEventBatch = 256

// maxEventReads bounds the event reads in flight at once.
const maxEventReads = 4

// load returns the event with id, or an ErrNotFound error.
func (l *eventLoader) load(ctx context.Context, id string) (*gateway.Event, error) {
	parsed, err := uuid.Parse(id)
	if err != nil {
		return nil, gateway.Errorf(gateway.ENotFound, "event %s not found", id)
	}
	// The canonical form is what the database answers with.
	req := &eventReq{id: parsed.String(), done: make(chan struct{})}
	l.mu.Lock()
	l.pending = append(l.pending, req)
	start := l.running < maxEventReads
	if start {
		l.running++
	}
	l.mu.Unlock()
	if start {
		go l.drain()
	}
	select {
	case <-req.done:
		return req.ev, req.err
	case <-ctx.Done():
		return nil, translate(ctx.Err())
	}
}

// drain reads the waiting events, batch by batch, until none is left.
func (l *eventLoader) drain() {
	for {
		l.mu.Lock()
		batch := l.pending
		if len(batch) > maxEventBatch {
			batch = batch[:maxEventBatch]
		}
		l.pending = l.pending[len(batch):]
		if len(batch) == 0 {
			l.running--
			l.pending = nil
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		l.read(batch)
	}
}

// read reads one batch of events. Its deadline is its own: the callers
// waiting on it may each give up, but the read serves all of them.
func (l *eventLoader) read(batch []*eventReq) {
	defer func() {
		for _, r := range batch {
			close(r.done)
		}
	}()
	// The ids go as text[], cast to uuid[] in the statement: a []string
	// encodes as text[] in every pgx exec mode, also without a describe
	// (PgBouncer in transaction mode), and at once in binary when the
	// parameter's type is described as text[].
	ids := make([]string, len(batch))
	for i, r := range batch {
		ids[i] = r.id
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventReadTimeout)
	defer cancel()
	var rows pgx.Rows
	var err error
	if len(ids) == 1 {
		// A statement of its own: Postgres plans "id = ANY($1)" anew on
		// every execution (a generic plan looks dearer than one for the
		// actual array), while for "id = $1" it settles on one plan per
		// connection after five executions.
		rows, err = l.db.pool.Query(ctx, `SELECT `+eventColumns+` FROM lightbus_event WHERE id = $1::uuid`, batch[0].id)
	} else {
		rows, err = l.db.pool.Query(ctx, `SELECT `+eventColumns+` FROM lightbus_event WHERE id = ANY($1::text[]::uuid[])`, ids)
	}
	var found []eventRow
	if err == nil {
		found, err = pgx.CollectRows(rows, pgx.RowToStructByName[eventRow])
	}
	if err != nil {
		err = translate(err)
		for _, r := range batch {
			r.err = err
		}
		return
	}
	byID := make(map[string]*eventRow, len(found))
	for i := range found {
		byID[found[i].ID] = &found[i]
	}
	for _, r := range batch {
		if row, ok := byID[r.id]; ok {
			ev := row.event()
			r.ev = &ev
		} else {
			r.err = gateway.Errorf(gateway.ENotFound, "event %s not found", r.id)
		}
	}
}

// eventReadTimeout bounds one batched event read.
const eventReadTimeout = 10 * time.Second
