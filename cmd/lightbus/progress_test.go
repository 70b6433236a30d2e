package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestRenderBar(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		done, total int64
		want        string
	}{
		{0, 10, "x [..............................]   0% 0/10 3s"},
		{3, 10, "x [#########.....................]  30% 3/10 3s"},
		{10, 10, "x [##############################] 100% 10/10 3s"},
		{12, 10, "x [##############################] 100% 10/10 3s"}, // never past the end
		{-1, 10, "x [..............................]   0% 0/10 3s"},
		{1200, 0, "x 1200 3s"}, // no total: the count alone
	} {
		if got := renderBar("x", tc.done, tc.total, 3500*time.Millisecond); got != tc.want {
			t.Errorf("renderBar(%d, %d) = %q, want %q", tc.done, tc.total, got, tc.want)
		}
	}
}

func TestProgressLine(t *testing.T) {
	t.Parallel()

	var b bytes.Buffer
	p := &progressLine{w: &b}
	p.draw("abcdef")
	p.draw("xy") // blanks what the longer line left
	p.clear()
	if want := "\rabcdef\rxy    \r  \r"; b.String() != want {
		t.Errorf("drawn %q, want %q", b.String(), want)
	}
	(&progressLine{}).draw("nothing") // no writer: no panic, nothing drawn
	if terminalWriter(&b) != nil {
		t.Error("a buffer is taken for a terminal")
	}
}

// replayGateway answers a replay of support.case.notify that has queued 500
// deliveries at the first look and is done with 1200 at the next.
func replayGateway(t *testing.T) string {
	t.Helper()
	var looks atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		replay := `{"id": 3, "service": "support.case", "listener": "notify", "until": "2026-11-25T10:00:00Z",
			"redeliver": true, "queued": %d, "state": %q, "created_at": "2026-11-25T10:00:00Z"}`
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/listeners/support.case/notify/replay":
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, sprintf(replay, 0, "running"))
		case r.Method == http.MethodGet && r.URL.Path == "/v1/listeners":
			queued, state := 500, "running"
			if looks.Add(1) > 1 {
				queued, state = 1200, "done"
			}
			io.WriteString(w, `{"listeners": [{"service": "support.case", "name": "notify", "events": ["a.b"], "endpoints": 1,
				"policy": {}, "pending": 0, "in_flight": 0, "dead": 0, "lag_ms": 0, "replay": `+sprintf(replay, queued, state)+`}]}`)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestReplayWait(t *testing.T) {
	t.Parallel()

	t.Run("NotATerminal", func(t *testing.T) {
		t.Parallel()
		tb := newTestBundle(t, t.TempDir())
		tb.env["LIGHTBUS_URL"] = replayGateway(t)
		if err := tb.execute(t, "replay", "support.case.notify", "--since", "earliest", "--wait"); err != nil {
			t.Fatal(err)
		}
		if got := tb.stdout.String(); got != "replay 3 of support.case.notify done: 1200 deliveries queued\n" {
			t.Errorf("stdout = %q", got)
		}
		if got := tb.stderr.String(); got != "" {
			t.Errorf("stderr = %q, want nothing when it is not a terminal", got)
		}
	})

	t.Run("Terminal", func(t *testing.T) {
		t.Parallel()
		tb := newTestBundle(t, t.TempDir())
		tb.env["LIGHTBUS_URL"] = replayGateway(t)
		tb.cli.progressTo = tb.stderr
		if err := tb.execute(t, "replay", "support.case.notify", "--since", "earliest", "--wait"); err != nil {
			t.Fatal(err)
		}
		got := tb.stderr.String()
		for _, want := range []string{"\rreplay 3 of support.case.notify: queued 0 0s", "\rreplay 3 of support.case.notify: queued 500 "} {
			if !strings.Contains(got, want) {
				t.Errorf("stderr %q lacks %q", got, want)
			}
		}
		if !strings.HasSuffix(got, "\r") || strings.Contains(got, "\n") {
			t.Errorf("the progress line is not cleared at the end: %q", got)
		}
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		tb := newTestBundle(t, t.TempDir())
		tb.env["LIGHTBUS_URL"] = replayGateway(t)
		tb.cli.progressTo = tb.stderr // a terminal, but --json draws nothing
		if err := tb.execute(t, "replay", "support.case.notify", "--since", "earliest", "--wait", "--json"); err != nil {
			t.Fatal(err)
		}
		var rp struct {
			Queued int64  `json:"queued"`
			State  string `json:"state"`
		}
		if err := json.Unmarshal([]byte(tb.stdout.String()), &rp); err != nil || rp.Queued != 1200 || rp.State != "done" {
			t.Errorf("stdout %s (%v)", tb.stdout.String(), err)
		}
		if got := tb.stderr.String(); got != "" {
			t.Errorf("stderr = %q with --json", got)
		}
	})
}

// A bulk redrive draws nothing when standard error is not a terminal, and
// a bar when it is.
func TestRedriveAllProgress(t *testing.T) {
	t.Parallel()

	tb, _ := gatewayBundle(t)
	if err := tb.execute(t, "dead", "redrive", "--all", "support.case.notify"); err != nil {
		t.Fatal(err)
	}
	if tb.stdout.String() != "redriven: 7\n" || tb.stderr.String() != "" {
		t.Errorf("stdout %q, stderr %q", tb.stdout.String(), tb.stderr.String())
	}

	tb, _ = gatewayBundle(t)
	tb.cli.progressTo = tb.stderr
	if err := tb.execute(t, "dead", "redrive", "--all", "auth.create_user"); err != nil {
		t.Fatal(err)
	}
	// The fake's group has 4 dead deliveries at the start.
	if got := tb.stderr.String(); !strings.HasPrefix(got, "\rredriving auth.create_user [..............................]   0% 0/4 0s") ||
		!strings.HasSuffix(got, "\r") {
		t.Errorf("stderr = %q", got)
	}
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
