package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// baselines measures, at the run's load, one durable Postgres transaction
// per event writing the rows a fire writes (when a database is given) and
// plain HTTP POSTs to a handler that does nothing.
func (b *runner) baselines(ctx context.Context) error {
	if b.o.DatabaseURL != "" {
		if err := b.dbBaseline(ctx); err != nil {
			return err
		}
	}
	return b.httpBaseline(ctx)
}

// scratchSchema holds the database baseline's tables, shaped and indexed
// like lightbus_event and river_job (GIN indexes included); it is dropped
// after the run.
const scratchSchema = `
CREATE SCHEMA IF NOT EXISTS lightbus_bench;
CREATE TABLE IF NOT EXISTS lightbus_bench.event (
    id              uuid        PRIMARY KEY,
    api             text        NOT NULL,
    name            text        NOT NULL,
    params          json        NOT NULL,
    idempotency_key text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS event_api_name_id ON lightbus_bench.event (api, name, id);
CREATE INDEX IF NOT EXISTS event_created_at ON lightbus_bench.event (created_at);
CREATE UNIQUE INDEX IF NOT EXISTS event_idempotency ON lightbus_bench.event (api, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE TABLE IF NOT EXISTS lightbus_bench.job (
    id           bigserial   PRIMARY KEY,
    args         jsonb       NOT NULL DEFAULT '{}',
    attempt      smallint    NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    kind         text        NOT NULL,
    max_attempts smallint    NOT NULL,
    metadata     jsonb       NOT NULL DEFAULT '{}',
    priority     smallint    NOT NULL DEFAULT 1,
    queue        text        NOT NULL,
    state        text        NOT NULL DEFAULT 'available',
    scheduled_at timestamptz NOT NULL DEFAULT now(),
    tags         varchar(255)[] NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS job_prioritized_fetching ON lightbus_bench.job (state, queue, priority, scheduled_at, id);
CREATE INDEX IF NOT EXISTS job_kind ON lightbus_bench.job (kind);
CREATE INDEX IF NOT EXISTS job_event_id ON lightbus_bench.job ((args ->> 'event_id'));
CREATE INDEX IF NOT EXISTS job_args ON lightbus_bench.job USING gin (args);
CREATE INDEX IF NOT EXISTS job_metadata ON lightbus_bench.job USING gin (metadata);`

// dbBaseline inserts one event row and one job row per listener group (one
// group unless the run names others) per transaction, at the run's
// concurrency, with the server's own synchronous_commit.
func (b *runner) dbBaseline(ctx context.Context) error {
	pcfg, err := pgxpool.ParseConfig(b.o.DatabaseURL)
	if err != nil {
		return fmt.Errorf("--database-url: %w", err)
	}
	pcfg.MaxConns = int32(min(b.o.Load.Concurrency, 200))
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, scratchSchema); err != nil {
		return fmt.Errorf("create the baseline's scratch tables: %w", err)
	}
	defer func() { _, _ = pool.Exec(context.WithoutCancel(ctx), `DROP SCHEMA lightbus_bench CASCADE`) }()
	var syncCommit string
	if err := pool.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&syncCommit); err != nil {
		return err
	}
	groups := 1
	if len(b.o.Groups) == 1 {
		groups = b.o.Groups[0]
	}
	params := string(b.o.Params)
	mark := b.cpuMark()
	s := Drive(ctx, b.o.Load, BaselineDB, b.o.Progress, func(ctx context.Context, _ int) (int, error) {
		id := uuid.Must(uuid.NewV7()).String()
		var key *string
		if b.o.IdempotencyKeys {
			k := uuid.NewString()
			key = &k
		}
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO lightbus_bench.event (id, api, name, params, idempotency_key, created_at)
				VALUES ($1, 'bench', 'ping', $2, $3, now())`, id, params, key); err != nil {
				return err
			}
			for g := range groups {
				args, _ := json.Marshal(map[string]string{"event_id": id, "service": "bench", "listener": fmt.Sprintf("g%d", g)})
				if _, err := tx.Exec(ctx, `INSERT INTO lightbus_bench.job (args, kind, max_attempts, queue) VALUES ($1, 'lightbus.delivery', 25, 'lightbus_delivery')`, args); err != nil {
					return err
				}
			}
			return nil
		})
		return 1, err
	})
	b.r.add(Result{Name: BaselineDB, Summary: s, CPU: mark.perItem(s.Items),
		Note: fmt.Sprintf("one transaction per event: 1 event row%s + %d job row(s), synchronous_commit=%s", keyNote(b.o.IdempotencyKeys), groups, syncCommit)})
	return nil
}

// httpBaseline POSTs the event's parameters to a loopback handler that
// reads the body and answers 202 with a fire-sized answer.
func (b *runner) httpBaseline(ctx context.Context) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	answer := []byte(`{"id":"019ab4b6-6c1e-7d3a-9a4e-3b2d9c1e0f00","api":"bench","event":"ping","created_at":"2026-11-25T10:00:00.123456Z","deliveries":1}`)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var buf [4096]byte
		for {
			if _, err := r.Body.Read(buf[:]); err != nil {
				break
			}
		}
		w.Header()["Content-Type"] = []string{"application/json"}
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write(answer)
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/v1/events/bench/ping"
	s := Drive(ctx, b.o.Load, BaselineHTTP, b.o.Progress, func(ctx context.Context, _ int) (int, error) {
		_, _, err := b.post(ctx, url, b.o.Params, http.StatusAccepted)
		return 1, err
	})
	b.r.add(Result{Name: BaselineHTTP, Summary: s, Note: "plain HTTP POSTs to a do-nothing loopback handler"})
	return nil
}

// rpc measures calls to the peer's RPC made directly and through the
// gateway at the same load, reporting the gateway's added latency.
func (b *runner) rpc(ctx context.Context) error {
	return b.withPeer(ctx, 0, true, func(p *Peer) error {
		direct := p.URL + "/lightbus/rpc/" + p.API + "/echo"
		via := strings.TrimRight(b.o.URL, "/") + "/v1/rpc/" + p.API + "/echo"
		// Warm both paths (connections, caches) before measuring.
		for range 20 {
			if _, _, err := b.post(ctx, via, b.o.Params, http.StatusOK); err != nil {
				return err
			}
		}
		dm := b.cpuMark()
		d := Drive(ctx, b.o.Load, "rpc direct", b.o.Progress, func(ctx context.Context, _ int) (int, error) {
			_, _, err := b.post(ctx, direct, b.o.Params, http.StatusOK)
			return 1, err
		})
		dCPU := dm.perItem(d.Items)
		gm := b.cpuMark()
		g := Drive(ctx, b.o.Load, "rpc via gateway", b.o.Progress, func(ctx context.Context, _ int) (int, error) {
			_, _, err := b.post(ctx, via, b.o.Params, http.StatusOK)
			return 1, err
		})
		gCPU := gm.perItem(g.Items)
		b.r.add(Result{Name: "rpc direct", Summary: d, CPU: dCPU, Note: "POSTs straight to the worker's RPC route"})
		ratio := map[string]float64{}
		if d.OpsPerSec > 0 {
			ratio["vs_direct"] = g.OpsPerSec / d.OpsPerSec
		}
		b.r.add(Result{Name: "rpc via gateway", Summary: g, Ratios: ratio, CPU: gCPU,
			Note: fmt.Sprintf("added latency over direct: p50 %s, p90 %s, p99 %s", ms(g.P50-d.P50), ms(g.P90-d.P90), ms(g.P99-d.P99))})
		return nil
	})
}

// keyNote says whether the baseline's event rows have idempotency keys.
func keyNote(keys bool) string {
	if keys {
		return " with an idempotency key"
	}
	return ""
}
