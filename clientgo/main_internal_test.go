package lightbus

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// watchedPipes keeps the read ends handed to watchParent reachable: the
// watcher closes their descriptor, and a finalizer of theirs would close
// the same number again, by then another test's socket.
var watchedPipes []*os.File

func TestWatchParent(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("lightbus run hands no pipe to workers on Windows")
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	watchedPipes = append(watchedPipes, r)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	if err := watchParent(strconv.Itoa(int(r.Fd())), cancel); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("data is ignored")); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("cancelled while the parent holds the pipe")
	}
	w.Close()
	select {
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("not cancelled after the pipe closed")
	}
	if !errors.Is(context.Cause(ctx), errParentGone) {
		t.Errorf("cause %v, want errParentGone", context.Cause(ctx))
	}
	b := &Bus{shutdownTimeout: time.Minute}
	if got := b.stopTimeout(ctx); got != orphanTimeout {
		t.Errorf("stop timeout of an orphan %s, want %s", got, orphanTimeout)
	}
	if got := b.stopTimeout(context.Background()); got != time.Minute {
		t.Errorf("stop timeout %s, want the shutdown timeout", got)
	}

	for _, bad := range []string{"x", "1", "-3"} {
		if err := watchParent(bad, cancel); err == nil {
			t.Errorf("watchParent(%q) succeeded", bad)
		}
	}
	if err := watchParent("", cancel); err != nil {
		t.Errorf("watchParent without a pipe: %v", err)
	}
}
