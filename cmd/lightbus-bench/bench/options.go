package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"
)

// Scenario names.
const (
	ScenarioFire          = "fire"
	ScenarioFireBatch     = "fire-batch"
	ScenarioDeliver       = "deliver"
	ScenarioRPC           = "rpc"
	ScenarioBaseline      = "baseline"
	ScenarioRiverBaseline = "river-baseline"
)

// Scenarios lists every scenario, in the order they are documented.
var Scenarios = []string{ScenarioFire, ScenarioFireBatch, ScenarioDeliver, ScenarioRPC, ScenarioBaseline, ScenarioRiverBaseline}

// Options configure a scenario run.
type Options struct {
	// URL is the gateway's base URL.
	URL string
	// Token is the API key sent to the gateway (empty: none). The tool's
	// worker registers a throwaway API, so it needs fire:*, call:*, serve:*
	// and listen:* (or admin) when the gateway requires keys.
	Token string
	// DatabaseURL, when set, is where the database baseline (scratch tables,
	// dropped after) and the bare River baseline run.
	DatabaseURL string
	// Load bounds each measured load of the run.
	Load Load
	// Groups lists the numbers of listener groups to measure fires with.
	Groups []int
	// BatchSize is the number of events per batch fire.
	BatchSize int
	// GatewayPID, when positive, is the gateway's process id: its memory is
	// read before and after.
	GatewayPID int
	// CPU are the processes (with their descendants) whose CPU time is
	// reported per event, call or delivery of each measured load, with
	// the load tool's own.
	CPU []CPUTarget
	// Params is the parameters object of every event and call.
	Params []byte
	// IdempotencyKeys gives every single fire (and the database baseline's
	// event rows) a new idempotency key, as the Go client's fires have.
	IdempotencyKeys bool
	// FetchCooldown and FetchPollInterval configure the bare River client of
	// the River baseline (set them to the gateway's).
	FetchCooldown     time.Duration
	FetchPollInterval time.Duration
	// Ordered makes deliver measure an ordered group too: three rounds,
	// each an unordered group then an ordered one, and the medians.
	Ordered bool
	// Progress receives the progress line; nil for none.
	Progress io.Writer
}

// DefaultParams is the parameters object fired and called with when none
// is given: a small, realistic event.
var DefaultParams = []byte(`{"user":"sally","email":"sally@example.com","plan":"pro"}`)

// Validate checks the options for scenario.
func (o *Options) Validate(scenario string) error {
	known := false
	for _, s := range Scenarios {
		known = known || s == scenario
	}
	if !known {
		return fmt.Errorf("unknown scenario %q", scenario)
	}
	u, err := url.Parse(o.URL)
	if scenario != ScenarioBaseline && scenario != ScenarioRiverBaseline && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		return fmt.Errorf("--url %q: want the gateway's http URL", o.URL)
	}
	l := o.Load
	switch {
	case l.Concurrency < 1:
		return errors.New("--concurrency must be at least 1")
	case l.Rate < 0:
		return errors.New("--rate must not be negative")
	case l.Requests < 0:
		return errors.New("--requests must not be negative")
	case l.Duration < 0:
		return errors.New("--duration must not be negative")
	case l.Requests == 0 && l.Duration == 0:
		return errors.New("give --requests, --duration or both: a load must be bounded")
	case scenario == ScenarioFireBatch && (o.BatchSize < 1 || o.BatchSize > 1000):
		return errors.New("--batch-size must be 1 to 1000")
	case (scenario == ScenarioBaseline || scenario == ScenarioRiverBaseline) && o.DatabaseURL == "":
		return fmt.Errorf("%s needs --database-url", scenario)
	case scenario == ScenarioRiverBaseline && l.Rate <= 0:
		return errors.New("river-baseline needs --rate")
	case scenario == ScenarioDeliver && l.Rate <= 0:
		return errors.New("deliver needs --rate: deliveries are measured at a fixed fire rate")
	}
	for _, g := range o.Groups {
		if g < 0 || g > 64 {
			return fmt.Errorf("--groups %d: want 0 to 64", g)
		}
	}
	if len(o.Params) == 0 {
		o.Params = DefaultParams
	}
	if o.FetchCooldown <= 0 {
		o.FetchCooldown = 10 * time.Millisecond
	}
	if o.FetchPollInterval <= 0 {
		o.FetchPollInterval = 200 * time.Millisecond
	}
	return nil
}

// Run runs scenario with o (validated first) and returns its report.
func Run(ctx context.Context, scenario string, o Options) (*Report, error) {
	if err := o.Validate(scenario); err != nil {
		return nil, err
	}
	r := &Report{Scenario: scenario, Started: time.Now().UTC(), Concurrency: o.Load.Concurrency, Rate: o.Load.Rate}
	var before int64
	if o.GatewayPID > 0 {
		rss, _, err := ReadMemory(o.GatewayPID)
		if err != nil {
			return nil, fmt.Errorf("read the gateway's memory: %w", err)
		}
		before = rss
	}
	b := &runner{o: o, r: r, client: NewHTTPClient(o.Load.Concurrency), authorization: bearer(o.Token)}
	defer b.client.CloseIdleConnections()
	var err error
	switch scenario {
	case ScenarioFire:
		err = b.fire(ctx)
	case ScenarioFireBatch:
		err = b.fireBatch(ctx)
	case ScenarioDeliver:
		err = b.deliver(ctx)
	case ScenarioRPC:
		err = b.rpc(ctx)
	case ScenarioBaseline:
		err = b.baselines(ctx)
	case ScenarioRiverBaseline:
		err = b.riverOnly(ctx)
	}
	if err != nil {
		return nil, err
	}
	if o.GatewayPID > 0 {
		rss, hwm, err := ReadMemory(o.GatewayPID)
		if err != nil {
			return nil, fmt.Errorf("read the gateway's memory: %w", err)
		}
		r.Gateway = &Memory{RSSBeforeKB: before, RSSAfterKB: rss, HWMAfterKB: hwm}
	}
	r.ComputeRatios()
	return r, nil
}
