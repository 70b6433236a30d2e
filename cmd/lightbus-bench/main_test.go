package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestBenchOptionErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fire", "--duration", "0"}, "bounded"},
		{[]string{"fire", "--groups", "1,x", "--requests", "1"}, "--groups"},
		{[]string{"warp", "--requests", "1"}, "unknown scenario"},
		{[]string{}, "name a scenario"},
		{[]string{"baseline", "--requests", "1"}, "--database-url"},
		{[]string{"fire", "-c", "0", "--requests", "1"}, "--concurrency"},
		{[]string{"-c", "0", "fire", "--requests", "1"}, "--concurrency"},
		{[]string{"deliver", "--requests", "1"}, "--rate"},
		{[]string{"fire", "--url", "ftp://x", "--requests", "1"}, "--url"},
		{[]string{"fire", "extra", "--requests", "1"}, "unknown command"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), tc.args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error mentioning %q", tc.args, err, tc.want)
		}
		if stdout.Len() != 0 {
			t.Errorf("%v: stdout = %q, want nothing", tc.args, stdout.String())
		}
	}
}

func TestBenchHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"--help"}, {"fire", "--help"}} {
		var stdout, stderr bytes.Buffer
		if err := run(t.Context(), args, &stdout, &stderr); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		for _, want := range []string{"--database-url", "--groups", "--url", "--json"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("%v: help lacks %s:\n%s", args, want, stdout.String())
			}
		}
	}
}
