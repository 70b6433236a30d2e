package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
)

// deadCmd is `lightbus dead`, with list, show and redrive.
func (c *cli) deadCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dead",
		Short: "Inspect and redrive dead deliveries",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(c.deadListCmd(), c.deadShowCmd(), c.deadRedriveCmd())
	return cmd
}

// splitGroup splits SERVICE.LISTENER at its last dot (a service name may
// have dots; a listener name has none).
func splitGroup(s string) (string, string, error) {
	i := strings.LastIndexByte(s, '.')
	if i <= 0 || i == len(s)-1 {
		return "", "", fmt.Errorf("%q: want SERVICE.LISTENER, such as auth.create_user", s)
	}
	return s[:i], s[i+1:], nil
}

// deadFilterFlags binds the filters shared by list and redrive --all.
type deadFilterFlags struct {
	q            lightbus.DeadQuery
	since, until string
}

func (f *deadFilterFlags) bind(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.q.API, "api", "", "only deliveries of events of this API")
	fl.StringVar(&f.q.Event, "event", "", "only deliveries of events with this name")
	fl.StringVar(&f.since, "since", "", "only deliveries that died at or after this RFC 3339 time")
	fl.StringVar(&f.until, "until", "", "only deliveries that died before this RFC 3339 time")
}

func (f *deadFilterFlags) query() (lightbus.DeadQuery, error) {
	var err error
	if f.q.Since, err = parseTime("since", f.since); err != nil {
		return f.q, err
	}
	if f.q.Until, err = parseTime("until", f.until); err != nil {
		return f.q, err
	}
	return f.q, nil
}

// deadListCmd is `lightbus dead list`.
func (c *cli) deadListCmd() *cobra.Command {
	var f deadFilterFlags
	cmd := &cobra.Command{
		Use:               "list SERVICE.LISTENER [--api API] [--event EVENT] [--since T] [--until T] [--limit N]",
		Short:             "List a listener group's dead deliveries, newest first",
		Example:           `  lightbus dead list customers.create_user --limit 20`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: c.completeGroups,
		RunE: func(cmd *cobra.Command, args []string) error {
			service, listener, err := splitGroup(args[0])
			if err != nil {
				return err
			}
			q, err := f.query()
			if err != nil {
				return err
			}
			if q.Limit < 0 || q.Limit > 1000 {
				return fmt.Errorf("dead list: --limit %d: want 1 to 1000", q.Limit)
			}
			bus, err := c.bus()
			if err != nil {
				return err
			}
			page, err := bus.DeadLetters(cmd.Context(), service, listener, q)
			if err != nil {
				return err
			}
			if page.Deliveries == nil {
				page.Deliveries = []lightbus.DeliveryRecord{}
			}
			if c.jsonOut {
				return c.printJSON(page)
			}
			w := c.table()
			row(w, "ID", "DIED", "EVENT", "EVENT ID", "ATTEMPTS", "LAST ERROR")
			for _, d := range page.Deliveries {
				row(w, strconv.FormatInt(d.ID, 10), formatTime(d.FinalizedAt), d.API+"."+d.Event, d.EventID,
					strconv.Itoa(d.Attempt), lastError(d.Delivery))
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
	f.bind(cmd)
	cmd.Flags().StringVar(&f.q.Before, "before", "", "only deliveries with a smaller id (the cursor)")
	cmd.Flags().IntVar(&f.q.Limit, "limit", 0, "at most this many deliveries, 1 to 1000 (default: the gateway's, 100)")
	return cmd
}

func lastError(d lightbus.Delivery) string {
	if n := len(d.Errors); n > 0 {
		return clip(oneLine(d.Errors[n-1].Error), 60)
	}
	return "-"
}

func parseDeliveryID(s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%q is not a delivery id (a positive number)", s)
	}
	return id, nil
}

// deadShowCmd is `lightbus dead show`.
func (c *cli) deadShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:               "show ID",
		Short:             "Show one delivery with its attempt history",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseDeliveryID(args[0])
			if err != nil {
				return err
			}
			bus, err := c.bus()
			if err != nil {
				return err
			}
			d, err := bus.Delivery(cmd.Context(), id)
			if err != nil {
				return err
			}
			return c.printDelivery(d)
		},
	}
}

func (c *cli) printDelivery(d *lightbus.DeliveryRecord) error {
	if d.Errors == nil {
		d.Errors = []lightbus.DeliveryError{}
	}
	if c.jsonOut {
		return c.printJSON(d)
	}
	w := c.table()
	row(w, "ID", strconv.FormatInt(d.ID, 10))
	row(w, "LISTENER", d.Service+"."+d.Listener)
	row(w, "EVENT", d.API+"."+d.Event+" "+d.EventID)
	row(w, "STATE", d.State)
	row(w, "ATTEMPTS", fmt.Sprintf("%d/%d", d.Attempt, d.MaxAttempts))
	row(w, "SCHEDULED", formatTime(d.ScheduledAt))
	row(w, "FINALIZED", formatTime(d.FinalizedAt))
	if err := w.Flush(); err != nil {
		return err
	}
	if len(d.Errors) == 0 {
		return nil
	}
	fmt.Fprintln(c.stdout)
	w = c.table()
	row(w, "ATTEMPT", "AT", "STATUS", "ERROR")
	for _, e := range d.Errors {
		status := "-"
		if e.Status != 0 {
			status = strconv.Itoa(e.Status)
		}
		row(w, strconv.Itoa(e.Attempt), formatTime(e.At), status, clip(oneLine(e.Error), 100))
	}
	return w.Flush()
}

// deadRedriveCmd is `lightbus dead redrive`.
func (c *cli) deadRedriveCmd() *cobra.Command {
	var (
		f   deadFilterFlags
		all bool
	)
	cmd := &cobra.Command{
		Use:               "redrive ID | redrive --all SERVICE.LISTENER [--api API] [--event EVENT] [--since T] [--until T]",
		Short:             "Give dead deliveries fresh attempts",
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: c.completeGroups,
		RunE: func(cmd *cobra.Command, args []string) error {
			bus, err := c.bus()
			if err != nil {
				return err
			}
			if !all {
				if f.q.API != "" || f.q.Event != "" || f.since != "" || f.until != "" {
					return fmt.Errorf("dead redrive: filters need --all")
				}
				id, err := parseDeliveryID(args[0])
				if err != nil {
					return err
				}
				d, err := bus.Redrive(cmd.Context(), id)
				if err != nil {
					return err
				}
				return c.printDelivery(d)
			}
			service, listener, err := splitGroup(args[0])
			if err != nil {
				return err
			}
			q, err := f.query()
			if err != nil {
				return err
			}
			filtered := q.API != "" || q.Event != "" || !q.Since.IsZero() || !q.Until.IsZero()
			n, err := c.redriveAll(cmd.Context(), bus, service, listener, q, filtered)
			if err != nil {
				return err
			}
			if c.jsonOut {
				return c.printJSON(map[string]int{"redriven": n})
			}
			_, err = fmt.Fprintf(c.stdout, "redriven: %d\n", n)
			return err
		},
	}
	f.bind(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "redrive every dead delivery of the group matching the filters")
	return cmd
}

// redrivePoll is how often a bulk redrive's progress is read.
const redrivePoll = 250 * time.Millisecond

// redriveAll redrives the group's dead deliveries matching q. With a
// progress line (standard error a terminal, no --json) it reads the group's
// dead count meanwhile and draws how many have left it: against the count
// at the start when every dead delivery is redriven, as a bare count when
// filters pick some.
func (c *cli) redriveAll(ctx context.Context, bus *lightbus.Bus, service, listener string, q lightbus.DeadQuery, filtered bool) (int, error) {
	p := c.newProgress()
	if p.w == nil {
		return bus.RedriveAll(ctx, service, listener, q)
	}
	defer p.clear()
	deadNow := func() (int64, bool) {
		groups, err := bus.Listeners(ctx)
		if err != nil {
			return 0, false
		}
		for _, g := range groups {
			if g.Service == service && g.Name == listener {
				return g.Dead, true
			}
		}
		return 0, false
	}
	start := time.Now()
	before, known := deadNow()
	total := before
	if filtered {
		total = 0
	}
	label := fmt.Sprintf("redriving %s.%s", service, listener)
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := bus.RedriveAll(ctx, service, listener, q)
		done <- result{n, err}
	}()
	var redriven int64
	for {
		p.draw(renderBar(label, redriven, total, time.Since(start)))
		select {
		case r := <-done:
			return r.n, r.err
		case <-time.After(redrivePoll):
		}
		if now, ok := deadNow(); ok && known {
			redriven = max(0, before-now)
		}
	}
}
