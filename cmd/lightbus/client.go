package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/internal/cliout"
)

// bus returns a client of the gateway at --url, with the API key of
// --token or $LIGHTBUS_TOKEN.
func (c *cli) bus() (*lightbus.Bus, error) {
	return lightbus.Create(lightbus.WithURL(c.url), lightbus.WithToken(c.apiToken()))
}

// apiToken returns --token, else $LIGHTBUS_TOKEN.
func (c *cli) apiToken() string {
	if c.token != "" {
		return c.token
	}
	return c.getenv(lightbus.EnvToken)
}

// params returns the JSON parameters of fire and call: args[0], or standard
// input when it is "-", or {} when there is none.
func (c *cli) params(args []string) (json.RawMessage, error) {
	if len(args) == 0 {
		return json.RawMessage("{}"), nil
	}
	data := []byte(args[0])
	if args[0] == "-" {
		var err error
		if data, err = io.ReadAll(c.stdin); err != nil {
			return nil, fmt.Errorf("reading the parameters from standard input: %w", err)
		}
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("the parameters are not valid JSON: %s", clip(strings.TrimSpace(string(data)), 60))
	}
	return json.RawMessage(data), nil
}

// Every command prints the same way (package cliout): with --json the
// gateway's answer as indented JSON on standard output, for scripts;
// otherwise aligned columns (c.table, row) for people. Notes that are not
// the answer (progress, "more: --before ...") go to standard error.

// printJSON writes v as indented JSON.
func (c *cli) printJSON(v any) error { return cliout.JSON(c.stdout, v) }

// table returns a writer of aligned columns on standard output; Flush it.
func (c *cli) table() *tabwriter.Writer { return cliout.Table(c.stdout) }

// row writes one row of cells to a table.
func row(w io.Writer, cells ...string) { cliout.Row(w, cells...) }

// formatTime renders t in UTC to the second; "-" when zero.
func formatTime(t time.Time) string { return cliout.Time(t) }

// list renders names comma-separated; "-" when none.
func list(names []string) string {
	if len(names) == 0 {
		return "-"
	}
	return strings.Join(names, ",")
}

// compactJSON renders raw JSON on one line, clipped to n characters.
func compactJSON(raw json.RawMessage, n int) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return clip(string(raw), n)
	}
	return clip(b.String(), n)
}

// indentJSON renders raw JSON indented.
func indentJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return string(raw)
	}
	return b.String()
}

// clip shortens s to n runes, ending in "...".
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-3]) + "..."
}
