package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Baseline result names: every other result is also given as a ratio to
// each of these measured in the same run.
const (
	BaselineDB   = "baseline db tx/event"
	BaselineHTTP = "baseline http post"
)

// Result is one measured load of a report.
type Result struct {
	Name    string  `json:"name"`
	Summary Summary `json:"summary"`
	// Ratios are this result's throughput over each baseline's, by name
	// ("vs_db_tx", "vs_http", "vs_direct", "vs_river", "vs_unordered").
	Ratios map[string]float64 `json:"ratios,omitempty"`
	// Note says what the figures mean where it is not obvious.
	Note string `json:"note,omitempty"`
	// CPU is, by process (--cpu, and "load tool"), its CPU time in
	// microseconds per item of this load (event, call or delivery), from
	// the load's start until its deliveries were done.
	CPU map[string]float64 `json:"cpu_us_per_item,omitempty"`
}

// Memory is the gateway's resident memory in kB, read from /proc.
type Memory struct {
	RSSBeforeKB int64 `json:"rss_before_kb"`
	RSSAfterKB  int64 `json:"rss_after_kb"`
	HWMAfterKB  int64 `json:"hwm_after_kb"`
}

// Report is the outcome of one scenario run.
type Report struct {
	Scenario    string    `json:"scenario"`
	Started     time.Time `json:"started"`
	Concurrency int       `json:"concurrency"`
	Rate        float64   `json:"rate,omitempty"`
	Results     []Result  `json:"results"`
	// Skipped explains why the scenario did not run.
	Skipped string  `json:"skipped,omitempty"`
	Gateway *Memory `json:"gateway_memory,omitempty"`
}

// add appends a result.
func (r *Report) add(res Result) { r.Results = append(r.Results, res) }

// find returns the result named name.
func (r *Report) find(name string) (Result, bool) {
	for _, res := range r.Results {
		if res.Name == name {
			return res, true
		}
	}
	return Result{}, false
}

// ComputeRatios fills every non-baseline result's ratios to the baselines
// present: item throughput to the database baseline, request throughput to
// the HTTP baseline.
func (r *Report) ComputeRatios() {
	db, hasDB := r.find(BaselineDB)
	web, hasHTTP := r.find(BaselineHTTP)
	for i := range r.Results {
		res := &r.Results[i]
		if res.Name == BaselineDB || res.Name == BaselineHTTP {
			continue
		}
		if res.Ratios == nil {
			res.Ratios = map[string]float64{}
		}
		if hasDB && db.Summary.ItemsPerSec > 0 {
			res.Ratios["vs_db_tx"] = res.Summary.ItemsPerSec / db.Summary.ItemsPerSec
		}
		if hasHTTP && web.Summary.OpsPerSec > 0 {
			res.Ratios["vs_http"] = res.Summary.OpsPerSec / web.Summary.OpsPerSec
		}
		if river, ok := r.find(riverDelivered); ok && res.Name == gatewayDelivered && river.Summary.ItemsPerSec > 0 {
			res.Ratios["vs_river"] = res.Summary.ItemsPerSec / river.Summary.ItemsPerSec
		}
		if len(res.Ratios) == 0 {
			res.Ratios = nil
		}
	}
}

// WriteJSON writes r as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes r as an aligned table, one row per result, then its
// notes and the gateway's memory.
func (r *Report) WriteTable(w io.Writer) error {
	if r.Skipped != "" {
		_, err := fmt.Fprintf(w, "%s: skipped: %s\n", r.Scenario, r.Skipped)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RESULT\tOPS\tERRORS\tOPS/S\tEVENTS/S\tP50\tP90\tP99\tMAX\tRATIOS")
	for _, res := range r.Results {
		s := res.Summary
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\n", res.Name, s.Ops, s.Errors,
			s.OpsPerSec, s.ItemsPerSec, ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max), ratios(res.Ratios))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, res := range r.Results {
		if res.Note != "" {
			fmt.Fprintf(w, "%s: %s\n", res.Name, res.Note)
		}
		if len(res.CPU) > 0 {
			var parts []string
			for _, n := range cpuNames(res.CPU) {
				parts = append(parts, fmt.Sprintf("%s %.0fµs", n, res.CPU[n]))
			}
			fmt.Fprintf(w, "%s: CPU per item: %s\n", res.Name, strings.Join(parts, ", "))
		}
		if res.Summary.FirstError != "" {
			fmt.Fprintf(w, "%s: first error: %s\n", res.Name, res.Summary.FirstError)
		}
	}
	if m := r.Gateway; m != nil {
		fmt.Fprintf(w, "gateway RSS: %.1f MB before, %.1f MB after, peak %.1f MB\n",
			float64(m.RSSBeforeKB)/1024, float64(m.RSSAfterKB)/1024, float64(m.HWMAfterKB)/1024)
	}
	return nil
}

// ms formats d in milliseconds with enough precision for loopback figures.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 2, 64) + "ms"
}

func ratios(m map[string]float64) string {
	if len(m) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range []string{"vs_db_tx", "vs_http", "vs_direct", "vs_river", "vs_unordered"} {
		if v, ok := m[k]; ok {
			parts = append(parts, fmt.Sprintf("%s=%.2f", k, v))
		}
	}
	return strings.Join(parts, " ")
}

// ReadMemory reads VmRSS and VmHWM (kB) of process pid from /proc.
func ReadMemory(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm, nil
}
