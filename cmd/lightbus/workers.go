package main

import (
	"github.com/spf13/cobra"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
)

// workersCmd is `lightbus workers`.
func (c *cli) workersCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "workers",
		Short: "List the live workers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bus, err := c.bus()
			if err != nil {
				return err
			}
			workers, err := bus.Workers(cmd.Context())
			if err != nil {
				return err
			}
			if workers == nil {
				workers = []lightbus.Worker{}
			}
			if c.jsonOut {
				return c.printJSON(struct {
					Workers []lightbus.Worker `json:"workers"`
				}{workers})
			}
			w := c.table()
			row(w, "ID", "SERVICE", "BASE URL", "APIS", "LISTENERS", "EXPIRES")
			for _, wk := range workers {
				row(w, wk.ID, wk.Service, wk.BaseURL, list(wk.APIs), list(wk.Listeners), formatTime(wk.ExpiresAt))
			}
			return w.Flush()
		},
	}
}
