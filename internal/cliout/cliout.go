// Package cliout is how Lightbus's commands (lightbus, gateway keys) print
// for people and for scripts: aligned columns for people, indented JSON
// with --json for scripts, times in UTC to the second.
package cliout

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// Table returns a writer that aligns the tab-separated cells written to it
// into columns two spaces apart, on w. Write rows with Row; Flush it.
func Table(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// Row writes one row of cells to a Table. Tabs and line breaks inside a
// cell become spaces so that they cannot break the columns.
func Row(w io.Writer, cells ...string) {
	clean := make([]string, len(cells))
	for i, c := range cells {
		clean[i] = cellBreaks.Replace(c)
	}
	fmt.Fprintln(w, strings.Join(clean, "\t"))
}

// cellBreaks turns what would break a table's columns into spaces.
var cellBreaks = strings.NewReplacer("\t", " ", "\n", " ", "\r", " ")

// JSON writes v to w as indented JSON, without escaping <, > and &.
func JSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// Time renders t in UTC to the second; "-" when zero.
func Time(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02T15:04:05Z")
}
