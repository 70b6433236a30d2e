package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDeadList(t *testing.T) {
	t.Parallel()

	tb, g := gatewayBundle(t)
	err := tb.execute(t, "dead", "list", "support.case.notify", "--event", "new_customer", "--since", "2026-11-25T09:00:00Z", "--limit", "1")
	if err != nil {
		t.Fatal(err)
	}
	if r := g.last(); r.Path != "/v1/listeners/support.case/notify/dead" || !strings.Contains(r.Query, "event=new_customer") ||
		!strings.Contains(r.Query, "limit=1") || !strings.Contains(r.Query, "since=2026-11-25T09%3A00%3A00Z") {
		t.Errorf("request %s?%s", r.Path, r.Query)
	}
	out := tb.stdout.String()
	for _, want := range []string{"ID  DIED", "42  2026-11-25T10:01:01Z  customers.new_customer  " + fakeEventID + "  2         listener answered 500: boom"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if got := tb.stderr.String(); got != "more: --before 42\n" {
		t.Errorf("stderr = %q", got)
	}
	for _, args := range [][]string{
		{"dead", "list", "nodot"},
		{"dead", "list", "a.b", "--since", "yesterday"},
		{"dead", "list", "a.b", "--limit", "5000"},
	} {
		if err := tb.execute(t, args...); err == nil {
			t.Errorf("%q succeeded", args)
		}
	}
}

func TestDeadShowAndRedrive(t *testing.T) {
	t.Parallel()

	tb, _ := gatewayBundle(t)
	if err := tb.execute(t, "dead", "show", "42"); err != nil {
		t.Fatal(err)
	}
	out := tb.stdout.String()
	for _, want := range []string{"LISTENER   support.case.notify", "STATE      dead", "ATTEMPTS   2/2",
		"1        2026-11-25T10:00:01Z  -       deliver to http://x: connection refused",
		"2        2026-11-25T10:01:01Z  500     listener answered 500: boom"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}

	tb2, _ := gatewayBundle(t)
	if err := tb2.execute(t, "--json", "dead", "redrive", "42"); err != nil {
		t.Fatal(err)
	}
	var d struct {
		ID    int64
		State string
	}
	if err := json.Unmarshal([]byte(tb2.stdout.String()), &d); err != nil || d.ID != 42 || d.State != "pending" {
		t.Errorf("redrive output %q (%v)", tb2.stdout.String(), err)
	}

	tb3, g3 := gatewayBundle(t)
	if err := tb3.execute(t, "dead", "redrive", "--all", "support.case.notify", "--api", "customers"); err != nil {
		t.Fatal(err)
	}
	if r := g3.last(); r.Method != "POST" || r.Path != "/v1/listeners/support.case/notify/redrive" || r.Body != `{"api":"customers"}` {
		t.Errorf("request %s %s %s", r.Method, r.Path, r.Body)
	}
	if got := tb3.stdout.String(); got != "redriven: 7\n" {
		t.Errorf("stdout = %q", got)
	}

	for _, args := range [][]string{
		{"dead", "show", "x"},
		{"dead", "redrive", "0"},
		{"dead", "redrive", "42", "--event", "e"}, // filters need --all
		{"dead", "redrive", "--all", "nodot"},
		{"dead", "show", "7"}, // unknown: 404
	} {
		if err := tb.execute(t, args...); err == nil {
			t.Errorf("%q succeeded", args)
		}
	}
}

func TestListeners(t *testing.T) {
	t.Parallel()

	tb, _ := gatewayBundle(t)
	if err := tb.execute(t, "listeners"); err != nil {
		t.Fatal(err)
	}
	want := "LISTENER                EVENTS                  ENDPOINTS  PENDING  IN FLIGHT  DEAD  LAG     REPLAY\n" +
		"auth.create_user        customers.new_customer  2          3        1          4     1m1.5s  3 running, 500 queued\n" +
		"mail.welcome (ordered)  auth.*                  0          0        0          0     -       -\n"
	if got := tb.stdout.String(); got != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", got, want)
	}
}

func TestReplay(t *testing.T) {
	t.Parallel()

	tb, g := gatewayBundle(t)
	if err := tb.execute(t, "replay", "support.case.notify", "--since", "earliest"); err != nil {
		t.Fatal(err)
	}
	if r := g.last(); r.Method != "POST" || r.Path != "/v1/listeners/support.case/notify/replay" || r.Body != `{"since":"earliest"}` {
		t.Errorf("request %s %s %s", r.Method, r.Path, r.Body)
	}
	if got := tb.stdout.String(); got != "replay 3 of support.case.notify started; follow it with: lightbus listeners\n" {
		t.Errorf("stdout = %q", got)
	}
	for _, args := range [][]string{{"replay", "support.case.notify"}, {"replay", "nodot", "--since", "earliest"}} {
		if err := tb.execute(t, args...); err == nil {
			t.Errorf("%q succeeded", args)
		}
	}
}

func TestListenersDelete(t *testing.T) {
	t.Parallel()

	tb, g := gatewayBundle(t)
	if err := tb.execute(t, "listeners", "delete", "support.case.notify"); err != nil {
		t.Fatal(err)
	}
	if r := g.last(); r.Method != "DELETE" || r.Path != "/v1/listeners/support.case/notify" {
		t.Errorf("request %s %s", r.Method, r.Path)
	}
	if got := tb.stdout.String(); got != "listener group support.case.notify removed\n" {
		t.Errorf("stdout = %q", got)
	}
	if err := tb.execute(t, "listeners", "delete", "support.case.unknown"); err == nil {
		t.Error("deleting an unknown group succeeded")
	}

	tb, _ = gatewayBundle(t)
	if err := tb.execute(t, "listeners", "delete", "support.case.notify", "--json"); err != nil {
		t.Fatal(err)
	}
	var out map[string]string
	if err := json.Unmarshal([]byte(tb.stdout.String()), &out); err != nil || out["service"] != "support.case" ||
		out["listener"] != "notify" || out["removed"] != "support.case.notify" {
		t.Errorf("--json: %s (%v)", tb.stdout.String(), err)
	}
}
