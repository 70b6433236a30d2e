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
}

// Pruner is the River worker of the periodic prune job: it deletes events older than the
// retention period, in batches, until none is left to delete.
type Pruner struct {
	river.WorkerDefaults[PruneArgs]

	batch       int
	logger      *slog.Logger
	retention   time.Duration
	store       PruneStore
	undelivered bool
}

// PrunerConfig configures a Pruner.
type PrunerConfig struct {
	// Batch is how many events one transaction deletes (default 1000).
	Batch  int
	Logger *slog.Logger
	// Retention is how long events are kept.
	Retention time.Duration
	Store     PruneStore
	// Undelivered prunes events whose deliveries are unfinished or dead
	// too; their deliveries are then cancelled when next attempted.
	Undelivered bool
}

// NewPruner returns the worker of prune jobs.
func NewPruner(cfg PrunerConfig) *Pruner {
	w := &Pruner{batch: cfg.Batch, logger: cfg.Logger, retention: cfg.Retention, store: cfg.Store, undelivered: cfg.Undelivered}
	if w.batch <= 0 {
		w.batch = 1000
	}
	if w.logger == nil {
		w.logger = slog.New(slog.DiscardHandler)
	}
	return w
}

// Work deletes old events batch by batch until a batch comes back short.
func (w *Pruner) Work(ctx context.Context, job *river.Job[PruneArgs]) error {
	cutoff := time.Now().Add(-w.retention)
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
