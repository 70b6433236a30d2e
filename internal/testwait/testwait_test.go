package testwait

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// recorder is a testing.TB whose Fatalf records the message instead of
// ending the test.
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestForReturnsOnceTheConditionHolds(t *testing.T) {
	t.Parallel()
	r := &recorder{TB: t}
	calls := 0
	For(r, time.Second, "the third call", func() bool { calls++; return calls == 3 })
	if r.failed != "" || calls != 3 {
		t.Fatalf("after %d calls: failed %q, want success at the third", calls, r.failed)
	}
}

func TestForFailsNamingWhatItAwaited(t *testing.T) {
	t.Parallel()
	r := &recorder{TB: t}
	start := time.Now()
	Poller{Interval: time.Millisecond}.For(r, 50*time.Millisecond, "nothing", func() bool { return false })
	if took := time.Since(start); took < 50*time.Millisecond {
		t.Errorf("gave up after %s, before the 50ms timeout", took)
	}
	if !strings.Contains(r.failed, "timed out after 50ms waiting for nothing") {
		t.Fatalf("failure %q does not name the timeout and what was awaited", r.failed)
	}
}
