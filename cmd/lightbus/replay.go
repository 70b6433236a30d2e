package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
)

// replayPoll is how often replay --wait reads the replay's progress.
const replayPoll = 500 * time.Millisecond

// replayCmd is `lightbus replay`.
func (c *cli) replayCmd() *cobra.Command {
	var (
		since string
		wait  bool
	)
	cmd := &cobra.Command{
		Use:   "replay SERVICE.LISTENER --since earliest|TIME|EVENT_ID [--wait]",
		Short: "Rewind a listener group: deliver retained events again from a point",
		Long: `replay rewinds a listener group: every retained event it subscribes to from
--since on is delivered to it again. The gateway queues the deliveries in the
background and replay returns at once; --wait waits until every delivery is
queued (not delivered), showing how many are on standard error when it is a
terminal, and prints the finished replay.`,
		Example:           `  lightbus replay customers.create_user --since earliest --wait`,
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
			if wait {
				if rp, err = c.waitReplay(cmd.Context(), bus, rp); err != nil {
					return err
				}
			}
			if c.jsonOut {
				return c.printJSON(rp)
			}
			if rp.State == "done" {
				_, err = fmt.Fprintf(c.stdout, "replay %d of %s.%s done: %d deliveries queued\n", rp.ID, service, listener, rp.Queued)
				return err
			}
			_, err = fmt.Fprintf(c.stdout, "replay %d of %s.%s started; follow it with: lightbus listeners\n", rp.ID, service, listener)
			return err
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "earliest, an RFC 3339 time, or an event id (that event and every later one)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the replay has queued every delivery")
	return cmd
}

// waitReplay polls the group's listing until replay rp is done, drawing
// how many deliveries it has queued, and returns it as it finished.
func (c *cli) waitReplay(ctx context.Context, bus *lightbus.Bus, rp *lightbus.Replay) (*lightbus.Replay, error) {
	p := c.newProgress()
	defer p.clear()
	start := time.Now()
	label := fmt.Sprintf("replay %d of %s.%s: queued", rp.ID, rp.Service, rp.Listener)
	for rp.State != "done" {
		p.draw(renderBar(label, rp.Queued, 0, time.Since(start)))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(replayPoll):
		}
		groups, err := bus.Listeners(ctx)
		if err != nil {
			return nil, err
		}
		var latest *lightbus.Replay
		for _, g := range groups {
			if g.Service == rp.Service && g.Name == rp.Listener {
				latest = g.Replay
			}
		}
		if latest == nil || latest.ID != rp.ID {
			return nil, fmt.Errorf("replay %d of %s.%s is no longer the group's latest: the group was removed or replayed again", rp.ID, rp.Service, rp.Listener)
		}
		rp = latest
	}
	return rp, nil
}
