package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
)

// Output formats of inspect.
const (
	formatHuman  = "human"
	formatJSON   = "json"
	formatPretty = "pretty"
)

// inspectCmd is `lightbus inspect`: the events matching a filter, a page
// of the stored ones or, with --follow, the live stream.
func (c *cli) inspectCmd() *cobra.Command {
	var (
		q            lightbus.EventQuery
		since, until string
		follow       bool
		after        string
		format       string
	)
	cmd := &cobra.Command{
		Use:   "inspect [--api A] [--event E] [--where COND]... [--since T] [--until T] [--limit N] [--follow] [--format human|json|pretty]",
		Short: "Show the events matching a filter: stored ones, newest first, or with --follow new ones as they commit",
		Long: `Shows the events matching a filter. --api and --event take a name or a glob
('*' for any run of characters: --api 'auth.*' --event 'user_*'); each --where is a
condition on the parameters (address.city=London, total>=100, plan!=null), all of
which must hold.

Without --follow, one page of stored events, newest first (--limit, default 100;
the next page's --before is printed on standard error).

With --follow, only new events, oldest first, as they commit; the stream resumes
from where it was after a lost connection or a gateway restart, so every event is
printed once. Standard error tells the stream's position; --after POSITION resumes
from one. Stop it with Ctrl-C.

--format: human (an aligned table), json (one JSON object per line) or pretty
(indented JSON).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if q.Since, err = parseTime("since", since); err != nil {
				return err
			}
			if q.Until, err = parseTime("until", until); err != nil {
				return err
			}
			if c.jsonOut && !cmd.Flags().Changed("format") {
				format = formatJSON
			}
			switch format {
			case formatHuman, formatJSON, formatPretty:
			default:
				return fmt.Errorf("inspect: --format %q: want human, json or pretty", format)
			}
			if q.Limit < 0 || q.Limit > 1000 {
				return fmt.Errorf("inspect: --limit %d: want 1 to 1000", q.Limit)
			}
			if follow && (q.Before != "" || cmd.Flags().Changed("limit")) {
				return errors.New("inspect: --before and --limit page stored events; --follow shows new ones")
			}
			if !follow && after != "" {
				return errors.New("inspect: --after resumes --follow")
			}
			bus, err := c.bus()
			if err != nil {
				return err
			}
			p := newEventPrinter(c.stdout, format)
			if !follow {
				page, err := bus.Events(cmd.Context(), q)
				if err != nil {
					return err
				}
				for _, ev := range page.Events {
					if err := p.print(ev); err != nil {
						return err
					}
				}
				if err := p.flush(); err != nil {
					return err
				}
				if page.NextCursor != "" {
					fmt.Fprintf(c.stderr, "more: --before %s\n", page.NextCursor)
				}
				return nil
			}
			return c.follow(cmd.Context(), bus, lightbus.FollowQuery{
				API: q.API, Event: q.Event, Since: q.Since, Until: q.Until, Where: q.Where, After: after,
			}, p)
		},
	}
	f := cmd.Flags()
	f.StringVar(&q.API, "api", "", "only events of this API, or of the APIs matching this glob (auth.*)")
	f.StringVar(&q.Event, "event", "", "only events with this name, or matching this glob (user_*)")
	f.StringArrayVar(&q.Where, "where", nil, "a condition on the parameters: PATH=VALUE, PATH!=VALUE, PATH>N, >=, <, <= (repeat for more)")
	f.StringVar(&since, "since", "", "only events created at or after this RFC 3339 time")
	f.StringVar(&until, "until", "", "only events created before this RFC 3339 time")
	f.IntVar(&q.Limit, "limit", 0, "the most events to show, 1 to 1000 (default 100)")
	f.StringVar(&q.Before, "before", "", "only events older than this event id (a page's cursor)")
	f.BoolVarP(&follow, "follow", "f", false, "follow new events as they commit, resuming after reconnects")
	f.StringVar(&after, "after", "", "with --follow: resume after this stream position")
	f.StringVar(&format, "format", formatHuman, "output: human, json or pretty")
	return cmd
}

// follow prints the stream's events until the context ends (Ctrl-C),
// which is not an error.
func (c *cli) follow(ctx context.Context, bus *lightbus.Bus, q lightbus.FollowQuery, p *eventPrinter) error {
	said := false
	q.OnPosition = func(pos string) {
		if !said {
			fmt.Fprintf(c.stderr, "following events (position %s)\n", pos)
			said = true
		}
	}
	q.OnRetry = func(err error, wait time.Duration) {
		fmt.Fprintf(c.stderr, "stream interrupted (%v); reconnecting in %s\n", err, wait)
	}
	err := bus.Follow(ctx, q, func(ev lightbus.FollowedEvent) error {
		if err := p.print(ev.StoredEvent); err != nil {
			return err
		}
		return p.flush()
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// eventPrinter prints events in one of the formats.
type eventPrinter struct {
	w      io.Writer
	format string
	table  *tabwriter.Writer
	header bool
	enc    *json.Encoder
}

func newEventPrinter(w io.Writer, format string) *eventPrinter {
	p := &eventPrinter{w: w, format: format}
	switch format {
	case formatHuman:
		// Minimum widths keep the rows of a followed stream, flushed one
		// by one, aligned as long as names are not longer.
		p.table = tabwriter.NewWriter(w, 12, 4, 2, ' ', 0)
	default:
		p.enc = json.NewEncoder(w)
		p.enc.SetEscapeHTML(false)
		if format == formatPretty {
			p.enc.SetIndent("", "  ")
		}
	}
	return p
}

func (p *eventPrinter) print(ev lightbus.StoredEvent) error {
	if p.table == nil {
		return p.enc.Encode(ev)
	}
	if !p.header {
		row(p.table, pad("ID", 36), pad("CREATED", 20), pad("EVENT", 32), "PARAMS")
		p.header = true
	}
	row(p.table, pad(ev.ID, 36), pad(formatTime(ev.CreatedAt), 20), pad(ev.API+"."+ev.Event, 32), compactJSON(ev.Params, 80))
	return nil
}

func (p *eventPrinter) flush() error {
	if p.table == nil {
		return nil
	}
	return p.table.Flush()
}

// pad widens s to n characters, so that rows flushed one at a time line up.
func pad(s string, n int) string {
	for len(s) < n {
		s += " "
	}
	return s
}
