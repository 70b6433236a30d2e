package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
)

// listenersCmd is `lightbus listeners`.
func (c *cli) listenersCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "listeners",
		Short: "List listener groups with pending, in-flight and dead deliveries and lag",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			bus, err := c.bus()
			if err != nil {
				return err
			}
			groups, err := bus.Listeners(cmd.Context())
			if err != nil {
				return err
			}
			if groups == nil {
				groups = []lightbus.ListenerStatus{}
			}
			if c.jsonOut {
				return c.printJSON(struct {
					Listeners []lightbus.ListenerStatus `json:"listeners"`
				}{groups})
			}
			w := c.table()
			row(w, "LISTENER", "EVENTS", "ENDPOINTS", "PENDING", "IN FLIGHT", "DEAD", "LAG", "REPLAY")
			for _, g := range groups {
				lag := "-"
				if !g.OldestUndelivered.IsZero() {
					lag = g.Lag().Round(time.Millisecond).String()
				}
				replay := "-"
				if g.Replay != nil {
					replay = fmt.Sprintf("%d %s, %d queued", g.Replay.ID, g.Replay.State, g.Replay.Queued)
				}
				name := g.Service + "." + g.Name
				if g.Policy.Ordered {
					name += " (ordered)"
				}
				row(w, name, list(g.Events), strconv.Itoa(g.Endpoints), strconv.FormatInt(g.Pending, 10),
					strconv.FormatInt(g.InFlight, 10), strconv.FormatInt(g.Dead, 10), lag, replay)
			}
			return w.Flush()
		},
	}
	cmd.AddCommand(c.listenersDeleteCmd())
	return cmd
}

// listenersDeleteCmd is `lightbus listeners delete SERVICE.LISTENER`.
func (c *cli) listenersDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:               "delete SERVICE.LISTENER",
		Short:             "Remove a listener group that is gone for good (stop its workers first)",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: c.completeGroups,
		RunE: func(cmd *cobra.Command, args []string) error {
			service, listener, err := splitGroup(args[0])
			if err != nil {
				return err
			}
			bus, err := c.bus()
			if err != nil {
				return err
			}
			if err := bus.DeleteListener(cmd.Context(), service, listener); err != nil {
				return err
			}
			if c.jsonOut {
				return c.printJSON(map[string]string{"service": service, "listener": listener, "removed": service + "." + listener})
			}
			_, err = fmt.Fprintf(c.stdout, "listener group %s.%s removed\n", service, listener)
			return err
		},
	}
}
