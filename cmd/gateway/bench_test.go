package main

import (
	"context"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/cmd/lightbus-bench/bench"
)

// TestBenchSmoke drives a real gateway with small bounded runs of the load
// tool's scenarios: every request succeeds and every delivery arrives.
func TestBenchSmoke(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	ctx := context.Background()
	run := func(scenario string, o bench.Options) *bench.Report {
		t.Helper()
		o.URL = gw.URL
		r, err := bench.Run(ctx, scenario, o)
		if err != nil {
			t.Fatalf("%s: %v", scenario, err)
		}
		return r
	}
	load := bench.Load{Concurrency: 8, Requests: 200, Duration: time.Minute}

	fire := run(bench.ScenarioFire, bench.Options{Load: load, Groups: []int{1}})
	// The HTTP baseline runs too; no database baseline without a URL.
	if len(fire.Results) != 2 {
		t.Fatalf("fire results = %+v, want the HTTP baseline and one fire", fire.Results)
	}
	res := fire.Results[1]
	if res.Summary.Ops != 200 || res.Summary.Errors != 0 || res.Summary.P50 <= 0 {
		t.Errorf("fire summary = %+v, want 200 successful fires", res.Summary)
	}
	if res.Ratios["vs_http"] <= 0 {
		t.Errorf("fire ratios = %v, want a ratio to the HTTP baseline", res.Ratios)
	}

	deliver := run(bench.ScenarioDeliver, bench.Options{Load: bench.Load{Concurrency: 8, Rate: 200, Requests: 100, Duration: time.Minute}})
	got := deliver.Results[len(deliver.Results)-1]
	if got.Summary.Ops != 100 || got.Summary.Errors != 0 || got.Summary.P50 <= 0 {
		t.Errorf("delivered summary = %+v (%s), want all 100 events delivered", got.Summary, got.Summary.FirstError)
	}

	rpc := run(bench.ScenarioRPC, bench.Options{Load: bench.Load{Concurrency: 8, Requests: 100}})
	for _, r := range rpc.Results {
		if r.Summary.Ops != 100 || r.Summary.Errors != 0 {
			t.Errorf("%s summary = %+v, want 100 successful calls", r.Name, r.Summary)
		}
	}

	batch := run(bench.ScenarioFireBatch, bench.Options{Load: bench.Load{Concurrency: 2, Requests: 5}, BatchSize: 10})
	if batch.Skipped == "" {
		for _, r := range batch.Results {
			if r.Summary.Errors != 0 {
				t.Errorf("%s: %d errors: %s", r.Name, r.Summary.Errors, r.Summary.FirstError)
			}
		}
	}
}
