package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
)

// callCmd is `lightbus call`.
func (c *cli) callCmd() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "call API.METHOD [PARAMS|-]",
		Short: "Call an RPC and print its result",
		Long: `call calls the RPC API.METHOD with PARAMS, a JSON object (- reads it from
standard input; none sends {}), and prints its result as JSON. --timeout
overrides the API's default deadline.`,
		Example: `  lightbus call auth.check_password '{"username": "admin", "password": "secret"}' --timeout 2s
  lightbus call auth.create_user '{"username": "sally", "email": "sally@example.com"}'`,
		Args:              cobra.RangeArgs(1, 2),
		ValidArgsFunction: c.completeRPCs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if timeout < 0 {
				return fmt.Errorf("call: negative --timeout %s", timeout)
			}
			params, err := c.params(args[1:])
			if err != nil {
				return err
			}
			bus, err := c.bus()
			if err != nil {
				return err
			}
			var opts []lightbus.CallOption
			if timeout > 0 {
				opts = append(opts, lightbus.Timeout(timeout))
			}
			var result json.RawMessage
			if err := bus.Call(cmd.Context(), args[0], params, &result, opts...); err != nil {
				return err
			}
			if len(result) == 0 {
				result = json.RawMessage("null")
			}
			if c.jsonOut {
				return c.printJSON(struct {
					Result json.RawMessage `json:"result"`
				}{result})
			}
			_, err = fmt.Fprintln(c.stdout, indentJSON(result))
			return err
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "the call's deadline, e.g. 2s (default: the API's)")
	return cmd
}
