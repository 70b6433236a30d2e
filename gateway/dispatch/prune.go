package dispatch

import (
	"context"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
)

// Retention job identity.
const (
	// PruneKind is the River job kind of the periodic event pruning.
	PruneKind = "lightbus.prune"
	// QueueMaintenance is the River queue of the gateway's own maintenance
	// jobs, apart from deliveries so that it never waits behind them.
	QueueMaintenance = "lightbus_maintenance"
)

// PruneArgs are the River job args of one pruning run.
type PruneArgs struct{}

// Kind implements river.JobArgs.
func (PruneArgs) Kind() string { return PruneKind }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (PruneArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 3}
}

// PruneStore deletes old events.
type PruneStore interface {
	// PruneEvents deletes at most limit events created before cutoff, in
	// one short transaction, skipping rows locked by others, and returns
	// how many it deleted. Unless undelivered is true it keeps every event
	// that still has a delivery pending, scheduled, retryable, running or
	// dead.
	PruneEvents(ctx context.Context, cutoff time.Time, limit int, undelivered bool) (int, error)
	// EnsurePartitions creates the event partitions of width that the
	// span holding now and the ahead spans after it need, and returns how
	// many it created.
	EnsurePartitions(ctx context.Context, now time.Time, width time.Duration, ahead int) (int, error)
	// DropPartitions drops the event partitions whose whole span is
	// before cutoff and that hold no event PruneEvents would keep (with
	// the same undelivered), and returns how many it dropped and how many
	// it left, for PruneEvents to delete their events in batches: those
	// holding an event to keep, and those whose lock it could not have
	// soon enough (left to the next run).
	DropPartitions(ctx context.Context, cutoff time.Time, undelivered bool) (dropped, left int, err error)
}

// PartitionsAhead is how many event partitions after the current one each
// prune run (and the gateway at start) makes sure exist.
const PartitionsAhead = 2

// Pruner is the River worker of the periodic prune job: it creates the
// event partitions ahead of time, drops the partitions older than the
// retention period, and deletes the old events left in others, in batches,
// until none is left to delete.
type Pruner struct {
	river.WorkerDefaults[PruneArgs]

	batch       int
	logger      *slog.Logger
	partition   time.Duration
	retention   time.Duration
	store       PruneStore
	undelivered bool
}

// PrunerConfig configures a Pruner.
type PrunerConfig struct {
	// Batch is how many events one transaction deletes (default 1000).
	Batch  int
	Logger *slog.Logger
	// Partition is the span of time of an event partition (default 24h).
	Partition time.Duration
	// Retention is how long events are kept.
	Retention time.Duration
	Store     PruneStore
	// Undelivered prunes events whose deliveries are unfinished or dead
	// too; their deliveries are then cancelled when next attempted.
	Undelivered bool
}

// NewPruner returns the worker of prune jobs.
func NewPruner(cfg PrunerConfig) *Pruner {
	w := &Pruner{batch: cfg.Batch, logger: cfg.Logger, partition: cfg.Partition, retention: cfg.Retention,
		store: cfg.Store, undelivered: cfg.Undelivered}
	if w.batch <= 0 {
		w.batch = 1000
	}
	if w.partition <= 0 {
		w.partition = 24 * time.Hour
	}
	if w.logger == nil {
		w.logger = slog.New(slog.DiscardHandler)
	}
	return w
}

// Work creates the partitions ahead, drops the old ones, then deletes old
// events batch by batch until a batch comes back short.
func (w *Pruner) Work(ctx context.Context, job *river.Job[PruneArgs]) error {
	now := time.Now()
	created, err := w.store.EnsurePartitions(ctx, now, w.partition, PartitionsAhead)
	if err != nil {
		return err
	}
	if created > 0 {
		w.logger.InfoContext(ctx, "created event partitions", slog.Int("partitions", created))
	}
	cutoff := now.Add(-w.retention)
	dropped, left, err := w.store.DropPartitions(ctx, cutoff, w.undelivered)
	if err != nil {
		return err
	}
	if dropped > 0 || left > 0 {
		w.logger.InfoContext(ctx, "dropped event partitions", slog.Int("partitions", dropped),
			slog.Int("left", left), slog.Time("cutoff", cutoff))
	}
	total := 0
	for {
		n, err := w.store.PruneEvents(ctx, cutoff, w.batch, w.undelivered)
		if err != nil {
			return err
		}
		total += n
		if n < w.batch {
			break
		}
	}
	if total > 0 {
		w.logger.InfoContext(ctx, "pruned events", slog.Int("events", total), slog.Time("cutoff", cutoff))
	}
	return nil
}
