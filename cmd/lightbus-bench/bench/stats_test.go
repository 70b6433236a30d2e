package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	t.Parallel()
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {90, 90 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0.1, time.Millisecond}} {
		if got := Percentile(d, tc.p); got != tc.want {
			t.Errorf("Percentile(1..100ms, %v) = %s, want %s", tc.p, got, tc.want)
		}
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("Percentile(nil) = %s, want 0", got)
	}
	if got := Percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("Percentile of one value = %s, want it", got)
	}
}

func TestSummarize(t *testing.T) {
	t.Parallel()
	lat := []time.Duration{4 * time.Millisecond, time.Millisecond, 3 * time.Millisecond, 2 * time.Millisecond}
	s := Summarize(lat, 40, 1, "boom", 2*time.Second)
	if s.Ops != 4 || s.Items != 40 || s.Errors != 1 || s.FirstError != "boom" {
		t.Errorf("counts = %+v", s)
	}
	if s.OpsPerSec != 2 || s.ItemsPerSec != 20 {
		t.Errorf("rates = %v ops/s, %v items/s; want 2 and 20", s.OpsPerSec, s.ItemsPerSec)
	}
	if s.P50 != 2*time.Millisecond || s.P99 != 4*time.Millisecond || s.Max != 4*time.Millisecond {
		t.Errorf("percentiles = p50 %s p99 %s max %s", s.P50, s.P99, s.Max)
	}
}

func TestDriveRequests(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	s := Drive(context.Background(), Load{Concurrency: 8, Requests: 100}, "t", nil, func(context.Context, int) (int, error) {
		if calls.Add(1)%10 == 0 {
			return 0, errors.New("every tenth fails")
		}
		return 2, nil
	})
	if calls.Load() != 100 {
		t.Fatalf("op ran %d times, want exactly 100", calls.Load())
	}
	if s.Ops != 90 || s.Errors != 10 || s.Items != 180 || s.FirstError != "every tenth fails" {
		t.Errorf("summary = %+v", s)
	}
}

func TestDriveRateAndDuration(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	// 200/s for 300ms: about 60 operations, never the 10,000 allowed.
	s := Drive(context.Background(), Load{Concurrency: 4, Rate: 200, Requests: 10000, Duration: 300 * time.Millisecond}, "t", nil,
		func(context.Context, int) (int, error) { calls.Add(1); return 1, nil })
	if n := calls.Load(); n < 10 || n > 80 {
		t.Errorf("rate 200/s for 300ms ran %d operations, want about 60", n)
	}
	if s.Elapsed > 5*time.Second {
		t.Errorf("elapsed %s: the duration bound did not stop the load", s.Elapsed)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := func() Options {
		return Options{URL: "http://127.0.0.1:8080", Load: Load{Concurrency: 1, Requests: 10}, BatchSize: 100}
	}
	for _, tc := range []struct {
		name     string
		scenario string
		mutate   func(*Options)
		want     string
	}{
		{"unknown scenario", "nope", func(*Options) {}, "unknown scenario"},
		{"bad url", ScenarioFire, func(o *Options) { o.URL = "127.0.0.1:8080" }, "--url"},
		{"no bound", ScenarioFire, func(o *Options) { o.Load.Requests = 0 }, "bounded"},
		{"zero concurrency", ScenarioFire, func(o *Options) { o.Load.Concurrency = 0 }, "--concurrency"},
		{"negative rate", ScenarioFire, func(o *Options) { o.Load.Rate = -1 }, "--rate"},
		{"batch size", ScenarioFireBatch, func(o *Options) { o.BatchSize = 0 }, "--batch-size"},
		{"baseline without db", ScenarioBaseline, func(*Options) {}, "--database-url"},
		{"deliver without rate", ScenarioDeliver, func(*Options) {}, "--rate"},
		{"groups", ScenarioFire, func(o *Options) { o.Groups = []int{1, 65} }, "--groups 65"},
	} {
		o := ok()
		tc.mutate(&o)
		err := o.Validate(tc.scenario)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate = %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}
	o := ok()
	if err := o.Validate(ScenarioFire); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	if !bytes.Equal(o.Params, DefaultParams) {
		t.Errorf("Params not defaulted: %s", o.Params)
	}
}

func TestReportOutput(t *testing.T) {
	t.Parallel()
	r := &Report{Scenario: "fire", Concurrency: 64}
	r.add(Result{Name: BaselineDB, Summary: Summary{Ops: 100, Items: 100, ItemsPerSec: 1000, OpsPerSec: 1000}})
	r.add(Result{Name: BaselineHTTP, Summary: Summary{Ops: 100, Items: 100, ItemsPerSec: 10000, OpsPerSec: 10000}})
	r.add(Result{Name: "fire 1 group(s)", Summary: Summary{Ops: 100, Items: 100, ItemsPerSec: 2500, OpsPerSec: 2500, P50: 1500 * time.Microsecond}, Note: "durable"})
	r.Gateway = &Memory{RSSBeforeKB: 20480, RSSAfterKB: 40960, HWMAfterKB: 51200}
	r.ComputeRatios()
	fire := r.Results[2]
	if fire.Ratios["vs_db_tx"] != 2.5 || fire.Ratios["vs_http"] != 0.25 {
		t.Errorf("ratios = %v, want vs_db_tx 2.5 and vs_http 0.25", fire.Ratios)
	}
	if r.Results[0].Ratios != nil {
		t.Errorf("a baseline got ratios: %v", r.Results[0].Ratios)
	}

	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"RESULT", "P99", "fire 1 group(s)", "1.50ms", "vs_db_tx=2.50 vs_http=0.25", "fire 1 group(s): durable", "peak 50.0 MB"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}

	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON output does not decode: %v\n%s", err, js.String())
	}
	if len(back.Results) != 3 || back.Results[2].Summary.P50 != 1500*time.Microsecond || back.Gateway.HWMAfterKB != 51200 {
		t.Errorf("JSON round trip = %+v", back)
	}

	var skipped bytes.Buffer
	(&Report{Scenario: "fire-batch", Skipped: "no batch fire"}).WriteTable(&skipped)
	if !strings.Contains(skipped.String(), "fire-batch: skipped: no batch fire") {
		t.Errorf("skipped report = %q", skipped.String())
	}
}

func TestBatchAccepted(t *testing.T) {
	t.Parallel()
	n, err := batchAccepted([]byte(`[{"id":"a"},{"id":"b"}]`), 2)
	if n != 2 || err != nil {
		t.Errorf("bare list: %d, %v", n, err)
	}
	n, err = batchAccepted([]byte(`{"results":[{"id":"a"},{"error":{"code":"invalid"}}]}`), 2)
	if n != 1 || err == nil {
		t.Errorf("wrapped list with a failure: %d, %v; want 1 and an error", n, err)
	}
	if _, err := batchAccepted([]byte(`"nope"`), 1); err == nil {
		t.Error("a non-list answer was accepted")
	}
}
