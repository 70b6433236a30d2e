package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lightbus-go/lightbus/cmd/lightbus/bench"
)

// benchCmd is `lightbus bench SCENARIO`.
func (c *cli) benchCmd() *cobra.Command {
	var (
		o      bench.Options
		groups string
		params string
	)
	cmd := &cobra.Command{
		Use:   "bench SCENARIO",
		Short: "Measure a running gateway: fire, fire-batch, deliver, rpc, baseline, river-baseline",
		Long: `bench drives a running gateway (--url) with bounded load over loopback and
prints throughput and latency percentiles (p50, p90, p99, max), as a table or
with --json as JSON. A progress line is printed to standard error.

Scenarios:
  fire            single-event fires, with 0, 1 and 4 listener groups (--groups)
                  served by the tool's own listener
  fire-batch      batch fires (POST /v1/events) of --batch-size events; skipped
                  when the gateway does not serve batch fire
  deliver         fires at --rate into one group served by the tool; measures
                  fire → delivered latency and sustained deliveries/s
  rpc             calls to the tool's own worker, directly and through the
                  gateway; reports the gateway's added latency
  baseline        one durable Postgres transaction per event with a fire's rows
                  (needs --database-url) and plain HTTP POSTs to a no-op handler
  river-baseline  a bare River client and worker posting to the tool's listener

fire and fire-batch also measure the baselines in the same run (the database
one with --database-url), deliver with --database-url also runs the bare River
baseline, and every figure is given as a ratio to them. Use a database whose settings you know (the
gateway's development Postgres), never a shared server.`,
		Example: `  lightbus bench fire -c 64 --duration 10s --database-url "$DATABASE_URL"
  lightbus bench deliver --rate 1000 --duration 10s --database-url "$DATABASE_URL"
  lightbus bench rpc -c 32 --requests 20000 --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.URL = c.url
			o.Progress = c.stderr
			gs, err := parseGroups(groups)
			if err != nil {
				return err
			}
			o.Groups = gs
			if params != "" {
				o.Params = []byte(params)
			}
			report, err := bench.Run(cmd.Context(), args[0], o)
			if err != nil {
				return err
			}
			if c.jsonOut {
				return report.WriteJSON(c.stdout)
			}
			return report.WriteTable(c.stdout)
		},
	}
	f := cmd.Flags()
	f.IntVarP(&o.Load.Concurrency, "concurrency", "c", 64, "requests in flight at most")
	f.Float64Var(&o.Load.Rate, "rate", 0, "operations a second (open loop); 0 sends as fast as --concurrency allows")
	f.IntVar(&o.Load.Requests, "requests", 0, "stop each measured load after this many requests")
	f.DurationVar(&o.Load.Duration, "duration", 10*time.Second, "stop each measured load after this long (0 for --requests only)")
	f.StringVar(&groups, "groups", "", "listener group counts to measure, comma separated (fire: default 0,1,4; fire-batch: default 1)")
	f.IntVar(&o.BatchSize, "batch-size", 100, "events per batch fire")
	f.StringVar(&o.DatabaseURL, "database-url", "", "Postgres for the baselines (a scratch schema is created and dropped)")
	f.IntVar(&o.GatewayPID, "gateway-pid", 0, "the gateway's process id: report its resident memory")
	f.StringVar(&params, "params", "", "the JSON object fired and called with (default: a small user event)")
	f.BoolVar(&o.IdempotencyKeys, "idempotency-keys", false, "fire and fire-batch: give every event a new idempotency key, as the Go client does (the database baseline's rows get keys too)")
	f.DurationVar(&o.FetchCooldown, "fetch-cooldown", 10*time.Millisecond, "the bare River baseline's fetch cooldown (set to the gateway's)")
	f.DurationVar(&o.FetchPollInterval, "fetch-poll-interval", 200*time.Millisecond, "the bare River baseline's fetch poll interval (set to the gateway's)")
	return cmd
}

// parseGroups parses a comma-separated list of listener group counts.
func parseGroups(s string) ([]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []int
	for _, part := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil {
			return nil, fmt.Errorf("--groups %q: want numbers separated by commas", s)
		}
		out = append(out, n)
	}
	return out, nil
}
