package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/lightbus-go/lightbus/internal/testwait"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/webhook"
)

func TestNewDeliveryRequest(t *testing.T) {
	t.Parallel()

	params := json.RawMessage(`{"name":  "Sally"}`) // spacing kept byte for byte
	ev := &gateway.Event{ID: "01936f6e-0000-7000-8000-000000000001", API: "customers", Name: "new_customer", Params: params,
		IdempotencyKey: "order-42", CreatedAt: time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)}
	secret := webhook.NewSecret()
	now := time.Unix(1764064800, 0)
	req, err := NewDeliveryRequest(context.Background(), "http://127.0.0.1:9/lightbus/events/create_user", ev, secret, 3, "auth.create_user", now)
	if err != nil {
		t.Fatal(err)
	}
	wantSig, _ := webhook.SignSecret(secret, ev.ID, "1764064800", params)
	want := map[string]string{
		"Content-Type":      "application/json",
		"Ce-Specversion":    "1.0",
		"Ce-Id":             ev.ID,
		"Ce-Source":         "/lightbus/customers",
		"Ce-Type":           "customers.new_customer",
		"Ce-Time":           "2026-11-25T10:00:00.123456Z",
		"Webhook-Id":        ev.ID,
		"Webhook-Timestamp": "1764064800",
		"Webhook-Signature": wantSig,
		"Lightbus-Attempt":  "3",
		"Lightbus-Listener": "auth.create_user",
		"Idempotency-Key":   "order-42",
	}
	for k, v := range want {
		if got := req.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	body, _ := io.ReadAll(req.Body)
	if string(body) != string(params) {
		t.Errorf("body = %s, want the stored bytes %s", body, params)
	}
}

// blockingStore answers DeliveryTarget with one endpoint and counts calls.
type blockingStore struct{ url string }

func (s blockingStore) DeliveryTarget(ctx context.Context, eventID, service, listener string) (*gateway.DeliveryTarget, error) {
	return &gateway.DeliveryTarget{Event: gateway.Event{ID: eventID, API: "a", Name: "e", Params: json.RawMessage(`{}`)},
		Secret: webhook.NewSecret(), Endpoints: []gateway.Endpoint{{WorkerID: "w1", URL: s.url}}}, nil
}

func (blockingStore) RemoveEndpoint(ctx context.Context, service, listener, workerID string) error {
	return nil
}

func TestDelivererGroupLimit(t *testing.T) {
	t.Parallel()

	release := make(chan struct{})
	var inFlight, peak atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-release
		inFlight.Add(-1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	w := NewDeliverer(DelivererConfig{GroupLimit: 2, Store: blockingStore{srv.URL}, Timeout: 10 * time.Second})
	job := func(service string) *river.Job[DeliveryArgs] {
		return &river.Job[DeliveryArgs]{JobRow: &rivertype.JobRow{Attempt: 1},
			Args: DeliveryArgs{EventID: "01936f6e-0000-7000-8000-000000000001", Service: service, Listener: "l"}}
	}

	results := make(chan error, 2)
	for range 2 {
		go func() { results <- w.Work(context.Background(), job("slow")) }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for inFlight.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the first two deliveries never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The group is at its cap: a third delivery snoozes without a request.
	var snooze *rivertype.JobSnoozeError
	if err := w.Work(context.Background(), job("slow")); !errors.As(err, &snooze) {
		t.Fatalf("third delivery of a group at its cap: %v, want a snooze", err)
	}
	// Another group is not held back.
	other := make(chan error, 1)
	go func() { other <- w.Work(context.Background(), job("other")) }()
	for inFlight.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("another group's delivery was held back by a group at its cap")
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	for range 2 {
		if err := <-results; err != nil {
			t.Errorf("delivery: %v", err)
		}
	}
	if err := <-other; err != nil {
		t.Errorf("other group's delivery: %v", err)
	}
	if peak.Load() != 3 {
		t.Errorf("peak in flight = %d, want 3 (2 of the capped group + 1 other)", peak.Load())
	}
	// Slots are given back: the group can deliver again.
	if err := w.Work(context.Background(), job("slow")); err != nil {
		t.Errorf("delivery after the group drained: %v", err)
	}
}

func TestDelivererInFlightSlots(t *testing.T) {
	w := NewDeliverer(DelivererConfig{})
	if w.slotWait != inFlightWait {
		t.Fatalf("slot wait %s, want %s", w.slotWait, inFlightWait)
	}
	if w.queueWait != inFlightQueueWait {
		t.Fatalf("queue wait %s, want %s", w.queueWait, inFlightQueueWait)
	}
	// The waits below end by a release, whatever the machine's pace.
	w.slotWait, w.queueWait = time.Minute, time.Minute
	ctx := context.Background()
	if !w.acquire(ctx, "g", 1) {
		t.Fatal("the first slot of a group with limit 1 was refused")
	}
	if !w.acquire(ctx, "other", 1) {
		t.Fatal("another group's slot was refused")
	}
	if !w.acquire(ctx, "nolimit", 0) || !w.acquire(ctx, "nolimit", 0) {
		t.Fatal("a group without limit was refused a slot")
	}

	// At its limit a delivery waits for a slot and gets it when one frees;
	// a release of another group does not wake it for good.
	got := make(chan bool)
	go func() { got <- w.acquire(ctx, "g", 1) }()
	select {
	case ok := <-got:
		t.Fatalf("acquire at the limit returned %v before a slot was released", ok)
	case <-time.After(20 * time.Millisecond):
	}
	w.release("other")
	select {
	case ok := <-got:
		t.Fatalf("acquire returned %v when another group's slot was released", ok)
	case <-time.After(20 * time.Millisecond):
	}
	w.release("g")
	if !<-got {
		t.Fatal("the waiting delivery did not get the released slot")
	}

	// Nothing released: it gives up after the wait.
	w.slotWait, w.queueWait = 30*time.Millisecond, 30*time.Millisecond
	start := time.Now()
	if w.acquire(ctx, "g", 1) {
		t.Fatal("acquire beyond the limit succeeded with nothing released")
	}
	if waited := time.Since(start); waited < w.slotWait {
		t.Errorf("gave up after %s, want to wait %s for a slot", waited, w.slotWait)
	}
	// Nor past its context.
	w.slotWait = time.Minute
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if w.acquire(cancelled, "g", 1) {
		t.Fatal("acquire with a cancelled context succeeded beyond the limit")
	}
}

// TestDelivererSlotQueue: at its limit, the first queueLen(limit)
// deliveries of a group queue for a slot (for queueWait) and get the next
// ones released; the deliveries beyond them wait only slotWait and are
// snoozed, so that one group's backlog holds at most that many River
// workers; another group queues apart.
func TestDelivererSlotQueue(t *testing.T) {
	w := NewDeliverer(DelivererConfig{})
	w.slotWait, w.queueWait = 30*time.Millisecond, time.Minute
	ctx := context.Background()
	const limit, queue = 4, 2 // half the limit queues
	for range limit {
		if !w.acquire(ctx, "g", limit) {
			t.Fatal("a slot under the limit was refused")
		}
	}
	queued := make(chan bool, queue)
	for range queue {
		go func() { queued <- w.acquire(ctx, "g", limit) }()
	}
	testwait.For(t, 10*time.Second, "the first deliveries to queue", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.waiters["g"] == queue
	})
	// The queue is full: the next one waits slotWait only, and gives up.
	start := time.Now()
	if w.acquire(ctx, "g", limit) {
		t.Fatal("a delivery beyond the queue got a slot with nothing released")
	}
	if waited := time.Since(start); waited >= time.Minute/2 {
		t.Errorf("a delivery beyond the queue waited %s, want about %s", waited, w.slotWait)
	}
	// Another group at its limit queues apart.
	other := make(chan bool, 1)
	if !w.acquire(ctx, "h", 1) {
		t.Fatal("another group's slot was refused")
	}
	go func() { other <- w.acquire(ctx, "h", 1) }()
	testwait.For(t, 10*time.Second, "the other group's delivery to queue", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.waiters["h"] == 1
	})
	// Each release hands a slot to a queued delivery.
	for range queue {
		w.release("g")
		select {
		case ok := <-queued:
			if !ok {
				t.Fatal("a queued delivery gave up")
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a released slot did not reach a queued delivery")
		}
	}
	w.release("h")
	if !<-other {
		t.Fatal("the other group's queued delivery gave up")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.waiters) != 0 || w.inFlight["g"] != limit {
		t.Errorf("waiters %v, in flight %d after the queue drained, want none and %d", w.waiters, w.inFlight["g"], limit)
	}
}

// TestSlotSnooze: a delivery that finds no slot snoozes 50-100 ms the first
// time, twice as long each time after, up to 16 times.
func TestSlotSnooze(t *testing.T) {
	for _, c := range []struct {
		metadata string
		base     time.Duration
	}{
		{``, inFlightSnooze},
		{`{}`, inFlightSnooze},
		{`{"snoozes": 1}`, 2 * inFlightSnooze},
		{`{"snoozes": 3, "output": {}}`, 8 * inFlightSnooze},
		{`{"snoozes": 4}`, 16 * inFlightSnooze},
		{`{"snoozes": 40}`, 16 * inFlightSnooze},
		{`{"snoozes": -1}`, inFlightSnooze},
		{`not json`, inFlightSnooze},
	} {
		for range 50 {
			if d := slotSnooze([]byte(c.metadata)); d < c.base || d >= 2*c.base {
				t.Errorf("slotSnooze(%s) = %s, want in [%s, %s)", c.metadata, d, c.base, 2*c.base)
				break
			}
		}
	}
}
