// Command lightbus-bench is Lightbus's load tool: it drives a running
// gateway with bounded load over loopback and prints throughput and latency
// percentiles, every figure also as a ratio to baselines measured in the
// same run (a durable Postgres transaction per event, plain HTTP POSTs, a
// bare River worker).
//
//	lightbus-bench fire [flags]            single-event fires
//	lightbus-bench fire-batch [flags]      batch fires
//	lightbus-bench deliver --rate N        fire → delivered latency (--ordered: an ordered group too)
//	lightbus-bench rpc [flags]             the gateway's added RPC latency
//	lightbus-bench baseline [flags]        the database and HTTP baselines alone
//	lightbus-bench river-baseline --rate N a bare River client and worker
//	lightbus-bench proxy --to URL,URL      a round-robin proxy over replicas
//
// It is a command of its own, apart from the lightbus CLI, because its
// baselines link the Postgres driver and River, which the CLI must not. The
// gateway is at --url, $LIGHTBUS_URL, else http://127.0.0.1:8080, and the
// API key sent to it --token, else $LIGHTBUS_TOKEN. The
// engine is package bench; docs/PERFORMANCE.md has the method and figures.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/lightbus-go/lightbus/cmd/lightbus-bench/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		// One line, whatever the error's text holds.
		fmt.Fprintf(os.Stderr, "lightbus-bench: %s\n", strings.Join(strings.Fields(err.Error()), " "))
		os.Exit(1)
	}
}

// run runs the command line args (without the program name).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	root := rootCmd(stdout, stderr, os.Getenv)
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

// scenarioHelp is the one-line description of each scenario.
var scenarioHelp = map[string]string{
	bench.ScenarioFire:          "Single-event fires, with 0, 1 and 4 listener groups (--groups) served by the tool's own listener",
	bench.ScenarioFireBatch:     "Batch fires (POST /v1/events) of --batch-size events; skipped when the gateway does not serve batch fire",
	bench.ScenarioDeliver:       "Fires at --rate into one group served by the tool: fire → delivered latency and sustained deliveries/s",
	bench.ScenarioRPC:           "Calls to the tool's own worker, directly and through the gateway: the gateway's added latency",
	bench.ScenarioBaseline:      "One durable Postgres transaction per event with a fire's rows (needs --database-url) and plain HTTP POSTs to a no-op handler",
	bench.ScenarioRiverBaseline: "A bare River client and worker posting to the tool's listener (needs --database-url and --rate)",
}

// rootCmd is `lightbus-bench`, with a subcommand for each scenario; the
// flags are the root's, so that they go before or after the scenario.
func rootCmd(stdout, stderr io.Writer, getenv func(string) string) *cobra.Command {
	var (
		o       bench.Options
		groups  string
		params  string
		jsonOut bool
	)
	root := &cobra.Command{
		Use:   "lightbus-bench SCENARIO",
		Short: "Measure a running gateway: fire, fire-batch, deliver, rpc, baseline, river-baseline",
		Long: `lightbus-bench drives a running gateway (--url) with bounded load over loopback
and prints throughput and latency percentiles (p50, p90, p99, max), as a table
or with --json as JSON. A progress line is printed to standard error.

fire and fire-batch also measure the baselines in the same run (the database
one with --database-url), deliver with --database-url also runs the bare River
baseline, and every figure is given as a ratio to them. Use a database whose
settings you know (the gateway's development Postgres), never a shared server.`,
		Example: `  lightbus-bench fire -c 64 --duration 10s --database-url "$DATABASE_URL"
  lightbus-bench deliver --rate 1000 --duration 10s --database-url "$DATABASE_URL"
  lightbus-bench rpc -c 32 --requests 20000 --json`,
		// A name that is no scenario's comes here rather than to cobra's
		// "unknown command".
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return fmt.Errorf("name a scenario: %s", strings.Join(bench.Scenarios, ", "))
			}
			return fmt.Errorf("unknown scenario %q: want %s", args[0], strings.Join(bench.Scenarios, ", "))
		},
		SilenceUsage:      true,
		SilenceErrors:     true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)

	url := getenv("LIGHTBUS_URL")
	if url == "" {
		url = "http://127.0.0.1:8080"
	}
	f := root.PersistentFlags()
	f.StringVar(&o.URL, "url", url, "the gateway's base URL ($LIGHTBUS_URL)")
	// The token's default is read when it is used, not shown in --help.
	f.StringVar(&o.Token, "token", "", "the API key sent to the gateway (default $LIGHTBUS_TOKEN): fire:*, call:*, serve:* and listen:*, or admin")
	f.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	f.IntVarP(&o.Load.Concurrency, "concurrency", "c", 64, "requests in flight at most")
	f.Float64Var(&o.Load.Rate, "rate", 0, "operations a second (open loop); 0 sends as fast as --concurrency allows")
	f.IntVar(&o.Load.Requests, "requests", 0, "stop each measured load after this many requests")
	f.DurationVar(&o.Load.Duration, "duration", 10*time.Second, "stop each measured load after this long (0 for --requests only)")
	f.StringVar(&groups, "groups", "", "listener group counts to measure, comma separated (fire: default 0,1,4; fire-batch: default 1)")
	f.IntVar(&o.BatchSize, "batch-size", 100, "events per batch fire")
	f.StringVar(&o.DatabaseURL, "database-url", "", "Postgres for the baselines (a scratch schema is created and dropped)")
	f.IntVar(&o.GatewayPID, "gateway-pid", 0, "the gateway's process id: report its resident memory")
	f.Var(cpuFlag{&o.CPU}, "cpu", "name=pid of a process (with its descendants, e.g. the Postgres postmaster) whose CPU time to report per event, call or delivery of each load, with the load tool's own; repeatable")
	f.StringVar(&params, "params", "", "the JSON object fired and called with (default: a small user event)")
	f.BoolVar(&o.Ordered, "ordered", false, "deliver: also measure an ordered group, in 3 rounds alternating with the unordered one, and give the medians' ratio")
	f.BoolVar(&o.IdempotencyKeys, "idempotency-keys", false, "fire and fire-batch: give every event a new idempotency key, as the Go client does (the database baseline's rows get keys too)")
	f.DurationVar(&o.FetchCooldown, "fetch-cooldown", 10*time.Millisecond, "the bare River baseline's fetch cooldown (set to the gateway's)")
	f.DurationVar(&o.FetchPollInterval, "fetch-poll-interval", 200*time.Millisecond, "the bare River baseline's fetch poll interval (set to the gateway's)")

	for _, scenario := range bench.Scenarios {
		root.AddCommand(&cobra.Command{
			Use:   scenario + " [flags]",
			Short: scenarioHelp[scenario],
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				o.Progress = stderr
				if o.Token == "" {
					o.Token = getenv("LIGHTBUS_TOKEN")
				}
				gs, err := parseGroups(groups)
				if err != nil {
					return err
				}
				o.Groups = gs
				if params != "" {
					o.Params = []byte(params)
				}
				report, err := bench.Run(cmd.Context(), scenario, o)
				if err != nil {
					return err
				}
				if jsonOut {
					return report.WriteJSON(stdout)
				}
				return report.WriteTable(stdout)
			},
		})
	}
	root.AddCommand(proxyCmd(stderr))
	return root
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

// cpuFlag collects --cpu name=pid values.
type cpuFlag struct{ targets *[]bench.CPUTarget }

func (f cpuFlag) String() string {
	if f.targets == nil {
		return ""
	}
	var parts []string
	for _, t := range *f.targets {
		parts = append(parts, fmt.Sprintf("%s=%d", t.Name, t.PID))
	}
	return strings.Join(parts, ",")
}

func (f cpuFlag) Set(s string) error {
	t, err := bench.ParseCPUTarget(s)
	if err != nil {
		return err
	}
	*f.targets = append(*f.targets, t)
	return nil
}

func (cpuFlag) Type() string { return "name=pid" }
