package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/gateway/dispatch"
)

var _ dispatch.BatchStore = (*DB)(nil)

// DeliveryTargets implements dispatch.BatchStore: the group as
// DeliveryTarget reads it (from the group cache when it is fresh) and the
// events, read by one statement.
func (db *DB) DeliveryTargets(ctx context.Context, eventIDs []string, service, listener string) (*gateway.DeliveryTarget, []gateway.Event, error) {
	// Ids as text: a [16]byte array has no encoding in the exec modes that
	// skip describing the statement (TestEveryExecMode).
	ids := make([]string, 0, len(eventIDs))
	for _, id := range eventIDs {
		if u, err := uuid.Parse(id); err == nil {
			ids = append(ids, u.String())
		}
	}
	var target gateway.DeliveryTarget
	var found []eventRow
	batch := &pgx.Batch{}
	batch.Queue(`SELECT `+eventColumns+` FROM lightbus_event WHERE id = ANY($1::text[]::uuid[]) ORDER BY id`, ids).
		Query(func(rows pgx.Rows) error {
			var err error
			found, err = pgx.CollectRows(rows, pgx.RowToStructByName[eventRow])
			return err
		})
	var ok bool
	target.Secret, target.Policy, target.Endpoints, ok = db.groups.get(service, listener, time.Now())
	var g *cachedGroup
	if !ok {
		g = db.queueGroup(batch, service, listener)
	}
	if err := db.pool.SendBatch(ctx, batch).Close(); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, nil, gateway.Errorf(gateway.ENotFound, "listener %s.%s not found", service, listener)
		}
		return nil, nil, translate(err)
	}
	if g != nil {
		target.Secret, target.Policy = g.secret, g.policy
		for _, e := range g.endpoints {
			target.Endpoints = append(target.Endpoints, e.Endpoint)
		}
		db.groups.put(service, listener, g)
	}
	// In the batch's order (id order when queued).
	byID := make(map[string]*eventRow, len(found))
	for i := range found {
		byID[found[i].ID] = &found[i]
	}
	events := make([]gateway.Event, 0, len(found))
	for _, id := range eventIDs {
		if row, ok := byID[id]; ok {
			events = append(events, row.event())
		}
	}
	return &target, events, nil
}

// queueGroup queues the reads of a group's secret, policy and live
// endpoints in batch; the returned group is filled when the batch ran, and
// its read fails with pgx.ErrNoRows when the group does not exist.
func (db *DB) queueGroup(batch *pgx.Batch, service, listener string) *cachedGroup {
	g := &cachedGroup{fetched: time.Now()}
	batch.Queue(`
		SELECT l.secret, l.max_attempts, l.backoff_base_ms, l.backoff_max_ms, l.timeout_ms, l.max_in_flight
		FROM lightbus_listener l WHERE l.service = $1 AND l.name = $2`, service, listener).
		QueryRow(func(r pgx.Row) error {
			var maxAttempts, baseMS, maxMS, timeoutMS, maxInFlight int
			if err := r.Scan(&g.secret, &maxAttempts, &baseMS, &maxMS, &timeoutMS, &maxInFlight); err != nil {
				return err
			}
			g.policy = policy(maxAttempts, baseMS, maxMS, timeoutMS, maxInFlight)
			return nil
		})
	batch.Queue(`
		SELECT w.id, w.base_url || p.path, extract(epoch FROM w.expires_at - now())::float8
		FROM lightbus_endpoint p
		JOIN lightbus_worker w ON w.id = p.worker_id
		WHERE p.service = $1 AND p.listener = $2 AND w.expires_at > now()
		ORDER BY w.id`, service, listener).
		Query(func(rows pgx.Rows) error {
			var err error
			g.endpoints, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (cachedEndpoint, error) {
				var e cachedEndpoint
				var left float64
				err := r.Scan(&e.WorkerID, &e.URL, &left)
				e.expires = g.fetched.Add(time.Duration(left * float64(time.Second)))
				return e, err
			})
			return err
		})
	return g
}

// CompleteBatch implements dispatch.BatchStore. In one transaction: the
// batch keeps the events it delivered (keepBatchEventsSQL), each failed
// delivery becomes a delivery job of its own (insertFailedDeliveriesSQL),
// the events not attempted a new batch, and River completes the batch.
func (db *DB) CompleteBatch(ctx context.Context, job *river.Job[dispatch.DeliveryBatchArgs], failed []dispatch.FailedDelivery, rest []string) error {
	left := make(map[string]bool, len(failed)+len(rest))
	for _, f := range failed {
		left[f.Args.EventID] = true
	}
	for _, id := range rest {
		left[id] = true
	}
	delivered := make([]string, 0, len(job.Args.EventIDs))
	for _, id := range job.Args.EventIDs {
		if !left[id] {
			delivered = append(delivered, id)
		}
	}
	kept, err := json.Marshal(delivered)
	if err != nil {
		return err
	}
	return db.inTx(ctx, func(tx pgx.Tx) error {
		if len(failed) > 0 || len(rest) > 0 {
			if _, err := tx.Exec(ctx, keepBatchEventsSQL, job.ID, string(kept)); err != nil {
				return err
			}
		}
		if len(failed) > 0 {
			if _, err := insertFailed(ctx, tx, job.JobRow, failed); err != nil {
				return err
			}
		}
		if len(rest) > 0 {
			a := job.Args
			g := subscribedGroup{service: a.Service, listener: a.Listener, maxAttempts: a.MaxAttempts, timeoutMS: a.TimeoutMS}
			if _, err := db.river.InsertManyFastTx(ctx, tx, deliveryJobs(g, rest, len(rest))); err != nil {
				return fmt.Errorf("queue the rest of a delivery batch: %w", err)
			}
		}
		if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
			return fmt.Errorf("complete delivery batch %d: %w", job.ID, err)
		}
		return nil
	})
}

// insertFailed inserts failed, the failed deliveries of job (a delivery
// batch, or an ordered group's job), with insertFailedDeliveriesSQL, and
// returns their ids.
func insertFailed(ctx context.Context, tx pgx.Tx, job *rivertype.JobRow, failed []dispatch.FailedDelivery) ([]int64, error) {
	n := len(failed)
	args := make([]string, n)
	maxAttempts := make([]int, n)
	attempts := make([]int, n)
	states := make([]string, n)
	scheduled := make([]time.Time, n)
	attemptErrors := make([]string, n)
	finalized := make([]*time.Time, n)
	metadata := make([]string, n)
	now := time.Now()
	for i, f := range failed {
		a, err := json.Marshal(f.Args)
		if err != nil {
			return nil, err
		}
		args[i] = string(a)
		e, err := json.Marshal(rivertype.AttemptError{At: f.At, Attempt: f.Attempt, Error: f.Error})
		if err != nil {
			return nil, err
		}
		attemptErrors[i] = string(e)
		metadata[i] = "{}"
		if len(f.Output.Attempts) > 0 {
			m, err := json.Marshal(map[string]any{rivertype.MetadataKeyOutput: f.Output})
			if err != nil {
				return nil, err
			}
			metadata[i] = string(m)
		}
		maxAttempts[i], attempts[i] = f.MaxAttempts, f.Attempt
		switch {
		case f.Dead:
			// River leaves a discarded job's scheduled_at as it was.
			states[i], scheduled[i], finalized[i] = "discarded", job.ScheduledAt, &now
		case f.RetryAt.Sub(now) <= riverSchedulerInterval:
			states[i], scheduled[i] = "available", f.RetryAt
		default:
			states[i], scheduled[i] = "retryable", f.RetryAt
		}
	}
	attemptedAt := now
	if job.AttemptedAt != nil {
		attemptedAt = *job.AttemptedAt
	}
	attemptedBy := job.AttemptedBy
	if attemptedBy == nil {
		attemptedBy = []string{}
	}
	rows, err := tx.Query(ctx, insertFailedDeliveriesSQL+` RETURNING id`, args, maxAttempts, attempts, states, scheduled, attemptErrors,
		finalized, metadata, job.CreatedAt, attemptedAt, attemptedBy)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}
