package dispatch

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/webhook"
)

// batchStore answers DeliveryTargets with one endpoint, its policy and the
// events asked for, and keeps what CompleteBatch is given.
type batchStore struct {
	url    string
	policy gateway.DeliveryPolicy

	mu       sync.Mutex
	failed   []FailedDelivery
	rest     []string
	complete int
}

func (s *batchStore) DeliveryTargets(_ context.Context, ids []string, _, _ string) (*gateway.DeliveryTarget, []gateway.Event, error) {
	events := make([]gateway.Event, len(ids))
	for i, id := range ids {
		events[i] = gateway.Event{ID: id, API: "a", Name: "e", Params: json.RawMessage(`{}`), CreatedAt: time.Now()}
	}
	return &gateway.DeliveryTarget{Secret: webhook.NewSecret(), Policy: s.policy,
		Endpoints: []gateway.Endpoint{{WorkerID: "w1", URL: s.url}}}, events, nil
}

func (s *batchStore) CompleteBatch(_ context.Context, _ *river.Job[DeliveryBatchArgs], failed []FailedDelivery, rest []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed, s.rest = failed, rest
	s.complete++
	return nil
}

func (s *batchStore) RemoveEndpoint(context.Context, string, string, string) error { return nil }

func (s *batchStore) DeliveryTarget(context.Context, string, string, string) (*gateway.DeliveryTarget, error) {
	return nil, gateway.ErrNotFound
}

// countingObserver counts outcomes.
type countingObserver struct {
	mu  sync.Mutex
	got map[string]int
}

func (o *countingObserver) DeliveryDone(_, _, outcome string, _, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got[outcome]++
}

// TestBatchDelivererWithinMaxInFlight: a batch of 12 events to a group with
// max_in_flight 3 makes at most 3 requests at once, each as a delivery's
// first attempt; the events the listener refuses come back as failed
// deliveries, with their outcome and retry time (Retry-After when given),
// dead when the batch's max_attempts is 1.
func TestBatchDelivererWithinMaxInFlight(t *testing.T) {
	t.Parallel()
	var inFlight, peak atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(10 * time.Millisecond)
		if r.Header.Get("Lightbus-Attempt") != "1" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		// Events ending in 0 or 5 are refused, 5 with a Retry-After.
		switch id := r.Header.Get("Webhook-Id"); id[len(id)-1] {
		case '0':
			w.WriteHeader(http.StatusInternalServerError)
		case '5':
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer srv.Close()

	for _, maxAttempts := range []int{5, 1} {
		t.Run("max_attempts "+strconv.Itoa(maxAttempts), func(t *testing.T) {
			store := &batchStore{url: srv.URL, policy: gateway.DeliveryPolicy{MaxInFlight: 3}}
			obs := &countingObserver{got: map[string]int{}}
			d := NewDeliverer(DelivererConfig{Store: store, Observer: obs, Timeout: 10 * time.Second,
				Retry: gateway.RetryPolicy{Base: time.Minute, Max: time.Hour}})
			b := NewBatchDeliverer(d, store)
			var ids []string
			for i := range 12 {
				ids = append(ids, fmt.Sprintf("01936f6e-0000-7000-8000-0000000000%02d", i))
			}
			job := &river.Job[DeliveryBatchArgs]{JobRow: &rivertype.JobRow{Attempt: 1},
				Args: DeliveryBatchArgs{Service: "s", Listener: "l", EventIDs: ids, MaxAttempts: maxAttempts}}
			if err := b.Work(context.Background(), job); err != nil {
				t.Fatal(err)
			}
			if p := peak.Swap(0); p > 3 || p < 2 {
				t.Errorf("peak requests in flight %d, want up to max_in_flight (3)", p)
			}
			if store.complete != 1 || len(store.rest) != 0 || len(store.failed) != 3 {
				t.Fatalf("completed %d times, failed %+v, rest %v; want once, with events 0, 5 and 10 failed", store.complete, store.failed, store.rest)
			}
			for _, f := range store.failed {
				o := f.Output.Attempts
				if f.Attempt != 1 || f.MaxAttempts != maxAttempts || f.Dead != (maxAttempts == 1) || len(o) != 1 || o[0].Attempt != 1 {
					t.Errorf("failed delivery %+v", f)
				}
				wait := time.Until(f.RetryAt)
				switch f.Args.EventID[len(f.Args.EventID)-1] {
				case '5':
					if o[0].Status != 503 || wait < 100*time.Second || wait > 121*time.Second {
						t.Errorf("event 5: %+v, retry in %s, want 503 retried after Retry-After 120s", f, wait)
					}
				default:
					if o[0].Status != 500 || wait < 50*time.Second || wait > 121*time.Second {
						t.Errorf("%s: %+v, retry in %s, want 500 retried after the group's backoff (1m)", f.Args.EventID, f, wait)
					}
				}
			}
			want := map[string]int{AttemptDelivered: 9, AttemptRetried: 3}
			if maxAttempts == 1 {
				want = map[string]int{AttemptDelivered: 9, AttemptDead: 3}
			}
			if fmt.Sprint(obs.got) != fmt.Sprint(want) {
				t.Errorf("observed %v, want %v", obs.got, want)
			}
			if len(d.inFlight) != 0 {
				t.Errorf("slots left taken: %v", d.inFlight)
			}
		})
	}
}
