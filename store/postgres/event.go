package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/gateway/dispatch"
)

// FireEvent implements gateway.EventStore. With fire batching enabled
// (EnableFireBatching) concurrent fires share a transaction, with or
// without an idempotency key; a fire whose key is taken already is then
// answered as a lone fire would be, in a transaction of its own.
func (db *DB) FireEvent(ctx context.Context, ev *gateway.Event, window time.Duration) (*gateway.FireResult, error) {
	if db.batcher != nil {
		return db.batcher.fire(ctx, ev, window)
	}
	return db.fireAlone(ctx, ev, window)
}

// fireAlone stores ev and queues its deliveries in a transaction of its
// own, or answers for the event that holds its idempotency key.
func (db *DB) fireAlone(ctx context.Context, ev *gateway.Event, window time.Duration) (*gateway.FireResult, error) {
	f := &fanOut{}
	s := f.stage(ev)
	if err := db.fanOutTx(ctx, f); err != nil {
		_, err = commitFailed(err)
		return nil, err
	}
	if !s.stored {
		return db.fireKeyTaken(ctx, ev, window)
	}
	return s.result(), nil
}

// fireKeyTaken answers a fire whose idempotency key was taken when it was
// staged: with the event holding the key (a repeat), a conflict, or, when
// that key has outlived its window, by storing ev after all.
func (db *DB) fireKeyTaken(ctx context.Context, ev *gateway.Event, window time.Duration) (*gateway.FireResult, error) {
	var res *gateway.FireResult
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		var err error
		res, err = db.fireTx(ctx, tx, ev, window)
		return err
	})
	return res, err
}

// FireEvents implements gateway.EventStore. The events are staged together
// and sent in one pipelined round trip (or a COPY); an event whose
// idempotency key is taken is then answered in the same transaction as a
// lone fire would be.
func (db *DB) FireEvents(ctx context.Context, evs []*gateway.Event, window time.Duration) ([]*gateway.FireResult, error) {
	results := make([]*gateway.FireResult, len(evs))
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		f := &fanOut{}
		staged := make([]*stagedEvent, len(evs))
		for i, ev := range evs {
			staged[i] = f.stage(ev)
		}
		if err := db.flush(ctx, tx, f); err != nil {
			return err
		}
		for i, st := range staged {
			if st.stored {
				results[i] = st.result()
				continue
			}
			// Its key was taken (by an earlier fire or an earlier item of
			// this batch): answered in this transaction as a lone fire.
			res, err := db.fireTx(ctx, tx, st.ev, window)
			if err != nil {
				var gerr *gateway.Error
				if errors.As(err, &gerr) && gerr.Code == gateway.EConflict {
					return gateway.Errorf(gateway.EConflict, "event %d: %s; nothing was stored", i, gerr.Message)
				}
				return err
			}
			results[i] = res
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// fireTx stores ev, which has an idempotency key, and queues its deliveries
// in tx, or finds the event that holds ev's key (see fireKeyTaken). Keys
// are unique per API (lightbus_event_key's primary key): the insert does
// nothing on a conflict, which waits for a concurrent fire with the same
// key to commit or roll back, so concurrent repeats store one event.
func (db *DB) fireTx(ctx context.Context, tx pgx.Tx, ev *gateway.Event, window time.Duration) (*gateway.FireResult, error) {
	res := &gateway.FireResult{ID: ev.ID, API: ev.API, Event: ev.Name, CreatedAt: ev.CreatedAt}
	f := &fanOut{}
	for stored := false; !stored; {
		tag, err := tx.Exec(ctx, insertKeyedEventSQL,
			ev.ID, ev.API, ev.Name, string(ev.Params), ev.IdempotencyKey, ev.CreatedAt, nullable(ev.TraceParent), nullable(ev.TraceState))
		if err != nil {
			return nil, err
		}
		if stored = tag.RowsAffected() == 1; stored {
			break
		}
		var orig gateway.FireResult
		var name, params *string
		var created *time.Time
		var expired bool
		err = tx.QueryRow(ctx, keyHolderSQL, ev.API, ev.IdempotencyKey, window.Microseconds()).
			Scan(&orig.ID, &name, &params, &created, &expired)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			continue // the key is gone (released or pruned): try again
		case err != nil:
			return nil, err
		case orig.ID == "" || expired:
			// The key's event is gone (pruned), or the key outlived the
			// window: the old event, if any, gives it up.
			if _, err := tx.Exec(ctx, releaseKeySQL, ev.API, ev.IdempotencyKey); err != nil {
				return nil, err
			}
			continue
		}
		orig.Event, orig.CreatedAt = *name, *created
		if orig.Event != ev.Name || *params != string(ev.Params) {
			return nil, gateway.Errorf(gateway.EConflict,
				"Idempotency-Key %q was used by event %s (%s.%s) with other parameters: use a new key for a new event",
				ev.IdempotencyKey, orig.ID, ev.API, orig.Event)
		}
		// The event holding the key may be this fire's own: stored by a
		// shared transaction whose commit was not confirmed (see
		// fireBatcher.commit). Its id says so; that is no repeat.
		orig.API, orig.Repeat, orig.CreatedAt = ev.API, orig.ID != ev.ID, orig.CreatedAt.UTC()
		if err := tx.QueryRow(ctx, countEventDeliveriesSQL, orig.ID).Scan(&orig.Deliveries); err != nil {
			return nil, err
		}
		return &orig, nil
	}
	// The event is stored: queue its deliveries.
	n := f.stageDeliveries(ev)
	if err := db.flush(ctx, tx, f); err != nil {
		return nil, err
	}
	res.Deliveries = *n
	return res, nil
}

// fanOut gathers the fires of one transaction: their statements, sent to
// Postgres in one pipelined round trip by flush, then, for many events,
// their deliveries, inserted in one statement. A transaction of one event
// stores it and its deliveries with one statement (inline), one of fewer
// than copyEventsMin events all of them with one delivery batch per group
// (few); a larger one looks up the groups subscribed to each (API, event)
// once, and inserts the deliveries with River, one delivery batch per group
// (queueJobs).
type fanOut struct {
	batch  pgx.Batch
	groups map[[2]string][]subscribedGroup
	events []*stagedEvent // to store, by flush
	jobs   []river.InsertManyParams
	// byGroup holds the deliveries added by addDeliveries, by group (in
	// groupOrder), until queueJobs makes them jobs.
	byGroup    map[groupKey]*groupEvents
	groupOrder []groupKey
	// commit, when set, asks flush to put the COMMIT of tx (a begunTx) in
	// the same pipeline when nothing is to be sent after it; committed
	// then says it was sent. See fanOutTx.
	commit, committed bool
	// lookups counts the lookups of stageDeliveries, whose deliveries
	// River inserts after the pipeline.
	lookups int
	// answered counts the inline statements answered without error.
	answered int
	// woken holds the ordered groups that addDeliveries found, whose jobs
	// flush wakes.
	woken map[groupKey]bool
}

// keyHolderSQL locks idempotency key ($1 api, $2 key) and reads its event:
// its id (” when that event is gone: pruned), name, parameters, time, and
// whether it is older than the window ($3, in microseconds).
const keyHolderSQL = `
	SELECT COALESCE(e.id::text, ''), e.name, e.params::text, e.created_at,
	       COALESCE(e.created_at < now() - $3 * interval '1 microsecond', false)
	FROM lightbus_event_key k LEFT JOIN lightbus_event e ON e.id = k.event_id
	WHERE k.api = $1 AND k.key = $2
	FOR UPDATE OF k`

// releaseKeySQL releases idempotency key ($1 api, $2 key): the key goes,
// and its event, if still kept, shows none.
const releaseKeySQL = `
	WITH k AS (DELETE FROM lightbus_event_key WHERE api = $1 AND key = $2 RETURNING event_id)
	UPDATE lightbus_event e SET idempotency_key = NULL FROM k WHERE e.id = k.event_id`

// stagedEvent is an event to store and, once flush ran, whether it was
// stored and how many deliveries it got. An event whose idempotency key is
// taken already is not stored: its fire is answered by fireTx instead.
type stagedEvent struct {
	ev     *gateway.Event
	stored bool
	n      int
}

// result is the answer to a fire that stored s.
func (s *stagedEvent) result() *gateway.FireResult {
	ev := s.ev
	return &gateway.FireResult{ID: ev.ID, API: ev.API, Event: ev.Name, CreatedAt: ev.CreatedAt, Deliveries: s.n}
}

// insertKeyedEventSQL stores an event with an idempotency key, or does
// nothing when the key is taken: keys are unique per API in
// lightbus_event_key, and the event is inserted only when its key was. On a
// key that a concurrent transaction inserted, it waits for that one to end.
const insertKeyedEventSQL = `
	WITH k AS (
		INSERT INTO lightbus_event_key (api, key, event_id) VALUES ($2, $5, $1)
		ON CONFLICT (api, key) DO NOTHING
		RETURNING event_id)
	INSERT INTO lightbus_event (id, api, name, params, idempotency_key, created_at, traceparent, tracestate)
	SELECT k.event_id, $2, $3, $4, $5, $6, $7, $8 FROM k`

// copyEventsMin is the number of events without a key from which flush
// stores them with one COPY instead of an INSERT each in the pipeline.
// COPY takes a round trip of its own, but from here on it costs Postgres
// and the gateway less than the INSERTs it replaces (BenchmarkFireEvents,
// docs/PERFORMANCE.md).
const copyEventsMin = 16

// subscribedGroup is a listener group that gets a delivery.
type subscribedGroup struct {
	service, listener      string
	maxAttempts, timeoutMS int
	// ordered groups get no delivery job: their job is woken instead.
	ordered bool
}

// subscribedGroupsSQL finds the listener groups subscribed to an event.
const subscribedGroupsSQL = `
	SELECT DISTINCT l.service, l.name, l.max_attempts, l.timeout_ms, l.ordered
	FROM lightbus_subscription s
	JOIN lightbus_listener l ON l.service = s.service AND l.name = s.listener
	WHERE s.api = $1 AND s.event IN ($2, '*')`

func collectGroups(rows pgx.Rows) ([]subscribedGroup, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (subscribedGroup, error) {
		var g subscribedGroup
		err := r.Scan(&g.service, &g.listener, &g.maxAttempts, &g.timeoutMS, &g.ordered)
		return g, err
	})
}

// addDeliveries queues one delivery of ev per group and returns how many.
// The deliveries of one group are queued together, by queueJobs; an
// ordered group's job is woken instead (wakeOrdered).
func (f *fanOut) addDeliveries(ev *gateway.Event, groups []subscribedGroup) int {
	for _, g := range groups {
		k := groupKey{g.service, g.listener}
		if g.ordered {
			if f.woken == nil {
				f.woken = map[groupKey]bool{}
			}
			f.woken[k] = true
			continue
		}
		ge := f.byGroup[k]
		if ge == nil {
			if f.byGroup == nil {
				f.byGroup = map[groupKey]*groupEvents{}
			}
			ge = &groupEvents{group: g}
			f.byGroup[k] = ge
			f.groupOrder = append(f.groupOrder, k)
		}
		ge.ids = append(ge.ids, ev.ID)
	}
	return len(groups)
}

// groupEvents are the events of a transaction to deliver to one group.
type groupEvents struct {
	group subscribedGroup
	ids   []string
}

// queueJobs turns the deliveries added by addDeliveries into jobs: per
// group, one delivery batch of up to most events (deliveryJobs).
func (f *fanOut) queueJobs(most int) {
	for _, k := range f.groupOrder {
		ge := f.byGroup[k]
		f.jobs = append(f.jobs, deliveryJobs(ge.group, ge.ids, most)...)
	}
	f.byGroup, f.groupOrder = nil, nil
}

// deliveryJobs returns the jobs that deliver ids to group g: a delivery
// batch per most events, in id order (UUIDv7: oldest first), and a delivery
// job of its own for an event alone.
func deliveryJobs(g subscribedGroup, ids []string, most int) []river.InsertManyParams {
	slices.Sort(ids)
	var jobs []river.InsertManyParams
	for len(ids) > 0 {
		n := min(len(ids), max(most, 1))
		chunk := ids[:n]
		ids = ids[n:]
		if len(chunk) == 1 {
			jobs = append(jobs, river.InsertManyParams{
				Args:       dispatch.DeliveryArgs{EventID: chunk[0], Service: g.service, Listener: g.listener, TimeoutMS: g.timeoutMS},
				InsertOpts: &river.InsertOpts{MaxAttempts: g.maxAttempts, Queue: dispatch.QueueDelivery},
			})
			continue
		}
		maxAttempts := g.maxAttempts
		if maxAttempts <= 0 {
			maxAttempts = river.MaxAttemptsDefault // as River sets a delivery job's
		}
		jobs = append(jobs, river.InsertManyParams{
			Args: dispatch.DeliveryBatchArgs{Service: g.service, Listener: g.listener, EventIDs: slices.Clone(chunk),
				MaxAttempts: maxAttempts, TimeoutMS: g.timeoutMS},
		})
	}
	return jobs
}

// stage queues ev, for flush to store with one delivery per subscribed
// group. It is the per-event step shared by a lone fire and a batch of
// fires in one transaction.
func (f *fanOut) stage(ev *gateway.Event) *stagedEvent {
	st := &stagedEvent{ev: ev}
	f.events = append(f.events, st)
	return st
}

// inline reports whether flush stores each event with its deliveries in
// one statement: when there is one event, whose deliveries are a job per
// group either way. Several events get one job per group for all of them
// (few, queueJobs).
func (f *fanOut) inline() bool { return len(f.events) == 1 }

// lookUpGroups queues the lookup of the groups subscribed to each (API,
// event) of the staged events, once each.
func (f *fanOut) lookUpGroups() {
	for _, st := range f.events {
		k := [2]string{st.ev.API, st.ev.Name}
		if _, seen := f.groups[k]; seen {
			continue
		}
		if f.groups == nil {
			f.groups = map[[2]string][]subscribedGroup{}
		}
		f.groups[k] = nil
		f.batch.Queue(subscribedGroupsSQL, st.ev.API, st.ev.Name).Query(func(rows pgx.Rows) error {
			groups, err := collectGroups(rows)
			f.groups[k] = groups
			return err
		})
	}
}

// Inline statements: an event, the groups subscribed to it, its deliveries
// and, when $6 is not empty, River's insert notification, with how many
// events (0 or 1: a keyed one whose key is taken is not stored) and jobs
// were inserted and whether it notified. $1 id, $2 api, $3 name, $4 params,
// $5 created_at, $7 traceparent, $8 tracestate, $9 the idempotency key of a
// keyed event.
var (
	insertEventInlineSQL = inlineSQL(``, `
		INSERT INTO lightbus_event (id, api, name, params, created_at, traceparent, tracestate)
		VALUES ($1, $2, $3, $4, $5, $7, $8)
		RETURNING id::text AS id`)
	insertKeyedEventInlineSQL = inlineSQL(`
		INSERT INTO lightbus_event_key (api, key, event_id) VALUES ($2, $9, $1)
		ON CONFLICT (api, key) DO NOTHING
		RETURNING event_id`, `
		INSERT INTO lightbus_event (id, api, name, params, created_at, idempotency_key, traceparent, tracestate)
		SELECT k.event_id, $2, $3, $4, $5, $9, $7, $8 FROM k
		RETURNING id::text AS id`)
)

// inlineSQL is an inline statement storing an event with insertEvent,
// after insertKey (when not empty: a CTE named k, the event's idempotency
// key, which insertEvent reads).
func inlineSQL(insertKey, insertEvent string) string {
	with := `
	WITH `
	if insertKey != "" {
		with += `k AS (` + insertKey + `),
	`
	}
	return with + `ev AS (` + insertEvent + `),
	g AS (
		SELECT DISTINCT l.service, l.name AS listener, l.max_attempts, l.timeout_ms
		FROM lightbus_subscription s
		JOIN lightbus_listener l ON l.service = s.service AND l.name = s.listener
		WHERE s.api = $2 AND s.event IN ($3, '*') AND NOT l.ordered),
	og AS (
		SELECT DISTINCT l.service, l.name AS listener
		FROM ev, lightbus_subscription s
		JOIN lightbus_listener l ON l.service = s.service AND l.name = s.listener
		WHERE s.api = $2 AND s.event IN ($3, '*') AND l.ordered),
	woken AS (` + orderedWakeCTE("og") + `),
	jobs AS (` + insertDeliveryJobsSQL + `
		RETURNING 1)
	SELECT (SELECT count(*) FROM ev)::int, ((SELECT count(*) FROM jobs) + (SELECT count(*) FROM og))::int, ` + riverInsertNotifySQL(6)
}

// eventCopyColumns are the columns of lightbus_event that a fire sets.
var eventCopyColumns = []string{"id", "api", "name", "params", "created_at", "traceparent", "tracestate"}

// stageDeliveries queues the lookup of the groups subscribed to ev, an
// event stored already, and one delivery per group; the returned count is
// set by flush.
func (f *fanOut) stageDeliveries(ev *gateway.Event) *int {
	n := new(int)
	f.lookups++
	f.batch.Queue(subscribedGroupsSQL, ev.API, ev.Name).Query(func(rows pgx.Rows) error {
		groups, err := collectGroups(rows)
		if err != nil {
			return err
		}
		*n = f.addDeliveries(ev, groups)
		return nil
	})
	return n
}

// flush runs the staged statements in tx, stores the staged events and
// inserts the deliveries.
func (db *DB) flush(ctx context.Context, tx pgx.Tx, f *fanOut) error {
	inline, few := f.inline(), f.few(db.batchMax)
	var copied [][]any
	switch {
	case inline:
		db.queueInline(f)
		// Nothing follows the pipeline: its COMMIT may go with it.
		if f.commit && f.lookups == 0 {
			f.batch.Queue("COMMIT")
			f.committed = true
		}
	case few:
		if err := db.queueFew(f); err != nil {
			return err
		}
	default:
		f.lookUpGroups()
		var err error
		if copied, err = f.queueEvents(); err != nil {
			return err
		}
	}
	if f.batch.Len() > 0 {
		if err := tx.SendBatch(ctx, &f.batch).Close(); err != nil {
			return err
		}
	}
	if len(copied) > 0 {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"lightbus_event"}, eventCopyColumns, pgx.CopyFromRows(copied)); err != nil {
			return err
		}
	}
	if !inline && !few {
		// The events are stored: queue one delivery per subscribed group.
		for _, st := range f.events {
			if st.stored {
				st.n = f.addDeliveries(st.ev, f.groups[[2]string{st.ev.API, st.ev.Name}])
			}
		}
	}
	if err := f.wakeOrdered(ctx, tx); err != nil {
		return err
	}
	f.queueJobs(db.batchMax)
	if len(f.jobs) == 0 {
		return nil
	}
	if _, err := db.river.InsertManyFastTx(ctx, tx, f.jobs); err != nil {
		return fmt.Errorf("queue deliveries: %w", err)
	}
	return nil
}

// wakeOrdered wakes, in tx, the jobs of the ordered groups that the
// staged events' deliveries found (orderedWakeSQL).
func (f *fanOut) wakeOrdered(ctx context.Context, tx pgx.Tx) error {
	if len(f.woken) == 0 {
		return nil
	}
	services, listeners := make([]string, 0, len(f.woken)), make([]string, 0, len(f.woken))
	for k := range f.woken {
		services, listeners = append(services, k.service), append(listeners, k.listener)
	}
	f.woken = nil
	_, err := tx.Exec(ctx, orderedWakeSQL, services, listeners)
	return err
}

// queueInline queues each staged event with its deliveries, one statement
// each (inlineSQL), with River's insert notification when one is due.
func (db *DB) queueInline(f *fanOut) {
	now := time.Now()
	notify := db.notifier.payload(now)
	for _, st := range f.events {
		ev := st.ev
		sql, args := insertEventInlineSQL, []any{ev.ID, ev.API, ev.Name, string(ev.Params), ev.CreatedAt, notify,
			nullable(ev.TraceParent), nullable(ev.TraceState)}
		if ev.IdempotencyKey != "" {
			sql, args = insertKeyedEventInlineSQL, append(args, ev.IdempotencyKey)
		}
		f.batch.Queue(sql, args...).QueryRow(func(row pgx.Row) error {
			var stored, notified int
			if err := row.Scan(&stored, &st.n, &notified); err != nil {
				return err
			}
			st.stored = stored == 1
			f.answered++
			if notified > 0 {
				db.notifier.sent(now)
			}
			return nil
		})
	}
}

// few reports whether flush stores the staged events, more than one, with
// one statement that inserts their deliveries too (insertFewSQL): fewer
// than copyEventsMin of them, all in one delivery batch per group.
func (f *fanOut) few(batchMax int) bool {
	return len(f.events) > 1 && len(f.events) < copyEventsMin && batchMax >= len(f.events)
}

// insertFewSQL stores events and queues their deliveries in one statement:
// the events ($1 ids, $2 apis, $3 names, $4 params, $5 created_at, $6
// idempotency keys or NULL, $7 traceparents, $8 tracestates; one whose key
// is taken, in lightbus_event_key, is not stored), for each subscribed group one delivery batch of
// the stored events, or a delivery job when there is one (the rows River's
// InsertManyFastTx inserts for deliveryJobs: TestFewEventsJobsAsRiverInserts),
// and River's insert notification when $9 is not empty. It answers a row
// per stored event: its id, its deliveries and whether it notified.
var insertFewSQL = `
	WITH k AS (
		INSERT INTO lightbus_event_key (api, key, event_id)
		SELECT u.api, u.key, u.id
		FROM unnest($1::text[]::uuid[], $2::text[], $6::text[]) AS u(id, api, key)
		WHERE u.key IS NOT NULL
		ON CONFLICT (api, key) DO NOTHING
		RETURNING event_id),
	ev AS (
		INSERT INTO lightbus_event (id, api, name, params, created_at, idempotency_key, traceparent, tracestate)
		SELECT u.id, u.api, u.name, u.params::json, u.created_at, u.key, u.tp, u.ts
		FROM unnest($1::text[]::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], $7::text[], $8::text[])
		     AS u(id, api, name, params, created_at, key, tp, ts)
		WHERE u.key IS NULL OR u.id IN (SELECT k.event_id FROM k)
		RETURNING id, api, name),
	all_d AS (
		SELECT DISTINCT ev.id, l.service, l.name AS listener, l.max_attempts, l.timeout_ms, l.ordered
		FROM ev
		JOIN lightbus_subscription s ON s.api = ev.api AND s.event IN (ev.name, '*')
		JOIN lightbus_listener l ON l.service = s.service AND l.name = s.listener),
	d AS (SELECT * FROM all_d WHERE NOT all_d.ordered),
	og AS (SELECT DISTINCT all_d.service, all_d.listener FROM all_d WHERE all_d.ordered),
	woken AS (` + orderedWakeCTE("og") + `),
	g AS (
		SELECT d.service, d.listener, d.max_attempts, d.timeout_ms, array_agg(d.id::text ORDER BY d.id) AS ids
		FROM d GROUP BY d.service, d.listener, d.max_attempts, d.timeout_ms),
	jobs AS (` + insertGroupJobsSQL + `
		RETURNING 1)
	SELECT ev.id::text, (SELECT count(*) FROM all_d WHERE all_d.id = ev.id)::int, ` + riverInsertNotifySQL(9) + `
	FROM ev`

// queueFew queues the staged events with insertFewSQL, with River's insert
// notification when one is due.
func (db *DB) queueFew(f *fanOut) error {
	n := len(f.events)
	ids := make([]string, n)
	apis, names, params := make([]string, n), make([]string, n), make([]string, n)
	created := make([]time.Time, n)
	keys, tps, tss := make([]*string, n), make([]*string, n), make([]*string, n)
	byID := make(map[string]*stagedEvent, n)
	for i, st := range f.events {
		ev := st.ev
		id, err := uuid.Parse(ev.ID)
		if err != nil {
			return fmt.Errorf("event id %q: %w", ev.ID, err)
		}
		ids[i] = id.String()
		apis[i], names[i], params[i], created[i] = ev.API, ev.Name, string(ev.Params), ev.CreatedAt
		keys[i], tps[i], tss[i] = nullable(ev.IdempotencyKey), nullable(ev.TraceParent), nullable(ev.TraceState)
		byID[id.String()] = st
	}
	now := time.Now()
	f.batch.Queue(insertFewSQL, ids, apis, names, params, created, keys, tps, tss, db.notifier.payload(now)).
		Query(func(rows pgx.Rows) error {
			var id string
			var deliveries, notified int
			_, err := pgx.ForEachRow(rows, []any{&id, &deliveries, &notified}, func() error {
				if st := byID[id]; st != nil {
					st.stored, st.n = true, deliveries
				}
				if notified > 0 {
					db.notifier.sent(now)
				}
				return nil
			})
			return err
		})
	return nil
}

// queueEvents queues the inserts of the staged events and returns the rows
// of those to store with one COPY instead: the events without a key, when
// there are copyEventsMin of them or more.
func (f *fanOut) queueEvents() ([][]any, error) {
	unkeyed := 0
	for _, st := range f.events {
		if st.ev.IdempotencyKey == "" {
			unkeyed++
		}
	}
	var copied [][]any
	for _, st := range f.events {
		ev := st.ev
		switch {
		case ev.IdempotencyKey != "":
			f.batch.Queue(insertKeyedEventSQL, ev.ID, ev.API, ev.Name, string(ev.Params), ev.IdempotencyKey, ev.CreatedAt,
				nullable(ev.TraceParent), nullable(ev.TraceState)).
				Exec(func(tag pgconn.CommandTag) error {
					st.stored = tag.RowsAffected() == 1
					return nil
				})
		case unkeyed >= copyEventsMin:
			id, err := uuid.Parse(ev.ID)
			if err != nil {
				return nil, fmt.Errorf("event id %q: %w", ev.ID, err)
			}
			// COPY sends every column in binary: a uuid as its 16 bytes.
			copied = append(copied, []any{[16]byte(id), ev.API, ev.Name, string(ev.Params), ev.CreatedAt,
				nullable(ev.TraceParent), nullable(ev.TraceState)})
			st.stored = true // once the COPY succeeds; an error fails flush
		default:
			f.batch.Queue(`
				INSERT INTO lightbus_event (id, api, name, params, created_at, traceparent, tracestate)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`,
				ev.ID, ev.API, ev.Name, string(ev.Params), ev.CreatedAt, nullable(ev.TraceParent), nullable(ev.TraceState))
			st.stored = true // once the batch succeeds; an error fails flush
		}
	}
	return copied, nil
}

type eventRow struct {
	ID             string    `db:"id"`
	API            string    `db:"api"`
	Name           string    `db:"name"`
	Params         []byte    `db:"params"`
	IdempotencyKey *string   `db:"idempotency_key"`
	CreatedAt      time.Time `db:"created_at"`
	TraceParent    *string   `db:"traceparent"`
	TraceState     *string   `db:"tracestate"`
}

func (r *eventRow) event() gateway.Event {
	ev := gateway.Event{ID: r.ID, API: r.API, Name: r.Name, Params: r.Params, CreatedAt: r.CreatedAt.UTC()}
	if r.IdempotencyKey != nil {
		ev.IdempotencyKey = *r.IdempotencyKey
	}
	if r.TraceParent != nil {
		ev.TraceParent = *r.TraceParent
	}
	if r.TraceState != nil {
		ev.TraceState = *r.TraceState
	}
	return ev
}

// nullable is s, or NULL when s is empty.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

const eventColumns = `id::text AS id, api, name, convert_to(params::text, 'UTF8') AS params, idempotency_key, created_at, traceparent, tracestate`

// ListEvents implements gateway.EventStore. With where conditions it
// first looks for the page among the newest recentScan events that match
// the names and times (walking the primary key backwards): a common value
// fills the page there at once. Only when it does not does the full query
// run, where a rare value finds its few events through the GIN index on
// the parameters. The planner cannot tell the two apart, as its estimate
// of a containment test is a constant.
func (db *DB) ListEvents(ctx context.Context, q gateway.EventQuery) ([]gateway.Event, error) {
	if len(q.Where) > 0 {
		sql, args := listEventsSQL(q, recentScan)
		events, err := db.listEvents(ctx, sql, args)
		if err != nil || len(events) == q.Limit {
			return events, err
		}
	}
	sql, args := listEventsSQL(q, 0)
	return db.listEvents(ctx, sql, args)
}

// recentScan is how many of the newest events ListEvents scans for a page
// with where conditions before it asks the GIN index (docs/INSPECTING.md).
const recentScan = 10_000

func (db *DB) listEvents(ctx context.Context, sql string, args []any) ([]gateway.Event, error) {
	rows, err := db.read.Query(ctx, sql, append([]any{filterExecMode}, args...)...)
	if err != nil {
		return nil, translate(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByName[eventRow])
	if err != nil {
		return nil, translate(err)
	}
	events := make([]gateway.Event, len(got))
	for i := range got {
		events[i] = got[i].event()
	}
	return events, nil
}

// listEventsSQL is the statement of ListEvents and its arguments: the
// whole query, or with scan > 0 the where conditions tested on the newest
// scan events that match the rest.
func listEventsSQL(q gateway.EventQuery, scan int) (string, []any) {
	var c conds
	c.names(q.EventFilter)
	if q.Before != "" {
		c.add("id < $%d", q.Before)
	}
	from := `lightbus_event`
	if scan > 0 {
		from = `(SELECT * FROM lightbus_event` + c.sql() + ` ORDER BY id DESC LIMIT ` + c.arg(scan) + `) lightbus_event`
		c.where = nil
	}
	c.conditions(q.Where)
	sql := `SELECT ` + eventColumns + ` FROM ` + from + c.sql() + ` ORDER BY lightbus_event.id DESC LIMIT ` + c.arg(q.Limit)
	return sql, c.args
}

// GetEvent implements gateway.EventStore. It reads the read pool, and the
// primary when the read pool does not have the event (WithReadPool).
func (db *DB) GetEvent(ctx context.Context, id string) (*gateway.EventDetail, error) {
	return readThenPrimary(ctx, db, func(ctx context.Context, pool *pgxpool.Pool) (*gateway.EventDetail, error) {
		return getEvent(ctx, pool, id)
	})
}

// getEvent reads an event with its deliveries on pool.
func getEvent(ctx context.Context, pool *pgxpool.Pool, id string) (*gateway.EventDetail, error) {
	rows, err := pool.Query(ctx, `SELECT `+eventColumns+` FROM lightbus_event WHERE id = $1`, id)
	if err != nil {
		return nil, translate(err)
	}
	row, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[eventRow])
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, gateway.Errorf(gateway.ENotFound, "event %s not found", id)
		}
		return nil, translate(err)
	}
	detail := &gateway.EventDetail{Event: row.event(), Deliveries: []gateway.Delivery{}}

	rows, err = pool.Query(ctx, eventDeliveriesSQL, id)
	if err != nil {
		return nil, translate(err)
	}
	deliveries, err := pgx.CollectRows(rows, pgx.RowToStructByName[deliveryRow])
	if err != nil {
		return nil, translate(err)
	}
	for _, d := range deliveries {
		delivery, err := d.delivery()
		if err != nil {
			return nil, err
		}
		detail.Deliveries = append(detail.Deliveries, delivery)
	}
	ordered, err := orderedDeliveries(ctx, pool, id)
	if err != nil {
		return nil, err
	}
	detail.Deliveries = append(detail.Deliveries, ordered...)
	return detail, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// DeliveryTarget implements dispatch.DeliveryStore. With a group cache
// (WithDeliveryTargetTTL) a delivery whose group was read recently reads only
// its event.
func (db *DB) DeliveryTarget(ctx context.Context, eventID, service, listener string) (*gateway.DeliveryTarget, error) {
	var target gateway.DeliveryTarget
	var ok bool
	target.Secret, target.Policy, target.Endpoints, ok = db.groups.get(service, listener, time.Now())
	if ok {
		ev, err := db.events.load(ctx, eventID)
		if err != nil {
			return nil, err
		}
		target.Event = *ev
		return &target, nil
	}

	var row eventRow
	var maxAttempts, baseMS, maxMS, timeoutMS, maxInFlight int
	var endpoints []cachedEndpoint
	fetched := time.Now()
	batch := &pgx.Batch{}
	batch.Queue(`
		SELECT e.id::text, e.api, e.name, convert_to(e.params::text, 'UTF8'), e.idempotency_key, e.created_at,
		       e.traceparent, e.tracestate, l.secret,
		       l.max_attempts, l.backoff_base_ms, l.backoff_max_ms, l.timeout_ms, l.max_in_flight
		FROM lightbus_event e, lightbus_listener l
		WHERE e.id = $1 AND l.service = $2 AND l.name = $3`, eventID, service, listener).
		QueryRow(func(r pgx.Row) error {
			return r.Scan(&row.ID, &row.API, &row.Name, &row.Params, &row.IdempotencyKey, &row.CreatedAt,
				&row.TraceParent, &row.TraceState, &target.Secret,
				&maxAttempts, &baseMS, &maxMS, &timeoutMS, &maxInFlight)
		})
	// Each endpoint comes with how long its worker's lease still runs, so
	// that a cached group drops it on time by the gateway's clock.
	batch.Queue(`
		SELECT w.id, w.base_url || p.path, extract(epoch FROM w.expires_at - now())::float8
		FROM lightbus_endpoint p
		JOIN lightbus_worker w ON w.id = p.worker_id
		WHERE p.service = $1 AND p.listener = $2 AND w.expires_at > now()
		ORDER BY w.id`, service, listener).
		Query(func(rows pgx.Rows) error {
			var err error
			endpoints, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (cachedEndpoint, error) {
				var e cachedEndpoint
				var left float64
				err := r.Scan(&e.WorkerID, &e.URL, &left)
				e.expires = fetched.Add(time.Duration(left * float64(time.Second)))
				return e, err
			})
			return err
		})
	if err := db.pool.SendBatch(ctx, batch).Close(); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, gateway.Errorf(gateway.ENotFound, "event %s or listener %s.%s not found", eventID, service, listener)
		}
		return nil, translate(err)
	}
	target.Event = row.event()
	target.Policy = policy(maxAttempts, baseMS, maxMS, timeoutMS, maxInFlight)
	for _, e := range endpoints {
		target.Endpoints = append(target.Endpoints, e.Endpoint)
	}
	db.groups.put(service, listener, &cachedGroup{secret: target.Secret, policy: target.Policy, endpoints: endpoints, fetched: fetched})
	return &target, nil
}

// RemoveEndpoint implements dispatch.DeliveryStore.
func (db *DB) RemoveEndpoint(ctx context.Context, service, listener, workerID string) error {
	defer db.groups.forget(service, listener)
	_, err := db.pool.Exec(ctx, `DELETE FROM lightbus_endpoint WHERE service = $1 AND listener = $2 AND worker_id = $3`,
		service, listener, workerID)
	return translate(err)
}
