package postgres

// River's tables, as the gateway's own SQL uses them.
//
// Every statement of ours that reads or writes a River table is in this
// file; the rest of the package calls the constants and functions here.
// River itself inserts most delivery jobs and the replay jobs
// (InsertManyFastTx, InsertTx), works and finishes them; our statements
// insert the delivery jobs of transactions of a few events (in the
// statement that stores their event, with River's insert notification:
// insertDeliveryJobsSQL), read delivery jobs for the API, count them, check
// for them when pruning events and replaying, and revive dead ones
// (redrive). Ordered groups add their own: a fire wakes an ordered group's
// sleeping job (kind lightbus.ordered) by making it available now
// (orderedWakeSQL), the job reads the state of the delivery job that
// blocks its group, and an event's readers see its pending ordered
// deliveries; the job itself is inserted by River (InsertTx, unique by
// args).
//
// The statements were written against River v0.51.2
// (github.com/riverqueue/river and riverdriver/riverpgxv5 v0.51.2), on the
// schema its rivermigrate applies at that version (migration line "main",
// version 8). The only River table they touch is river_job, and of it these
// columns (riverColumns, which TestRiverColumns compares with the migrated
// schema):
//
//	column        type (udt_name)   what we do with it
//	id            int8              the delivery id; read, filtered, ordered on
//	kind          text              filtered on 'lightbus.delivery' (kindIsDelivery) and on 'lightbus.ordered'; inserted
//	args          jsonb             read: event_id, service, listener (dispatch.DeliveryArgs); inserted
//	state         river_job_state   read, filtered on, set by redrive and the ordered wake; counted by queue; inserted
//	queue         text              counted on (QueueCounts, for the metrics); inserted
//	attempt       int2              read; redrive adds max_attempts on top of it
//	max_attempts  int2              read, set by redrive; inserted
//	priority      int2              inserted
//	created_at    timestamptz       inserted
//	scheduled_at  timestamptz       read, set by redrive and the ordered wake; inserted
//	attempted_at  timestamptz       read (NULL before the first attempt)
//	finalized_at  timestamptz       read, filtered on, cleared by redrive
//	errors        _jsonb            read: River's rivertype.AttemptError per failed
//	                                attempt ({"at", "attempt", "error", "trace"})
//	metadata      jsonb             read: the delivery job's recorded output,
//	                                under "output" (rivertype.MetadataKeyOutput); inserted
//	tags          _varchar          inserted
//
// The jobs we insert are the rows River's InsertManyFastTx would insert for
// the same dispatch.DeliveryArgs and options (TestDeliveryJobsAsRiverInserts
// compares them column by column), and they notify River's producers as its
// insert does: pg_notify on "<schema>.river_insert" with {"queue": ...}, at
// most once per fetch cooldown (TestDeliveryJobsWakeRiver).
//
// and the labels of River's enum river_job_state (riverJobStates). Our own
// migrations add two partial indexes on river_job, both WHERE kind =
// 'lightbus.delivery': river_job_lightbus_event_id on (args->>'event_id')
// and river_job_lightbus_listener on (args->>'service', args->>'listener',
// state, id). The statements below are shaped to use them; see kindIsDelivery.
// Migration 00010 adds river_job_lightbus_ordered on (args->>'service',
// args->>'listener', state) WHERE kind = 'lightbus.ordered', for the wake.

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/gateway/dispatch"
)

// riverColumn is a column of a River table that our statements use.
type riverColumn struct {
	table, name string
	// udtName is the column's information_schema.columns.udt_name: the
	// type's own name, which tells jsonb[] (_jsonb) and River's enum apart
	// where data_type says only ARRAY or USER-DEFINED.
	udtName string
	// notNull marks a column read into a Go value that cannot hold NULL.
	notNull bool
}

// riverColumns are the columns of River's tables that our statements use, as
// River v0.51.2 migrates them.
var riverColumns = []riverColumn{
	{"river_job", "id", "int8", true},
	{"river_job", "kind", "text", true},
	{"river_job", "args", "jsonb", true},
	{"river_job", "state", "river_job_state", true},
	{"river_job", "queue", "text", true},
	{"river_job", "attempt", "int2", true},
	{"river_job", "max_attempts", "int2", true},
	{"river_job", "scheduled_at", "timestamptz", true},
	{"river_job", "attempted_at", "timestamptz", false},
	{"river_job", "finalized_at", "timestamptz", false},
	{"river_job", "errors", "_jsonb", false},
	{"river_job", "metadata", "jsonb", false},
	{"river_job", "priority", "int2", true},
	{"river_job", "created_at", "timestamptz", true},
	{"river_job", "tags", "_varchar", true},
}

// riverJobStates are the labels of River's enum river_job_state, each of
// which our statements or deliveryStates name.
var riverJobStates = []string{"available", "cancelled", "completed", "discarded", "pending", "retryable", "running", "scheduled"}

// deliveryStates maps River job states to delivery states.
var deliveryStates = map[string]string{
	"available": gateway.DeliveryPending,
	"pending":   gateway.DeliveryPending,
	"scheduled": gateway.DeliveryScheduled,
	"running":   gateway.DeliveryRunning,
	"retryable": gateway.DeliveryRetryable,
	"completed": gateway.DeliveryCompleted,
	"discarded": gateway.DeliveryDead,
	"cancelled": gateway.DeliveryCancelled,
}

// unfinished lists the River states of a delivery not yet finished.
const unfinished = `('available', 'pending', 'scheduled', 'retryable', 'running')`

// kindIsBatch selects delivery batches j, as kindIsDelivery delivery jobs:
// the partial indexes of migration 00009 are WHERE kind =
// 'lightbus.delivery_batch'.
const kindIsBatch = `j.kind = '` + dispatch.DeliveryBatchKind + `'`

// batchHas is the condition that batch j holds the event whose id (text) is
// the expression id; the GIN index river_job_lightbus_batch_event_ids
// serves it.
func batchHas(id string) string { return `j.args->'event_ids' @> jsonb_build_array(` + id + `)` }

// kindIsDelivery selects delivery jobs j. The kind is a literal, not a
// parameter, so that the planner can use the partial indexes on river_job
// (WHERE kind = 'lightbus.delivery') with any plan.
const kindIsDelivery = `j.kind = '` + dispatch.DeliveryKind + `'`

// Failed attempts: the delivery job records how each failed attempt ended
// with river.RecordOutput (dispatch.AttemptOutcomes), which River stores in
// the job's metadata under "output" whatever the attempt's outcome. The
// output holds every failed attempt so far (an output replaces the previous
// one), and is read back with dispatch.DecodeOutcomes:
//
//	{"attempts": [{"attempt": 1, "status": 503, "kind": "status"},
//	              {"attempt": 2, "status": 0, "kind": "timeout"}]}

// statusOf returns the status of attempt in outcomes, 0 when none is
// recorded. The last outcome recorded for an attempt counts.
func statusOf(outcomes []dispatch.AttemptOutcome, attempt int) int {
	for i := len(outcomes) - 1; i >= 0; i-- {
		if outcomes[i].Attempt == attempt {
			return outcomes[i].Status
		}
	}
	return 0
}

type deliveryRow struct {
	ID          int64      `db:"id"`
	EventID     string     `db:"event_id"`
	Service     string     `db:"service"`
	Listener    string     `db:"listener"`
	State       string     `db:"state"`
	Attempt     int        `db:"attempt"`
	MaxAttempts int        `db:"max_attempts"`
	ScheduledAt time.Time  `db:"scheduled_at"`
	AttemptedAt *time.Time `db:"attempted_at"`
	FinalizedAt *time.Time `db:"finalized_at"`
	Errors      []byte     `db:"errors"`
	Outcomes    []byte     `db:"outcomes"`
	// Batch marks a delivery batch's row: ID is the batch's.
	Batch bool `db:"batch"`
}

// deliveryColumns reads a deliveryRow from river_job j. Of the metadata only
// the recorded outcomes are read.
const deliveryColumns = `j.id, j.args->>'event_id' AS event_id, j.args->>'service' AS service,
	j.args->>'listener' AS listener, j.state::text AS state, j.attempt, j.max_attempts,
	j.scheduled_at, j.attempted_at, j.finalized_at,
	convert_to(COALESCE(to_json(j.errors), '[]')::text, 'UTF8') AS errors,
	convert_to(COALESCE(j.metadata->'` + rivertype.MetadataKeyOutput + `'->'attempts', '[]')::text, 'UTF8') AS outcomes,
	false AS batch`

func (d *deliveryRow) delivery() (gateway.Delivery, error) {
	var attemptErrors []gateway.DeliveryError
	if err := json.Unmarshal(d.Errors, &attemptErrors); err != nil {
		return gateway.Delivery{}, fmt.Errorf("decode delivery errors: %w", err)
	}
	if attemptErrors == nil {
		attemptErrors = []gateway.DeliveryError{}
	}
	outcomes := dispatch.DecodeOutcomes(d.Outcomes)
	for i := range attemptErrors {
		attemptErrors[i].Status = statusOf(outcomes, attemptErrors[i].Attempt)
	}
	return gateway.Delivery{
		ID:          d.ID,
		Service:     d.Service,
		Listener:    d.Listener,
		State:       deliveryStates[d.State],
		Attempt:     d.Attempt,
		MaxAttempts: d.MaxAttempts,
		ScheduledAt: d.ScheduledAt.UTC(),
		AttemptedAt: utc(d.AttemptedAt),
		FinalizedAt: utc(d.FinalizedAt),
		Errors:      attemptErrors,
		Batch:       d.Batch,
	}, nil
}

type deliveryRecordRow struct {
	deliveryRow
	API   string `db:"api"`
	Event string `db:"event"`
}

func (r *deliveryRecordRow) record() (*gateway.DeliveryRecord, error) {
	d, err := r.delivery()
	if err != nil {
		return nil, err
	}
	return &gateway.DeliveryRecord{Delivery: d, EventID: r.EventID, API: r.API, Event: r.Event}, nil
}

// batchRecordRow is a delivery batch read as a deliveryRecordRow, with the
// events it holds.
type batchRecordRow struct {
	deliveryRecordRow
	EventIDs []string `db:"event_ids"`
}

// getBatchSQL selects the batchRecordRow of delivery batch $1: the batch's
// state, attempt and times as batchDeliveryColumns reads them for each of
// its events, its first event (event_id, api, event) and every event it
// holds (event_ids; a completed batch holds only those it delivered).
const getBatchSQL = `SELECT j.id, j.args->'event_ids'->>0 AS event_id, j.args->>'service' AS service,
	j.args->>'listener' AS listener, j.state::text AS state, j.attempt,
	COALESCE((j.args->>'max_attempts')::int, j.max_attempts) AS max_attempts,
	j.scheduled_at, j.attempted_at, j.finalized_at,
	convert_to(COALESCE(to_json(j.errors), '[]')::text, 'UTF8') AS errors,
	convert_to('[]', 'UTF8') AS outcomes, true AS batch,
	COALESCE(e.api, '') AS api, COALESCE(e.name, '') AS event,
	ARRAY(SELECT jsonb_array_elements_text(j.args->'event_ids')) AS event_ids
	FROM river_job j LEFT JOIN lightbus_event e ON e.id = (j.args->'event_ids'->>0)::uuid
	WHERE j.id = $1 AND ` + kindIsBatch

// recordFrom selects deliveryRecordRows from river_job j and its event e.
const recordFrom = `SELECT ` + deliveryColumns + `, COALESCE(e.api, '') AS api, COALESCE(e.name, '') AS event
	FROM river_job j LEFT JOIN lightbus_event e ON e.id = (j.args->>'event_id')::uuid`

// countEventDeliveriesSQL counts the deliveries of event $1: its delivery
// jobs and the delivery batches that hold it.
var countEventDeliveriesSQL = `SELECT (SELECT count(*) FROM river_job j WHERE ` + kindIsDelivery + ` AND j.args->>'event_id' = $1)
	+ (SELECT count(*) FROM river_job j WHERE ` + kindIsBatch + ` AND ` + batchHas("$1::text") + `)`

// batchDeliveryColumns reads the deliveryRow of event $1 in delivery batch
// j: the batch's state, attempt and times, the deliveries' max_attempts,
// and the batch's own errors (a batch fails as a whole only when it could
// not be finished). A completed batch holds only the events it delivered:
// a failed one has a delivery job of its own.
const batchDeliveryColumns = `j.id, $1::text AS event_id, j.args->>'service' AS service,
	j.args->>'listener' AS listener, j.state::text AS state, j.attempt,
	COALESCE((j.args->>'max_attempts')::int, j.max_attempts) AS max_attempts,
	j.scheduled_at, j.attempted_at, j.finalized_at,
	convert_to(COALESCE(to_json(j.errors), '[]')::text, 'UTF8') AS errors,
	convert_to('[]', 'UTF8') AS outcomes, true AS batch`

// eventDeliveriesSQL selects the deliveryRows of event $1, by group: its
// delivery jobs and the delivery batches that hold it.
var eventDeliveriesSQL = `
		SELECT ` + deliveryColumns + `
		FROM river_job j
		WHERE ` + kindIsDelivery + ` AND j.args->>'event_id' = $1
		UNION ALL
		SELECT ` + batchDeliveryColumns + `
		FROM river_job j
		WHERE ` + kindIsBatch + ` AND ` + batchHas("$1::text") + `
		ORDER BY service, listener, id`

// getDeliverySQL selects the deliveryRecordRow of delivery $1; $2 is
// dispatch.DeliveryKind.
const getDeliverySQL = recordFrom + ` WHERE j.id = $1 AND j.kind = $2`

// deadWhere builds the conditions selecting q's dead deliveries; args
// continue from the given ones.
func deadWhere(q gateway.DeadQuery, args []any) (string, []any) {
	args = append(args, q.Service, q.Listener)
	n := len(args)
	where := []string{
		kindIsDelivery,
		fmt.Sprintf("j.args->>'service' = $%d", n-1),
		fmt.Sprintf("j.args->>'listener' = $%d", n),
		"j.state = 'discarded'",
	}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if q.API != "" {
		add("e.api = $%d", q.API)
	}
	if q.Event != "" {
		add("e.name = $%d", q.Event)
	}
	if !q.Since.IsZero() {
		add("j.finalized_at >= $%d", q.Since)
	}
	if !q.Until.IsZero() {
		add("j.finalized_at < $%d", q.Until)
	}
	if q.Before > 0 {
		add("j.id < $%d", q.Before)
	}
	return strings.Join(where, " AND "), args
}

// listDeadSQL selects the deliveryRecordRows of q's dead deliveries, newest
// first, at most q.Limit.
func listDeadSQL(q gateway.DeadQuery) (string, []any) {
	where, args := deadWhere(q, nil)
	args = append(args, q.Limit)
	return recordFrom + ` WHERE ` + where + fmt.Sprintf(` ORDER BY j.id DESC LIMIT $%d`, len(args)), args
}

// redriveSet is the SET clause that revives a dead delivery j: available at
// once, with its group's current max_attempts as a fresh allowance on top of
// the attempts already made (River counts attempts per job, and discards a
// job whose attempt reaches max_attempts).
const redriveSet = `SET state = 'available', finalized_at = NULL, scheduled_at = now(),
	max_attempts = j.attempt + COALESCE((SELECT l.max_attempts FROM lightbus_listener l
		WHERE l.service = j.args->>'service' AND l.name = j.args->>'listener'), j.max_attempts)`

// redriveDeliverySQL revives delivery $1 if it is dead; $2 is
// dispatch.DeliveryKind.
const redriveDeliverySQL = `UPDATE river_job j ` + redriveSet + `
		WHERE j.id = $1 AND j.kind = $2 AND j.state = 'discarded'`

// redriveDeadSQL revives up to limit of q's dead deliveries that died before
// start, skipping those locked by a concurrent redrive. The statement is the
// same for each batch of one bulk redrive, so it is prepared once.
func redriveDeadSQL(q gateway.DeadQuery, start time.Time, limit int) (string, []any) {
	where, args := deadWhere(q, []any{start, limit})
	return `WITH batch AS (
		SELECT j.id FROM river_job j LEFT JOIN lightbus_event e ON e.id = (j.args->>'event_id')::uuid
		WHERE ` + where + ` AND j.finalized_at < $1
		ORDER BY j.id LIMIT $2 FOR UPDATE OF j SKIP LOCKED)
	UPDATE river_job j ` + redriveSet + ` FROM batch WHERE j.id = batch.id`, args
}

// listListenersSQL selects a listenerRow per group. Each group's counts come
// from the river_job_lightbus_listener index (service, listener, state):
// finished deliveries (completed, cancelled) are not read.
var listListenersSQL = `
		SELECT l.service, l.name, l.max_attempts, l.backoff_base_ms, l.backoff_max_ms, l.timeout_ms, l.max_in_flight, l.ordered,
		       ARRAY(SELECT s.api || '.' || s.event FROM lightbus_subscription s
		             WHERE s.service = l.service AND s.listener = l.name ORDER BY 1) AS events,
		       (SELECT count(*)::int FROM lightbus_endpoint p JOIN lightbus_worker w ON w.id = p.worker_id
		        WHERE p.service = l.service AND p.listener = l.name AND w.expires_at > now()) AS endpoints,
		       COALESCE(c.pending, 0) + COALESCE(b.pending, 0) + COALESCE(od.pending, 0) AS pending,
		       COALESCE(c.in_flight, 0) + COALESCE(b.in_flight, 0) AS in_flight,
		       COALESCE(c.dead, 0) + COALESCE(b.dead, 0) AS dead,
		       LEAST((SELECT e.created_at FROM lightbus_event e WHERE e.id = LEAST(c.oldest_event, b.oldest_event)::uuid), od.oldest) AS oldest,
		       now() AS now
		FROM lightbus_listener l
		LEFT JOIN LATERAL (
			SELECT count(*) FILTER (WHERE j.state IN ('available', 'pending', 'scheduled', 'retryable')) AS pending,
			       count(*) FILTER (WHERE j.state = 'running') AS in_flight,
			       count(*) FILTER (WHERE j.state = 'discarded') AS dead,
			       -- Event ids are UUIDv7: the smallest is the oldest event.
			       min(j.args->>'event_id') FILTER (WHERE j.state <> 'discarded') AS oldest_event
			FROM river_job j
			WHERE ` + kindIsDelivery + ` AND j.args->>'service' = l.service AND j.args->>'listener' = l.name
			  AND j.state IN ('available', 'pending', 'scheduled', 'retryable', 'running', 'discarded')
		) c ON true
		LEFT JOIN LATERAL (
			-- A batch counts its events (river_job_lightbus_batch_listener).
			SELECT sum(jsonb_array_length(j.args->'event_ids')) FILTER (WHERE j.state IN ('available', 'pending', 'scheduled', 'retryable'))::bigint AS pending,
			       sum(jsonb_array_length(j.args->'event_ids')) FILTER (WHERE j.state = 'running')::bigint AS in_flight,
			       sum(jsonb_array_length(j.args->'event_ids')) FILTER (WHERE j.state = 'discarded')::bigint AS dead,
			       -- A batch's events are in id order: its first is its oldest.
			       min(j.args->'event_ids'->>0) FILTER (WHERE j.state <> 'discarded') AS oldest_event
			FROM river_job j
			WHERE ` + kindIsBatch + ` AND j.args->>'service' = l.service AND j.args->>'listener' = l.name
			  AND j.state IN ('available', 'pending', 'scheduled', 'retryable', 'running', 'discarded')
		) b ON true
		LEFT JOIN LATERAL (
			-- An ordered group's events after its position (ordered.go).
			SELECT count(*) AS pending, min(e.created_at) AS oldest
			FROM lightbus_ordered o JOIN lightbus_event e ON (e.xid, e.id) > (o.pos_xid, o.pos_id)
			WHERE o.service = l.service AND o.listener = l.name
			  AND EXISTS (SELECT 1 FROM lightbus_subscription s
				WHERE s.service = o.service AND s.listener = o.listener AND s.api = e.api AND s.event IN (e.name, '*'))
		) od ON l.ordered
		ORDER BY l.service, l.name`

// eventKept is the condition that retention keeps the event whose id (a
// uuid) is the expression id, however old: while a delivery batch holding
// it is unfinished or dead, and, unless the boolean expression undelivered
// is true, while a delivery job of it is. It and keptInRangeSQL, its form
// for a range of events, are the one place that says which events pruning
// keeps: the batches of deletes (pruneEventsSQL) ask it, the partition
// drops (DropEventPartitions) keptInRangeSQL.
func eventKept(id, undelivered string) string {
	return `(EXISTS (
				SELECT 1 FROM river_job j
				WHERE ` + kindIsBatch + ` AND ` + batchHas(id+"::text") + `
				  AND j.state IN ('available', 'pending', 'scheduled', 'retryable', 'running', 'discarded'))
			OR (NOT ` + undelivered + ` AND EXISTS (
				SELECT 1 FROM river_job j
				WHERE ` + kindIsDelivery + ` AND j.args->>'event_id' = ` + id + `::text
				  AND j.state IN ('available', 'pending', 'scheduled', 'retryable', 'running', 'discarded'))))`
}

// keptInRangeSQL is eventKept for a range of events at once: whether an
// event with an id from $1 (inclusive) to $2 (exclusive) is kept, $3 being
// undelivered. It reads the unfinished and dead deliveries (River's
// index on state) rather than the events, so that checking a partition of
// a million events costs what its owed deliveries cost. It must say what
// eventKept says: add a condition to both (TestKeptInRangeAgrees).
var keptInRangeSQL = `
		SELECT EXISTS (
			SELECT 1 FROM river_job j, jsonb_array_elements_text(j.args->'event_ids') x(id)
			WHERE ` + kindIsBatch + ` AND j.state IN ('available', 'pending', 'scheduled', 'retryable', 'running', 'discarded')
			  AND x.id::uuid >= $1::uuid AND x.id::uuid < $2::uuid)
		OR (NOT $3::boolean AND EXISTS (
			SELECT 1 FROM river_job j
			WHERE ` + kindIsDelivery + ` AND j.state IN ('available', 'pending', 'scheduled', 'retryable', 'running', 'discarded')
			  AND (j.args->>'event_id')::uuid >= $1::uuid AND (j.args->>'event_id')::uuid < $2::uuid))`

// pruneEventsSQL deletes up to $2 events created before $1, oldest first
// (lightbus_event_created_at), but those retention keeps (eventKept, with
// $3 undelivered), and their idempotency keys; it answers how many events
// it deleted.
var pruneEventsSQL = `
		WITH doomed AS (
			SELECT e.id FROM lightbus_event e
			WHERE e.created_at < $1 AND NOT ` + eventKept("e.id", "$3::boolean") + `
			ORDER BY e.created_at
			LIMIT $2
			FOR UPDATE SKIP LOCKED),
		gone AS (DELETE FROM lightbus_event e USING doomed WHERE e.id = doomed.id RETURNING e.id),
		keys AS (DELETE FROM lightbus_event_key k USING gone WHERE k.event_id = gone.id)
		SELECT count(*)::int FROM gone`

// replayPageSQL selects the next page of a replay's events, each with
// whether it needs a delivery to the group: $1, $2 the group, $3 the cursor,
// $4 from_id, $5 since, $6 until, $7 the page size, $8 redeliver (then only
// an unfinished delivery makes another one unneeded). A delivery is a
// delivery job or a delivery batch holding the event.
var replayPageSQL = `
			SELECT e.id::text, NOT EXISTS (
				SELECT 1 FROM river_job j
				WHERE ` + kindIsDelivery + ` AND j.args->>'event_id' = e.id::text
				  AND j.args->>'service' = $1 AND j.args->>'listener' = $2
				  AND (NOT $8 OR j.state IN ` + unfinished + `))
			  AND NOT EXISTS (
				SELECT 1 FROM river_job j
				WHERE ` + kindIsBatch + ` AND ` + batchHas("e.id::text") + `
				  AND j.args->>'service' = $1 AND j.args->>'listener' = $2
				  AND (NOT $8 OR j.state IN ` + unfinished + `)) AS needed
			FROM lightbus_event e
			WHERE ($3::uuid IS NULL OR e.id > $3::uuid) AND ($4::uuid IS NULL OR e.id >= $4::uuid)
			  AND ($5::timestamptz IS NULL OR e.created_at >= $5) AND e.created_at < $6
			  AND EXISTS (SELECT 1 FROM lightbus_subscription s
			              WHERE s.service = $1 AND s.listener = $2 AND s.api = e.api AND s.event IN (e.name, '*'))
			ORDER BY e.id
			LIMIT $7`

// queueCountsSQL counts River's jobs that are waiting or running, of every
// kind, by queue and state: what the metrics show of River's queues. River's
// index on (state, queue, priority, scheduled_at, id) serves it.
const queueCountsSQL = `
		SELECT j.queue, j.state::text, count(*)
		FROM river_job j
		WHERE j.state IN ('available', 'running', 'retryable', 'scheduled')
		GROUP BY j.queue, j.state
		ORDER BY 1, 2`

// QueueCounts counts River's available, running, retryable and scheduled
// jobs by queue and state (metrics.Source). States without jobs are absent.
func (db *DB) QueueCounts(ctx context.Context) ([]dispatch.QueueCount, error) {
	rows, err := db.read.Query(ctx, queueCountsSQL)
	if err != nil {
		return nil, translate(err)
	}
	counts, err := pgx.CollectRows(rows, pgx.RowToStructByPos[dispatch.QueueCount])
	if err != nil {
		return nil, translate(err)
	}
	return counts, nil
}

// insertDeliveryJobsSQL inserts one delivery job for the event of the
// common table expression ev (its id as text) per listener group of g
// (service, listener, max_attempts, timeout_ms): the rows River's
// InsertManyFastTx inserts for dispatch.DeliveryArgs with the group's
// MaxAttempts, in the queue dispatch.QueueDelivery. The statement that
// stores an event queues its deliveries with it, so a fire of a few
// events takes no round trip for them (see fanOut.inline).
var insertDeliveryJobsSQL = `
	INSERT INTO river_job (args, kind, max_attempts, priority, queue, state, scheduled_at, created_at, metadata, tags)
	SELECT jsonb_build_object('event_id', ev.id, 'service', g.service, 'listener', g.listener)
	         || CASE WHEN g.timeout_ms <> 0 THEN jsonb_build_object('timeout_ms', g.timeout_ms) ELSE '{}'::jsonb END,
	       '` + dispatch.DeliveryKind + `',
	       CASE WHEN g.max_attempts > 0 THEN g.max_attempts ELSE ` + strconv.Itoa(river.MaxAttemptsDefault) + ` END,
	       ` + strconv.Itoa(river.PriorityDefault) + `, '` + dispatch.QueueDelivery + `', 'available', now(), now(), '{}', '{}'
	FROM ev, g`

// insertGroupJobsSQL inserts the deliveries of the common table
// expression g (service, listener, max_attempts, timeout_ms, ids: the ids of
// events stored by the statement, in id order): per group one delivery
// batch, or a delivery job for an event alone, the rows River's
// InsertManyFastTx inserts for deliveryJobs. The statement that stores a
// few events queues their deliveries with them (insertFewSQL).
var insertGroupJobsSQL = `
	INSERT INTO river_job (args, kind, max_attempts, priority, queue, state, scheduled_at, created_at, metadata, tags)
	SELECT CASE WHEN cardinality(g.ids) = 1
	            THEN jsonb_build_object('event_id', g.ids[1], 'service', g.service, 'listener', g.listener)
	            ELSE jsonb_build_object('service', g.service, 'listener', g.listener, 'event_ids', to_jsonb(g.ids),
	                   'max_attempts', CASE WHEN g.max_attempts > 0 THEN g.max_attempts ELSE ` + strconv.Itoa(river.MaxAttemptsDefault) + ` END)
	       END || CASE WHEN g.timeout_ms <> 0 THEN jsonb_build_object('timeout_ms', g.timeout_ms) ELSE '{}'::jsonb END,
	       CASE WHEN cardinality(g.ids) = 1 THEN '` + dispatch.DeliveryKind + `' ELSE '` + dispatch.DeliveryBatchKind + `' END,
	       CASE WHEN cardinality(g.ids) > 1 THEN ` + strconv.Itoa(dispatch.DeliveryBatchMaxAttempts) + `
	            WHEN g.max_attempts > 0 THEN g.max_attempts ELSE ` + strconv.Itoa(river.MaxAttemptsDefault) + ` END,
	       ` + strconv.Itoa(river.PriorityDefault) + `, '` + dispatch.QueueDelivery + `', 'available', now(), now(), '{}', '{}'
	FROM g`

// riverInsertNotifySQL is River's insert notification, which wakes the
// producers of a queue at once instead of at their next poll, as a scalar
// subquery of a statement whose common table expression jobs holds the
// inserted jobs: it notifies when $n, its payload, is not empty and a job
// was inserted, and counts 1 then. Postgres sends the notification at
// commit, once per transaction however many statements ask for it.
func riverInsertNotifySQL(n int) string {
	p := "$" + strconv.Itoa(n)
	return `(SELECT count(pg_notify(current_schema() || '.river_insert', ` + p + `))
		FROM (SELECT FROM jobs LIMIT 1) j WHERE ` + p + ` <> '')::int`
}

// riverInsertNotifyPayload is the payload of River's insert notification
// for the delivery queue.
var riverInsertNotifyPayload = fmt.Sprintf(`{"queue": %q}`, dispatch.QueueDelivery)

// insertNotifier spaces the insert notifications of the delivery jobs we
// insert, as River's client spaces its own: at most one per cooldown.
type insertNotifier struct {
	cooldown time.Duration
	last     atomic.Int64 // unix nanoseconds of the last notification
}

// payload returns the notification's payload when one is due, else "".
func (n *insertNotifier) payload(now time.Time) string {
	if now.UnixNano()-n.last.Load() < int64(n.cooldown) {
		return ""
	}
	return riverInsertNotifyPayload
}

// sent records a notification sent at now.
func (n *insertNotifier) sent(now time.Time) { n.last.Store(now.UnixNano()) }

// riverSchedulerInterval is River's scheduler interval, which the gateway
// leaves at its default: River makes a failed job whose retry is due
// within it available at once instead of retryable (its executor's
// reportError), and insertFailedDeliveriesSQL does the same.
const riverSchedulerInterval = 5 * time.Second

// insertFailedDeliveriesSQL inserts the failed deliveries of a delivery
// batch, each as the delivery job River leaves after that failed attempt
// (TestFailedDeliveryAsRiverLeavesIt compares them column by column): its
// attempt, attempted_at and attempted_by (the batch's), its error appended
// to errors, its recorded output in metadata, and its state: available or
// retryable at its retry time, or discarded (finalized) after a last
// attempt. $1 args, $2 max_attempts, $3 attempt, $4 state, $5
// scheduled_at, $6 the attempt's error (rivertype.AttemptError), $7
// finalized_at, $8 metadata, one element per delivery; $9 created_at, $10
// attempted_at, $11 attempted_by.
var insertFailedDeliveriesSQL = `
	INSERT INTO river_job (args, kind, max_attempts, priority, queue, state, scheduled_at, created_at,
		attempt, attempted_at, attempted_by, errors, finalized_at, metadata, tags)
	SELECT f.args, '` + dispatch.DeliveryKind + `', f.max_attempts, ` + strconv.Itoa(river.PriorityDefault) + `,
	       '` + dispatch.QueueDelivery + `', f.state::river_job_state, f.scheduled_at, $9,
	       f.attempt, $10, $11::text[], ARRAY[f.error], f.finalized_at, f.metadata, '{}'
	FROM unnest($1::jsonb[], $2::int[], $3::int[], $4::text[], $5::timestamptz[], $6::jsonb[], $7::timestamptz[], $8::jsonb[])
	     AS f(args, max_attempts, attempt, state, scheduled_at, error, finalized_at, metadata)`

// keepBatchEventsSQL sets the events of delivery batch $1 to $2 (a JSON
// array): when the batch completes, those it delivered, so that each of
// its events has one current delivery, the batch or a job of its own.
const keepBatchEventsSQL = `UPDATE river_job SET args = jsonb_set(args, '{event_ids}', $2::jsonb) WHERE id = $1 AND kind = '` +
	dispatch.DeliveryBatchKind + `'`

// Ordered groups (ordered.go): their job (kind lightbus.ordered) and the
// delivery job that blocks one.

// orderedStateSQL reads whether group $1.$2 is ordered (and has a
// position), the state and next run of the delivery job that blocks it, if
// any, and its position's epoch.
const orderedStateSQL = `
	SELECT l.ordered, o.service IS NOT NULL, j.state::text, j.scheduled_at, o.epoch
	FROM lightbus_listener l
	LEFT JOIN lightbus_ordered o ON o.service = l.service AND o.listener = l.name
	LEFT JOIN river_job j ON j.id = o.blocked_job
	WHERE l.service = $1 AND l.name = $2`

// orderedWakeSQL makes the jobs of ordered groups ($1 services, $2
// listeners) that sleep between runs available at once, with River's
// insert notification, so that the events of the transaction that runs it
// are delivered as soon as it commits. A job that is running is left
// alone: it reads again before it sleeps (and sleeps at most
// dispatch's orderedIdle).
var orderedWakeSQL = `WITH g AS (SELECT * FROM unnest($1::text[], $2::text[]) AS g(service, listener))
	` + orderedWakeCTE("g")

// orderedWakeCTE is the statement of orderedWakeSQL for the groups
// (service, listener) of the common table expression named groups, to
// run in a data-modifying common table expression of a fire's statement.
func orderedWakeCTE(groups string) string {
	return `UPDATE river_job j SET state = 'available', scheduled_at = now()
	FROM ` + groups + ` g
	WHERE j.kind = '` + dispatch.OrderedKind + `' AND j.args->>'service' = g.service AND j.args->>'listener' = g.listener
	  AND j.state IN ('available', 'scheduled') AND j.scheduled_at > now()
	RETURNING pg_notify(current_schema() || '.river_insert', '` + riverInsertNotifyPayload + `')`
}

// orderedDeliveriesSQL selects event $1's deliveries to ordered groups that
// have no delivery job of their own (a failed first attempt makes one):
// each group that subscribes to the event and started before it, with
// whether its position has passed the event.
var orderedDeliveriesSQL = `
	SELECT o.service, o.listener, l.max_attempts, e.created_at, (e.xid, e.id) <= (o.pos_xid, o.pos_id) AS passed
	FROM lightbus_event e
	JOIN lightbus_ordered o ON (e.xid, e.id) > (o.start_xid, o.start_id)
	JOIN lightbus_listener l ON l.service = o.service AND l.name = o.listener
	WHERE e.id = $1
	  AND EXISTS (SELECT 1 FROM lightbus_subscription s
		WHERE s.service = o.service AND s.listener = o.listener AND s.api = e.api AND s.event IN (e.name, '*'))
	  AND NOT EXISTS (SELECT 1 FROM river_job j
		WHERE ` + kindIsDelivery + ` AND j.args->>'event_id' = $1::text
		  AND j.args->>'service' = o.service AND j.args->>'listener' = o.listener)
	ORDER BY o.service, o.listener`
