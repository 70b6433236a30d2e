package main

import (
	"strings"
	"testing"
)

func TestBenchOptionErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "fire", "--duration", "0"}, "bounded"},
		{[]string{"bench", "fire", "--groups", "1,x", "--requests", "1"}, "--groups"},
		{[]string{"bench", "warp", "--requests", "1"}, "unknown scenario"},
		{[]string{"bench", "baseline", "--requests", "1"}, "--database-url"},
		{[]string{"bench", "fire", "-c", "0", "--requests", "1"}, "--concurrency"},
		{[]string{"bench", "deliver", "--requests", "1"}, "--rate"},
	} {
		tb := newTestBundle(t, t.TempDir())
		err := tb.execute(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
}
