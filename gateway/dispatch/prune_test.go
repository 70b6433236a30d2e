package dispatch

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// pruneCalls records what a Pruner asks of its store, in order.
type pruneCalls struct {
	calls   []string
	deletes []int // what each PruneEvents answers, in turn
}

func (s *pruneCalls) PruneEvents(_ context.Context, cutoff time.Time, limit int, undelivered bool) (int, error) {
	s.calls = append(s.calls, fmt.Sprintf("delete %d %t", limit, undelivered))
	n := 0
	if len(s.deletes) > 0 {
		n, s.deletes = s.deletes[0], s.deletes[1:]
	}
	return n, nil
}

func (s *pruneCalls) EnsurePartitions(_ context.Context, now time.Time, width time.Duration, ahead int) (int, error) {
	s.calls = append(s.calls, fmt.Sprintf("ensure %s %d", width, ahead))
	return 0, nil
}

func (s *pruneCalls) DropPartitions(_ context.Context, cutoff time.Time, undelivered bool) (int, int, error) {
	s.calls = append(s.calls, fmt.Sprintf("drop %t", undelivered))
	return 0, 0, nil
}

// A prune run creates the partitions ahead, drops the old ones, then
// deletes what is left in batches until a batch comes back short.
func TestPrunerOrder(t *testing.T) {
	t.Parallel()
	store := &pruneCalls{deletes: []int{10, 10, 3}}
	w := NewPruner(PrunerConfig{Batch: 10, Partition: 6 * time.Hour, Retention: time.Hour, Store: store, Undelivered: true})
	if err := w.Work(context.Background(), &river.Job[PruneArgs]{JobRow: &rivertype.JobRow{}}); err != nil {
		t.Fatal(err)
	}
	want := "ensure 6h0m0s 2, drop true, delete 10 true, delete 10 true, delete 10 true"
	if got := strings.Join(store.calls, ", "); got != want {
		t.Fatalf("calls %q, want %q", got, want)
	}
	// The default width is a day.
	store = &pruneCalls{}
	NewPruner(PrunerConfig{Retention: time.Hour, Store: store}).Work(context.Background(), &river.Job[PruneArgs]{JobRow: &rivertype.JobRow{}})
	if !strings.HasPrefix(strings.Join(store.calls, ", "), "ensure 24h0m0s 2, drop false") {
		t.Fatalf("calls %q with the defaults", store.calls)
	}
}
