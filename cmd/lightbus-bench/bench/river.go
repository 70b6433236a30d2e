package bench

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// riverQueue is the queue of the bare River baseline; the gateway's River
// client never works it.
const riverQueue = "lightbus_bench"

// postArgs is the bare River baseline's job: POST an event to a listener.
type postArgs struct {
	ID  string `json:"id"`
	URL string `json:"url"`
}

// Kind implements river.JobArgs.
func (postArgs) Kind() string { return "lightbus.bench_post" }

// postWorker POSTs the job's event to the peer, like a delivery but with
// nothing else: no lookups, no signing.
type postWorker struct {
	river.WorkerDefaults[postArgs]
	client *http.Client
	params []byte
}

// Work implements river.Worker.
func (w *postWorker) Work(ctx context.Context, job *river.Job[postArgs]) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, job.Args.URL, bytes.NewReader(w.params))
	if err != nil {
		return err
	}
	req.Header["Content-Type"] = []string{"application/json"}
	req.Header["Ce-Id"] = []string{job.Args.ID}
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("listener answered %d", resp.StatusCode)
	}
	return nil
}

// riverOnly runs the bare River baseline alone.
func (b *runner) riverOnly(ctx context.Context) error { return b.riverBaseline(ctx) }

// riverBaseline runs a bare River client and worker on the database that
// POSTs to the peer's listener, enqueuing one job per transaction at the
// run's rate, and measures enqueue → delivered as the deliver scenario does.
func (b *runner) riverBaseline(ctx context.Context) error {
	pcfg, err := pgxpool.ParseConfig(b.o.DatabaseURL)
	if err != nil {
		return fmt.Errorf("--database-url: %w", err)
	}
	pcfg.MaxConns = 20
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return err
	}
	defer pool.Close()

	peer, err := NewPeer("http://unused", b.client)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		_ = peer.srv.Shutdown(cctx)
		cancel()
	}()
	workers := river.NewWorkers()
	river.AddWorker(workers, &postWorker{client: b.client, params: b.o.Params})
	rc, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		FetchCooldown:     b.o.FetchCooldown,
		FetchPollInterval: b.o.FetchPollInterval,
		Logger:            slog.New(slog.DiscardHandler),
		Queues:            map[string]river.QueueConfig{riverQueue: {MaxWorkers: 100}},
		Workers:           workers,
	})
	if err != nil {
		return fmt.Errorf("river client: %w", err)
	}
	if err := rc.Start(ctx); err != nil {
		return fmt.Errorf("start river (is --database-url a migrated gateway database?): %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_ = rc.Stop(sctx)
		cancel()
	}()

	target := peer.URL + "/events/g0"
	var mu sync.Mutex
	sent := map[string]time.Time{}
	mark := b.cpuMark()
	s := Drive(ctx, b.o.Load, "river-baseline: enqueue", b.o.Progress, func(ctx context.Context, _ int) (int, error) {
		id := uuid.Must(uuid.NewV7()).String()
		at := time.Now()
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			_, err := rc.InsertTx(ctx, tx, postArgs{ID: id, URL: target}, &river.InsertOpts{Queue: riverQueue, MaxAttempts: 25})
			return err
		})
		if err != nil {
			return 0, err
		}
		mu.Lock()
		sent[id] = at
		mu.Unlock()
		return 1, nil
	})
	b.r.add(Result{Name: "river-baseline: enqueue", Summary: s, Note: "bare River: one InsertTx per transaction"})
	peer.WaitCount(ctx, len(sent), drainIdle)
	delivered := deliveredResult(riverDelivered, sent, peer)
	delivered.CPU = mark.perItem(delivered.Summary.Items)
	b.r.add(delivered)
	return nil
}
