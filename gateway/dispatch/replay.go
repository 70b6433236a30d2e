package dispatch

import (
	"context"

	"github.com/riverqueue/river"
)

// ReplayKind is the River job kind of a replay.
const ReplayKind = "lightbus.replay"

// ReplayArgs are the River job args of one replay; its state is in the
// replay's row.
type ReplayArgs struct {
	ReplayID int64 `json:"replay_id"`
}

// Kind implements river.JobArgs.
func (ReplayArgs) Kind() string { return ReplayKind }

// InsertOpts implements river.JobArgsWithInsertOpts.
func (ReplayArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 25}
}

// ReplayPager runs replays one page at a time.
type ReplayPager interface {
	// ReplayPage queues the deliveries of the replay's next page of at most
	// limit events, in one transaction with its progress, and reports
	// whether the replay is done. A replay whose group is gone is done.
	ReplayPage(ctx context.Context, replayID int64, limit int) (bool, error)
}

// Replayer is the River worker of replay jobs: it pages through a replay;
// each page is its own short transaction, so replays never hold up fires,
// and a replay interrupted by a restart goes on from its cursor.
type Replayer struct {
	river.WorkerDefaults[ReplayArgs]

	page  int
	store ReplayPager
}

// NewReplayer returns the worker of replay jobs, paging by page events
// (default 500).
func NewReplayer(store ReplayPager, page int) *Replayer {
	if page <= 0 {
		page = 500
	}
	return &Replayer{page: page, store: store}
}

// Work pages through the replay until it is done.
func (w *Replayer) Work(ctx context.Context, job *river.Job[ReplayArgs]) error {
	for {
		done, err := w.store.ReplayPage(ctx, job.Args.ReplayID, w.page)
		if err != nil || done {
			return err
		}
	}
}
