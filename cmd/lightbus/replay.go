package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// replayCmd is `lightbus replay`.
func (c *cli) replayCmd() *cobra.Command {
	var since string
	cmd := &cobra.Command{
		Use:               "replay SERVICE.LISTENER --since earliest|TIME|EVENT_ID",
		Short:             "Rewind a listener group: deliver retained events again from a point",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: c.completeGroups,
		RunE: func(cmd *cobra.Command, args []string) error {
			service, listener, err := splitGroup(args[0])
			if err != nil {
				return err
			}
			if since == "" {
				return fmt.Errorf("replay: --since is required: earliest, an RFC 3339 time or an event id")
			}
			bus, err := c.bus()
			if err != nil {
				return err
			}
			rp, err := bus.Replay(cmd.Context(), service, listener, since)
			if err != nil {
				return err
			}
			if c.jsonOut {
				return c.printJSON(rp)
			}
			_, err = fmt.Fprintf(c.stdout, "replay %d of %s.%s started; follow it with: lightbus listeners\n", rp.ID, service, listener)
			return err
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "earliest, an RFC 3339 time, or an event id (that event and every later one)")
	return cmd
}
