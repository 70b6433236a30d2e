package bench

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Load bounds and shapes one measured load.
type Load struct {
	// Concurrency is the number of requests in flight at most.
	Concurrency int
	// Rate, when positive, sends at this many operations a second (open
	// loop); latency is then measured from each operation's scheduled start,
	// so a stalled server is not hidden by the load slowing down with it.
	// Zero sends as fast as Concurrency allows (closed loop).
	Rate float64
	// Requests stops after this many operations; zero for no count bound.
	Requests int
	// Duration stops after this long; zero for no time bound.
	Duration time.Duration
}

// Op is one operation of a load: it returns the number of items (events)
// it carried.
type Op func(ctx context.Context, i int) (items int, err error)

// Drive runs op under load and summarizes it. label names it on the
// progress line, printed to progress (may be nil) about once a second.
func Drive(ctx context.Context, load Load, label string, progress io.Writer, op Op) Summary {
	conc := max(load.Concurrency, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if load.Duration > 0 {
		var c2 context.CancelFunc
		ctx, c2 = context.WithTimeout(ctx, load.Duration)
		defer c2()
	}

	var (
		next     atomic.Int64
		done     atomic.Int64
		nItems   atomic.Int64
		nErrors  atomic.Int64
		errOnce  sync.Once
		firstErr string
	)
	lat := make([][]time.Duration, conc)
	start := time.Now()

	// take returns the next operation's index and scheduled start, or false
	// when the load is over.
	var take func() (int, time.Time, bool)
	if load.Rate > 0 {
		interval := time.Duration(float64(time.Second) / load.Rate)
		take = func() (int, time.Time, bool) {
			i := int(next.Add(1) - 1)
			if load.Requests > 0 && i >= load.Requests {
				return 0, time.Time{}, false
			}
			at := start.Add(time.Duration(i) * interval)
			if d := time.Until(at); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					return 0, time.Time{}, false
				case <-t.C:
				}
			}
			return i, at, ctx.Err() == nil
		}
	} else {
		take = func() (int, time.Time, bool) {
			i := int(next.Add(1) - 1)
			if load.Requests > 0 && i >= load.Requests {
				return 0, time.Time{}, false
			}
			return i, time.Now(), ctx.Err() == nil
		}
	}

	stopProgress := make(chan struct{})
	var progressDone sync.WaitGroup
	if progress != nil {
		progressDone.Add(1)
		go func() {
			defer progressDone.Done()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-stopProgress:
					fmt.Fprint(progress, "\r\033[K")
					return
				case <-tick.C:
					el := time.Since(start).Seconds()
					fmt.Fprintf(progress, "\r\033[K%s: %d ops, %d errors, %.0f ops/s", label, done.Load(), nErrors.Load(), float64(done.Load())/el)
				}
			}
		}()
	}

	var wg sync.WaitGroup
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i, at, ok := take()
				if !ok {
					return
				}
				// The operation itself is not cut short by the load's end:
				// a request in flight finishes and counts.
				n, err := op(context.WithoutCancel(ctx), i)
				d := time.Since(at)
				done.Add(1)
				if err != nil {
					nErrors.Add(1)
					errOnce.Do(func() { firstErr = err.Error() })
					continue
				}
				nItems.Add(int64(n))
				lat[w] = append(lat[w], d)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopProgress)
	progressDone.Wait()

	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	return Summarize(all, int(nItems.Load()), int(nErrors.Load()), firstErr, elapsed)
}
