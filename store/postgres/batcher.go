package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
)

// FireBatchConfig configures group commit of single fires: concurrent
// FireEvent calls share one transaction, so that many events cost one
// durable commit. Each call still returns only after the commit that
// stored its event.
type FireBatchConfig struct {
	// Window is how long a batch waits for more fires while another batch
	// is committing. A fire that arrives when nothing is committing is
	// never held back, so a lone client sees no added latency.
	Window time.Duration
	// MaxSize bounds the events of one transaction.
	MaxSize int
	// MaxInFlight bounds the batches committing at once (each holds one
	// connection); fires arriving meanwhile join the next batch.
	MaxInFlight int
	// Timeout bounds one batch's transaction; the callers' own contexts do
	// not cut a shared transaction short.
	Timeout time.Duration
}

// EnableFireBatching makes FireEvent group-commit concurrent fires with
// cfg. Call it once, before serving; Close stops it.
func (db *DB) EnableFireBatching(cfg FireBatchConfig) {
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = 64
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 4
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	b := &fireBatcher{
		db:    db,
		cfg:   cfg,
		reqs:  make(chan *fireReq),
		slots: make(chan struct{}, cfg.MaxInFlight),
		quit:  make(chan struct{}),
	}
	b.wg.Add(1)
	go b.run()
	db.batcher = b
}

// Close stops fire batching, waiting for the batches in flight to commit.
// Fires after Close run unbatched.
func (db *DB) Close() {
	if b := db.batcher; b != nil {
		b.stop.Do(func() { close(b.quit) })
		b.wg.Wait()
	}
}

// fireBatcher gathers concurrent fires into shared transactions.
type fireBatcher struct {
	db    *DB
	cfg   FireBatchConfig
	reqs  chan *fireReq // unbuffered: a sent fire is always taken by run
	slots chan struct{} // one token per batch committing
	quit  chan struct{}
	stop  sync.Once
	wg    sync.WaitGroup
}

// fireReq is one waiting fire and, once done is closed, its outcome.
type fireReq struct {
	ctx    context.Context
	ev     *gateway.Event
	window time.Duration // of ev's idempotency key
	// taken is set by whichever comes first: commit, putting the fire in a
	// transaction, or the fire itself, giving up when its context ends
	// before that. A fire in a transaction waits for its outcome.
	taken atomic.Bool
	res   *gateway.FireResult
	err   error
	done  chan struct{}
}

// fire hands ev to the batcher and waits for the commit that stores it.
func (b *fireBatcher) fire(ctx context.Context, ev *gateway.Event, window time.Duration) (*gateway.FireResult, error) {
	r := &fireReq{ctx: ctx, ev: ev, window: window, done: make(chan struct{})}
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return nil, translate(ctx.Err())
	case <-b.quit:
		return b.db.fireAlone(ctx, ev, window)
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		if r.taken.CompareAndSwap(false, true) {
			return nil, translate(ctx.Err()) // still waiting for a batch: nothing is stored
		}
		// In a transaction already, which may commit this event: the
		// answer must say what happened.
		<-r.done
	}
	return r.res, r.err
}

// run gathers batches and dispatches each to its own goroutine.
func (b *fireBatcher) run() {
	defer b.wg.Done()
	for {
		var batch []*fireReq
		select {
		case r := <-b.reqs:
			batch = append(batch, r)
		case <-b.quit:
			return
		}
		batch = b.gather(batch)
		b.wg.Add(1)
		go b.commit(batch)
	}
}

// gather adds fires to batch and takes a commit slot. With a slot free and
// nothing committing it returns at once; while other batches commit it
// waits up to the window for more; with every slot taken it keeps
// gathering until one frees or the batch is full.
func (b *fireBatcher) gather(batch []*fireReq) []*fireReq {
	select {
	case b.slots <- struct{}{}:
		if len(b.slots) == 1 || b.cfg.Window <= 0 {
			return b.takeWaiting(batch)
		}
		t := time.NewTimer(b.cfg.Window)
		defer t.Stop()
		for len(batch) < b.cfg.MaxSize {
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
			case <-t.C:
				return batch
			}
		}
		return batch
	default:
	}
	for len(batch) < b.cfg.MaxSize {
		select {
		case r := <-b.reqs:
			batch = append(batch, r)
		case b.slots <- struct{}{}:
			return batch
		}
	}
	b.slots <- struct{}{}
	return batch
}

// takeWaiting adds the fires already waiting, without blocking.
func (b *fireBatcher) takeWaiting(batch []*fireReq) []*fireReq {
	for len(batch) < b.cfg.MaxSize {
		select {
		case r := <-b.reqs:
			batch = append(batch, r)
		default:
			return batch
		}
	}
	return batch
}

// commit stores batch in one transaction and answers every fire. A fire
// whose idempotency key was taken already is answered afterwards as a lone
// fire would be (a repeat, a conflict, or a key that outlived its window).
// When the transaction fails before its COMMIT, nothing of it was stored,
// and each fire is retried alone so that one bad event fails only itself.
// When the COMMIT itself fails, the batch may be stored: only fires with a
// key are retried (each finds its own event if it was), the others get the
// error, since a retry could store them twice.
func (b *fireBatcher) commit(batch []*fireReq) {
	defer b.wg.Done()
	defer func() { <-b.slots }()

	// The transaction ends by the first deadline of its fires, so that a
	// fire is answered within its own.
	limit := b.cfg.Timeout
	live := batch[:0]
	for _, r := range batch {
		if !r.taken.CompareAndSwap(false, true) {
			continue // it gave up waiting
		}
		if err := r.ctx.Err(); err != nil {
			r.err = translate(err)
			close(r.done)
			continue
		}
		if d, ok := r.ctx.Deadline(); ok {
			limit = min(limit, time.Until(d))
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	staged := make([]*stagedEvent, len(live))
	f := &fanOut{}
	for i, r := range live {
		staged[i] = f.stage(r.ev)
	}
	uncertain, err := commitFailed(b.db.fanOutTx(ctx, f))
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = gateway.WrapError(gateway.EUnavailable, err, fmt.Sprintf("the database did not answer within %s", limit.Round(time.Millisecond)))
	}
	if err != nil {
		b.db.logger.Debug("batched fire failed", "events", len(live), "error", err.Error(), "commit_failed", uncertain)
	}
	for i, r := range live {
		switch {
		case err == nil && staged[i].stored:
			r.res = staged[i].result()
		case err == nil: // its key was taken
			r.res, r.err = b.db.fireKeyTaken(r.ctx, r.ev, r.window)
		case uncertain && r.ev.IdempotencyKey != "", // finds its own event if it was stored
			!uncertain && len(live) > 1: // nothing was stored: one bad event fails only itself
			r.res, r.err = b.db.fireAlone(r.ctx, r.ev, r.window)
		default: // alone already, or perhaps stored: a retry could store it twice
			r.err = err
		}
		close(r.done)
	}
}
