package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// completeTimeout bounds the gateway look-up of a dynamic completion: a
// shell waiting on a Tab must not hang on a gateway that does not answer.
const completeTimeout = 2 * time.Second

// The dynamic completions below ask the gateway at --url with --token (or
// $LIGHTBUS_URL, $LIGHTBUS_TOKEN) for names. Any failure (no gateway, no
// key, a timeout) completes nothing, silently: a Tab never prints an error.

// completeEvents completes the first argument with API.EVENT names from the
// gateway's schemas (GET /v1/schema).
func (c *cli) completeEvents(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return c.completeSchemaNames(cmd, args, toComplete, "events")
}

// completeRPCs completes the first argument with API.METHOD names from the
// gateway's schemas.
func (c *cli) completeRPCs(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return c.completeSchemaNames(cmd, args, toComplete, "rpcs")
}

// completeSchemaNames completes API.NAME from the member ("events" or
// "rpcs") of every current schema document.
func (c *cli) completeSchemaNames(cmd *cobra.Command, args []string, toComplete, member string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completeTimeout)
	defer cancel()
	bus, err := c.bus()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	schemas, err := bus.Schemas(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, s := range schemas {
		var doc map[string]json.RawMessage
		if json.Unmarshal(s.Document, &doc) != nil {
			continue
		}
		var members map[string]json.RawMessage
		if json.Unmarshal(doc[member], &members) != nil {
			continue
		}
		for name := range members {
			names = append(names, s.API+"."+name)
		}
	}
	return matching(names, toComplete), cobra.ShellCompDirectiveNoFileComp
}

// completeGroups completes the first argument with SERVICE.LISTENER names
// of the gateway's listener groups (GET /v1/listeners).
func (c *cli) completeGroups(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), completeTimeout)
	defer cancel()
	bus, err := c.bus()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	groups, err := bus.Listeners(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	names := make([]string, 0, len(groups))
	for _, g := range groups {
		names = append(names, g.Service+"."+g.Name)
	}
	return matching(names, toComplete), cobra.ShellCompDirectiveNoFileComp
}

// matching returns the names that start with prefix, sorted.
func matching(names []string, prefix string) []cobra.Completion {
	var out []cobra.Completion
	for _, n := range names {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
