package main

import (
	"strconv"

	"github.com/spf13/cobra"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
)

// fireCmd is `lightbus fire`.
func (c *cli) fireCmd() *cobra.Command {
	var key string
	cmd := &cobra.Command{
		Use:   "fire API.EVENT [PARAMS|-]",
		Short: "Fire an event",
		Long: `fire fires the event API.EVENT with PARAMS, a JSON object (- reads it from
standard input; none sends {}). When it returns, the gateway has stored the
event and queued its deliveries.`,
		Example: `  lightbus fire customers.new_customer '{"name": "Sally", "email": "sally@example.com"}'
  lightbus fire auth.user_registered '{"username": "sally", "email": "sally@example.com"}' --idempotency-key sally`,
		Args:              cobra.RangeArgs(1, 2),
		ValidArgsFunction: c.completeEvents,
		RunE: func(cmd *cobra.Command, args []string) error {
			params, err := c.params(args[1:])
			if err != nil {
				return err
			}
			bus, err := c.bus()
			if err != nil {
				return err
			}
			var opts []lightbus.CallOption
			if key != "" {
				opts = append(opts, lightbus.IdempotencyKey(key))
			}
			res, err := bus.Fire(cmd.Context(), args[0], params, opts...)
			if err != nil {
				return err
			}
			for _, w := range res.Warnings {
				c.progress("lightbus: warning: %s\n", w)
			}
			if c.jsonOut {
				return c.printJSON(res)
			}
			w := c.table()
			row(w, "ID", res.ID)
			row(w, "EVENT", res.API+"."+res.Event)
			row(w, "CREATED", formatTime(res.CreatedAt))
			row(w, "DELIVERIES", strconv.Itoa(res.Deliveries))
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&key, "idempotency-key", "", "fire at most once with this key (default: a fresh key)")
	return cmd
}
