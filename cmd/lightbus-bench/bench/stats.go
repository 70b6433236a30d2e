// Package bench is the engine of lightbus-bench: it drives a running
// gateway over loopback HTTP with bounded load, serves the listener groups
// and RPC worker the scenarios need from inside the process, measures
// baselines (raw Postgres transactions, plain HTTP, a bare River worker) in
// the same run, and reports throughput and latency percentiles, every figure
// also as a ratio to those baselines.
package bench

import (
	"math"
	"slices"
	"time"
)

// Summary is the outcome of one measured load: counts, rates and latency
// percentiles.
type Summary struct {
	// Ops is the number of requests (or transactions) that succeeded.
	Ops int `json:"ops"`
	// Items is the number of events they carried (Ops for single fires).
	Items int `json:"items"`
	// Errors is the number of requests that failed.
	Errors int `json:"errors"`
	// FirstError is the first failure's message.
	FirstError string `json:"first_error,omitempty"`
	// Elapsed is the wall time of the load.
	Elapsed time.Duration `json:"elapsed_ns"`
	// OpsPerSec and ItemsPerSec are Ops and Items over Elapsed.
	OpsPerSec   float64 `json:"ops_per_sec"`
	ItemsPerSec float64 `json:"items_per_sec"`
	// Latency percentiles of the successful operations.
	P50 time.Duration `json:"p50_ns"`
	P90 time.Duration `json:"p90_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

// Summarize computes a Summary from latencies (one per successful
// operation; the slice is sorted in place), items, errors and elapsed time.
func Summarize(latencies []time.Duration, items, errors int, firstError string, elapsed time.Duration) Summary {
	slices.Sort(latencies)
	s := Summary{
		Ops: len(latencies), Items: items, Errors: errors, FirstError: firstError, Elapsed: elapsed,
		P50: Percentile(latencies, 50), P90: Percentile(latencies, 90), P99: Percentile(latencies, 99),
	}
	if len(latencies) > 0 {
		s.Max = latencies[len(latencies)-1]
	}
	if elapsed > 0 {
		s.OpsPerSec = float64(s.Ops) / elapsed.Seconds()
		s.ItemsPerSec = float64(items) / elapsed.Seconds()
	}
	return s
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted by the
// nearest-rank method: the smallest value with at least p% of the values
// at or below it. It returns 0 for no values.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}
