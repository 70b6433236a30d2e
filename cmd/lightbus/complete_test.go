package main

import (
	"strings"
	"testing"
)

func TestCompletionScript(t *testing.T) {
	t.Parallel()

	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		tb := newTestBundle(t, t.TempDir())
		if err := tb.execute(t, "completion", shell); err != nil {
			t.Fatalf("completion %s: %v", shell, err)
		}
		if out := tb.stdout.String(); !strings.Contains(out, "lightbus") || !strings.Contains(out, "__complete") {
			t.Errorf("completion %s printed no completion script:\n%.300s", shell, out)
		}
	}
}

// complete runs cobra's hidden __complete command for args and returns the
// completions it printed, without the closing directive line.
func complete(t *testing.T, tb *testBundle, args ...string) []string {
	t.Helper()
	tb.stdout.mu.Lock()
	tb.stdout.buf.Reset()
	tb.stdout.mu.Unlock()
	if err := tb.execute(t, append([]string{"__complete"}, args...)...); err != nil {
		t.Fatalf("__complete %q: %v", args, err)
	}
	lines := strings.Split(strings.TrimSpace(tb.stdout.String()), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], ":") {
		t.Fatalf("__complete %q printed no directive: %q", args, lines)
	}
	return lines[:len(lines)-1]
}

func TestDynamicCompletion(t *testing.T) {
	t.Parallel()

	tb, _ := gatewayBundle(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"fire", ""}, "auth.user_registered customers.new_customer"},
		{[]string{"fire", "cust"}, "customers.new_customer"},
		{[]string{"fire", "auth.user_registered", ""}, ""},
		{[]string{"call", ""}, ""}, // the fake schemas declare no RPC
		{[]string{"dead", "list", ""}, "auth.create_user mail.welcome"},
		{[]string{"dead", "redrive", "--all", "m"}, "mail.welcome"},
		{[]string{"replay", "auth"}, "auth.create_user"},
		{[]string{"listeners", "delete", ""}, "auth.create_user mail.welcome"},
	} {
		if got := strings.Join(complete(t, tb, tc.args...), " "); got != tc.want {
			t.Errorf("__complete %q = %q, want %q", tc.args, got, tc.want)
		}
	}

	// No gateway: nothing, silently.
	tb = newTestBundle(t, t.TempDir())
	tb.env["LIGHTBUS_URL"] = "http://127.0.0.1:1"
	if got := complete(t, tb, "dead", "list", ""); len(got) != 0 {
		t.Errorf("completions without a gateway: %q", got)
	}
	if strings.Contains(tb.stderr.String(), "refused") {
		t.Errorf("a failed look-up printed an error: %q", tb.stderr.String())
	}
}
