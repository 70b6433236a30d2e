package main

import (
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
)

// workersCmd is `lightbus workers`.
func (c *cli) workersCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "workers",
		Short: "List the live workers and the scheduled tasks",
		Long: "List the live workers, then the scheduled tasks that run once per service: " +
			"the worker leading each, its latest run and that run's error.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bus, err := c.bus()
			if err != nil {
				return err
			}
			workers, err := bus.Workers(cmd.Context())
			if err != nil {
				return err
			}
			tasks, err := bus.Tasks(cmd.Context())
			if err != nil && !lightbus.IsCode(err, lightbus.CodeNotFound) { // not_found: a gateway without tasks
				return err
			}
			if workers == nil {
				workers = []lightbus.Worker{}
			}
			if tasks == nil {
				tasks = []lightbus.Task{}
			}
			if c.jsonOut {
				return c.printJSON(struct {
					Workers []lightbus.Worker `json:"workers"`
					Tasks   []lightbus.Task   `json:"tasks"`
				}{workers, tasks})
			}
			w := c.table()
			row(w, "ID", "SERVICE", "BASE URL", "APIS", "LISTENERS", "EXPIRES")
			for _, wk := range workers {
				row(w, wk.ID, wk.Service, wk.BaseURL, list(wk.APIs), list(wk.Listeners), formatTime(wk.ExpiresAt))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if len(tasks) == 0 {
				return nil
			}
			if _, err := io.WriteString(c.stdout, "\n"); err != nil {
				return err
			}
			w = c.table()
			row(w, "SERVICE", "TASK", "SCHEDULE", "LEADER", "LAST RUN", "TOOK", "RUNS", "FAILED", "LAST ERROR")
			for _, t := range tasks {
				row(w, t.Service, t.Name, t.Kind+" "+t.Spec, orDash(t.LeaderID), formatTimePtr(t.LastTick),
					formatMS(t.LastDurationMS), strconv.FormatInt(t.Runs, 10), strconv.FormatInt(t.Failures, 10), orDash(clip(t.LastError, 60)))
			}
			return w.Flush()
		},
	}
}

// formatTimePtr is formatTime for an optional time.
func formatTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return formatTime(*t)
}

// formatMS renders an optional duration in milliseconds.
func formatMS(ms *int64) string {
	if ms == nil {
		return "-"
	}
	return (time.Duration(*ms) * time.Millisecond).String()
}
