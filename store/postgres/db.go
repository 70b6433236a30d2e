// Package postgres implements the gateway's store interfaces on Postgres with
// pgx v5. Each store method runs in one transaction; deliveries are queued as
// River jobs inside the transaction that stores their event, so an event is
// never stored without its deliveries nor a delivery queued for an event that
// was not stored. With fire batching enabled (batcher.go), concurrent fires
// share one transaction (group commit), each answered after that commit.
// Database errors become gateway errors in one place (error.go).
package postgres

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/gateway/dispatch"
	"github.com/lightbus-go/lightbus/migrations"
)

// Compile-time checks that DB implements every store the gateway consumes.
var (
	_ gateway.EventStore     = (*DB)(nil)
	_ gateway.WorkerStore    = (*DB)(nil)
	_ gateway.TaskStore      = (*DB)(nil)
	_ dispatch.RPCStore      = (*DB)(nil)
	_ dispatch.DeliveryStore = (*DB)(nil)
)

// DB is the Postgres store.
type DB struct {
	logger *slog.Logger
	pool   *pgxpool.Pool
	// read is the pool of the inspection reads (WithReadPool): a replica's,
	// or pool itself.
	read    *pgxpool.Pool
	river   *river.Client[pgx.Tx]
	batcher *fireBatcher // nil: every fire commits alone
	groups  *groupCache  // nil: DeliveryTarget reads every group
	events  *eventLoader // reads the events of concurrent deliveries together
	// notifier spaces River's insert notifications for the delivery jobs
	// this package inserts itself (insertDeliveryJobsSQL).
	notifier *insertNotifier
	// secretOverlap is how long a worker's previous RPC secret keeps
	// signing after a registration replaced it.
	secretOverlap time.Duration
	// batchMax is the most events of one delivery batch.
	batchMax int
}

// Option configures New.
type Option func(*options)

type options struct {
	read           *pgxpool.Pool
	notifyCooldown time.Duration
	targetTTL      time.Duration
	secretOverlap  time.Duration
	batchMax       int
}

// WithReadPool sends the store's inspection reads to pool, typically a
// streaming replica of the primary's database (DATABASE_READ_URL): the
// event listing, detail and stream, the dead-letter listing and delivery
// detail, the listener, worker and task listings and the River queue
// counts. Everything else — every write, and every read on the way of a
// fire, a delivery, an RPC or an authentication — stays on the primary.
// A detail read (GetEvent, GetDelivery, a dead-letter listing's group)
// that the replica does not find is read again on the primary, so that a
// client reading what it has just written finds it; what the replica
// returns may otherwise be as old as its replication delay.
func WithReadPool(pool *pgxpool.Pool) Option {
	return func(o *options) { o.read = pool }
}

// DefaultDeliveryBatchMax is the most events of one delivery batch, unless
// WithDeliveryBatchMax says otherwise.
const DefaultDeliveryBatchMax = 100

// WithDeliveryBatchMax sets the most events of one delivery batch: the
// deliveries to one group of a transaction that stores several events are
// queued as one River job per n events (dispatch.DeliveryBatchArgs). 1
// queues a job per delivery.
func WithDeliveryBatchMax(n int) Option {
	return func(o *options) { o.batchMax = n }
}

// DefaultRPCSecretOverlap is how long a worker's previous RPC secret is
// still used to sign, unless WithRPCSecretOverlap says otherwise.
const DefaultRPCSecretOverlap = 5 * time.Minute

// WithRPCSecretOverlap sets how long a worker's previous RPC secret is still
// returned by RPCTargets (so requests are signed with it too) after a new
// registration of the worker replaced it.
func WithRPCSecretOverlap(d time.Duration) Option {
	return func(o *options) { o.secretOverlap = d }
}

// WithInsertNotifyCooldown sets how often at most a fire notifies River's
// workers that deliveries are waiting (per queue, per gateway). A worker
// learns of new jobs through these notifications or by polling, so the
// cooldown bounds the delay between a fire's commit and its delivery. Set
// it to River's fetch cooldown; River's default is 100ms.
func WithInsertNotifyCooldown(d time.Duration) Option {
	return func(o *options) { o.notifyCooldown = d }
}

// New returns a store on pool. It makes an insert-only River client for
// queuing deliveries; the River client that works them is the caller's.
func New(pool *pgxpool.Pool, logger *slog.Logger, opts ...Option) (*DB, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := options{secretOverlap: DefaultRPCSecretOverlap, batchMax: DefaultDeliveryBatchMax}
	for _, opt := range opts {
		opt(&o)
	}
	rc, err := river.NewClient(riverpgxv5.New(pool), &river.Config{FetchCooldown: o.notifyCooldown, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("river insert client: %w", err)
	}
	cooldown := o.notifyCooldown
	if cooldown <= 0 {
		cooldown = river.FetchCooldownDefault // what River's client then uses
	}
	read := o.read
	if read == nil {
		read = pool
	}
	db := &DB{logger: logger, pool: pool, read: read, river: rc, secretOverlap: o.secretOverlap, batchMax: max(o.batchMax, 1), notifier: &insertNotifier{cooldown: cooldown}}
	db.events = &eventLoader{db: db}
	if o.targetTTL > 0 {
		db.groups = &groupCache{ttl: o.targetTTL, groups: map[groupKey]*cachedGroup{}}
	}
	return db, nil
}

// Ready returns nil when the database answers and its schema is current,
// else an unavailable error.
func (db *DB) Ready(ctx context.Context) error {
	if err := db.pool.Ping(ctx); err != nil {
		return translate(err)
	}
	if err := migrations.Check(ctx, db.pool); err != nil {
		return gateway.WrapError(gateway.EUnavailable, err, "database migrations are pending")
	}
	return nil
}

// ReadReady returns nil when the read pool's database (WithReadPool)
// answers and its schema is current, else an unavailable error; nil
// without a read pool.
func (db *DB) ReadReady(ctx context.Context) error {
	if !db.separateRead() {
		return nil
	}
	if err := db.read.Ping(ctx); err != nil {
		return translate(err)
	}
	if err := migrations.Check(ctx, db.read); err != nil {
		return gateway.WrapError(gateway.EUnavailable, err, "the read database's migrations are behind")
	}
	return nil
}

// separateRead reports whether inspection reads have a pool of their own.
func (db *DB) separateRead() bool { return db.read != db.pool }

// readThenPrimary runs read on the read pool and, when that finds nothing
// (ENotFound) and the read pool is a replica's, again on the primary: a
// replica behind by its replication delay has not seen what a client may
// just have written.
func readThenPrimary[T any](ctx context.Context, db *DB, read func(ctx context.Context, pool *pgxpool.Pool) (T, error)) (T, error) {
	v, err := read(ctx, db.read)
	if err != nil && db.separateRead() && gateway.ErrorCode(err) == gateway.ENotFound {
		return read(ctx, db.pool)
	}
	return v, err
}

// inTx runs fn in a transaction, committing when it returns nil.
func (db *DB) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	tx, err := db.pool.Begin(ctx)
	if err != nil {
		return translate(err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(tx); err != nil {
		return translate(err)
	}
	return translate(tx.Commit(ctx))
}
