// Package testwait waits in tests for a condition that becomes true on its
// own time: a delivery completing, a worker registering, a process exiting.
package testwait

import (
	"testing"
	"time"
)

// Interval is how often For checks its condition.
const Interval = 20 * time.Millisecond

// Poller checks a condition every Interval.
type Poller struct {
	Interval time.Duration
}

// For calls cond every p.Interval until it reports true. If timeout passes
// first, it fails t, naming what it waited for.
func (p Poller) For(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
			return
		}
		time.Sleep(p.Interval)
	}
}

// For calls cond every Interval until it reports true. If timeout passes
// first, it fails t, naming what it waited for.
func For(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	Poller{Interval: Interval}.For(t, timeout, what, cond)
}
