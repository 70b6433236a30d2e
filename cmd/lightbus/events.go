package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
)

// eventsCmd is `lightbus events`, with list and show.
func (c *cli) eventsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Inspect stored events and their deliveries",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(c.eventsListCmd(), c.eventsShowCmd())
	return cmd
}

// eventsListCmd is `lightbus events list`.
func (c *cli) eventsListCmd() *cobra.Command {
	var (
		q            lightbus.EventQuery
		since, until string
	)
	cmd := &cobra.Command{
		Use:   "list [--api API] [--event EVENT] [--limit N]",
		Short: "List stored events, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if q.Since, err = parseTime("since", since); err != nil {
				return err
			}
			if q.Until, err = parseTime("until", until); err != nil {
				return err
			}
			if q.Limit < 0 || q.Limit > 1000 {
				return fmt.Errorf("events list: --limit %d: want 1 to 1000", q.Limit)
			}
			bus, err := c.bus()
			if err != nil {
				return err
			}
			page, err := bus.Events(cmd.Context(), q)
			if err != nil {
				return err
			}
			if page.Events == nil {
				page.Events = []lightbus.StoredEvent{}
			}
			if c.jsonOut {
				return c.printJSON(page)
			}
			w := c.table()
			row(w, "ID", "CREATED", "EVENT", "PARAMS")
			for _, ev := range page.Events {
				row(w, ev.ID, formatTime(ev.CreatedAt), ev.API+"."+ev.Event, compactJSON(ev.Params, 60))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			if page.NextCursor != "" {
				fmt.Fprintf(c.stderr, "more: --before %s\n", page.NextCursor)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&q.API, "api", "", "only events of this API")
	f.StringVar(&q.Event, "event", "", "only events with this name")
	f.StringVar(&since, "since", "", "only events created at or after this RFC 3339 time")
	f.StringVar(&until, "until", "", "only events created before this RFC 3339 time")
	f.StringVar(&q.Before, "before", "", "only events older than this event id (the cursor)")
	f.IntVar(&q.Limit, "limit", 0, "at most this many events, 1 to 1000 (default: the gateway's, 100)")
	return cmd
}

// eventsShowCmd is `lightbus events show`.
func (c *cli) eventsShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show one event with its deliveries",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bus, err := c.bus()
			if err != nil {
				return err
			}
			ev, err := bus.Event(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if ev.Deliveries == nil {
				ev.Deliveries = []lightbus.Delivery{}
			}
			if c.jsonOut {
				return c.printJSON(ev)
			}
			w := c.table()
			row(w, "ID", ev.ID)
			row(w, "EVENT", ev.API+"."+ev.Event)
			row(w, "CREATED", formatTime(ev.CreatedAt))
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "PARAMS\n%s\n\n", indentJSON(ev.Params))
			if len(ev.Deliveries) == 0 {
				_, err := fmt.Fprintln(c.stdout, "no deliveries")
				return err
			}
			w = c.table()
			row(w, "DELIVERY", "LISTENER", "STATE", "ATTEMPT", "SCHEDULED", "ATTEMPTED", "FINALIZED", "LAST ERROR")
			for _, d := range ev.Deliveries {
				row(w, strconv.FormatInt(d.ID, 10), d.Service+"."+d.Listener, d.State, fmt.Sprintf("%d/%d", d.Attempt, d.MaxAttempts),
					formatTime(d.ScheduledAt), formatTime(d.AttemptedAt), formatTime(d.FinalizedAt), lastError(d))
			}
			return w.Flush()
		},
	}
}

// parseTime parses an RFC 3339 flag value; "" is the zero time.
func parseTime(flag, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--%s %q: want an RFC 3339 time such as 2026-11-25T10:00:00Z", flag, s)
	}
	return t, nil
}
