package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/internal/testwait"
	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

// follower is `lightbus inspect --follow --format json` running as its own
// process, its output read as it comes.
type follower struct {
	mu     sync.Mutex
	ids    []string
	stderr []string
}

func (f *follower) lines() ([]string, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.ids...), append([]string(nil), f.stderr...)
}

// startFollower builds the CLI and runs `inspect --follow` against url.
func startFollower(t *testing.T, url string, args ...string) *follower {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "lightbus")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/lightbus-go/lightbus/cmd/lightbus").CombinedOutput(); err != nil {
		t.Fatalf("build the CLI: %v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, append([]string{"--url", url, "inspect", "--follow", "--format", "json"}, args...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Env = append(os.Environ(), "LIGHTBUS_TOKEN=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f := &follower{}
	var wg sync.WaitGroup
	wg.Go(func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var ev lightbus.StoredEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.ID == "" {
				t.Errorf("follower printed %q, not an event: %v", sc.Text(), err)
				continue
			}
			f.mu.Lock()
			f.ids = append(f.ids, ev.ID)
			f.mu.Unlock()
		}
	})
	wg.Go(func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			f.mu.Lock()
			f.stderr = append(f.stderr, sc.Text())
			f.mu.Unlock()
			testWriter{t}.Write([]byte("lightbus inspect: " + sc.Text()))
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if err := cmd.Wait(); err != nil && ctx.Err() == nil {
			t.Errorf("lightbus inspect --follow: %v", err)
		}
	})
	return f
}

// TestInspectFollowAcrossRestart: `lightbus inspect --follow` prints every
// event fired before, during and after a gateway restart exactly once, in
// order: the stream resumes from the last position it printed.
func TestInspectFollowAcrossRestart(t *testing.T) {
	t.Parallel()
	const n, m = 30, 30

	// The restarted gateway listens where the first did.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dbURL := pgtest.NewURL(t)
	cfg := testConfig()
	cfg.Addr = addr
	cfg.StreamHeartbeat = 500 * time.Millisecond
	cfg.StreamPollInterval = 20 * time.Millisecond
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	gw, stop := launchGateway(t, cfg, dbURL, logger)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = stop()
		}
	})

	f := startFollower(t, gw.URL, "--api", "shop", "--where", "n>=0")
	testwait.For(t, 60*time.Second, "the follower to start following", func() bool {
		_, stderr := f.lines()
		return len(stderr) > 0 && strings.HasPrefix(stderr[0], "following events")
	})

	bus, err := lightbus.Create(lightbus.WithURL(gw.URL))
	if err != nil {
		t.Fatal(err)
	}
	var fired []string
	fireSome := func(from, to int) {
		for i := from; i < to; i++ {
			res, err := bus.Fire(t.Context(), "shop.order_placed", map[string]any{"n": i})
			if err != nil {
				t.Fatalf("fire %d: %v", i, err)
			}
			fired = append(fired, res.ID)
			// Not the follower's: filtered out on either side of the restart.
			if _, err := bus.Fire(t.Context(), "shop.order_placed", map[string]any{"n": -1}); err != nil {
				t.Fatal(err)
			}
		}
	}
	fireSome(0, n/2)
	testwait.For(t, 60*time.Second, "the first events printed", func() bool {
		ids, _ := f.lines()
		return len(ids) == n/2
	})
	// A transaction holding an xid holds the stream back: the next events
	// commit but are not sent before the gateway stops.
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	hold, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hold.Exec(t.Context(), `SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	fireSome(n/2, n)
	if err := stop(); err != nil {
		t.Fatalf("gateway stopped with %v", err)
	}
	stopped = true
	ids, _ := f.lines()
	t.Logf("the follower had printed %d of %d events when the gateway stopped", len(ids), n)
	if err := hold.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	gw2, stop2 := launchGateway(t, cfg, dbURL, logger)
	t.Cleanup(func() { _ = stop2() })
	if gw2.URL != gw.URL {
		t.Fatalf("restarted at %s, not %s", gw2.URL, gw.URL)
	}
	fireSome(n, n+m)
	// A last event: once it is printed, nothing fired before it is on its way.
	fireSome(n+m, n+m+1)

	testwait.For(t, 60*time.Second, fmt.Sprintf("the follower to print %d events", n+m+1), func() bool {
		ids, _ := f.lines()
		return len(ids) >= n+m+1
	})
	ids, stderr := f.lines()
	if strings.Join(ids, "\n") != strings.Join(fired, "\n") {
		t.Fatalf("the follower printed %d events:\n%s\nwant each of the %d fired once, in order:\n%s", len(ids), strings.Join(ids, "\n"), len(fired), strings.Join(fired, "\n"))
	}
	reconnected := false
	for _, line := range stderr {
		reconnected = reconnected || strings.HasPrefix(line, "stream interrupted")
	}
	if !reconnected {
		t.Errorf("the follower never reconnected: %q", stderr)
	}
}
