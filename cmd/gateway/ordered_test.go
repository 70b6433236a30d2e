package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/internal/testwait"
	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

// orderedPolicy is an ordered group's policy with quick retries.
const orderedPolicy = `{"ordered":true,"max_attempts":10,"backoff":{"base_ms":20,"max_ms":50}}`

// arrival is one delivery request an ordered listener received.
type arrival struct {
	id      string
	n       int // the event's "n" parameter
	attempt int
}

// orderedListener records the requests it gets and fails the test's
// expectation when two of them are ever in flight at once.
type orderedListener struct {
	inFlight   atomic.Int32
	overlapped atomic.Int32
	// hold, when set, is how long each request is held, to widen the
	// window in which a second request would overlap it.
	hold time.Duration
	// answer, when set, chooses the status of a request (after hold).
	answer func(a arrival, seen int) int

	mu       sync.Mutex
	arrivals []arrival
	seen     map[string]int
}

// handle records one request and answers it.
func (l *orderedListener) handle(w http.ResponseWriter, r *http.Request) {
	if l.inFlight.Add(1) > 1 {
		l.overlapped.Add(1)
	}
	defer l.inFlight.Add(-1)
	body, _ := io.ReadAll(r.Body)
	var params struct {
		N int `json:"n"`
	}
	_ = json.Unmarshal(body, &params)
	attempt, _ := strconv.Atoi(r.Header.Get("Lightbus-Attempt"))
	a := arrival{id: r.Header.Get("Webhook-Id"), n: params.N, attempt: attempt}
	time.Sleep(l.hold)
	status := http.StatusNoContent
	l.mu.Lock()
	if l.seen == nil {
		l.seen = map[string]int{}
	}
	l.seen[a.id]++
	if l.answer != nil {
		status = l.answer(a, l.seen[a.id])
	}
	l.arrivals = append(l.arrivals, a)
	l.mu.Unlock()
	w.WriteHeader(status)
}

// serve serves the listener on loopback until the test ends.
func (l *orderedListener) serve(t *testing.T) *hook {
	srv := httptest.NewServer(http.HandlerFunc(l.handle))
	t.Cleanup(srv.Close)
	return &hook{srv: srv}
}

// received returns the requests so far.
func (l *orderedListener) received() []arrival {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.arrivals)
}

// firstArrivals returns the ids in the order of their first request.
func (l *orderedListener) firstArrivals() []string {
	var ids []string
	seen := map[string]bool{}
	for _, a := range l.received() {
		if !seen[a.id] {
			seen[a.id] = true
			ids = append(ids, a.id)
		}
	}
	return ids
}

// waitFor waits until n distinct events have arrived.
func (l *orderedListener) waitFor(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	testwait.For(t, timeout, fmt.Sprintf("%d events delivered", n), func() bool {
		return len(l.firstArrivals()) >= n
	})
}

// checkOneAtATime fails the test when two requests overlapped.
func (l *orderedListener) checkOneAtATime(t *testing.T) {
	t.Helper()
	if n := l.overlapped.Load(); n > 0 {
		t.Fatalf("%d requests arrived while another was in flight: an ordered group gets one at a time", n)
	}
}

// commitOrder returns the ids of every stored event in the order their
// transactions committed, as the live stream reads them: (xid, id).
func commitOrder(t *testing.T, dbURL string) []string {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	rows, _ := pool.Query(context.Background(), `SELECT id::text FROM lightbus_event ORDER BY xid, id`)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// fireConcurrently fires perClient events of shop.order_placed from each of
// clients clients at once, through the gateways in turn, and returns how
// many it fired.
func fireConcurrently(t *testing.T, gws []*testGateway, clients, perClient int) int {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		bus := newBus(t, gws[c%len(gws)].URL)
		wg.Go(func() {
			for i := range perClient {
				if _, err := bus.Fire(context.Background(), "shop.order_placed", map[string]int{"n": c*perClient + i}); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return clients * perClient
}

// fireInTurn fires events of shop.order_placed with n from 0, one after the
// other (each committed before the next is fired), and returns their ids.
func fireInTurn(t *testing.T, gw *testGateway, count int) []string {
	t.Helper()
	bus := newBus(t, gw.URL)
	ids := make([]string, count)
	for i := range ids {
		res, err := bus.Fire(t.Context(), "shop.order_placed", map[string]int{"n": i})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = res.ID
	}
	return ids
}

// TestOrderedCommitOrder: events fired at once by many clients reach an
// ordered group's worker (a Go worker declaring lightbus.Ordered) one at a
// time, each once, in the order their transactions committed.
func TestOrderedCommitOrder(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	gw := startGatewayOn(t, dbURL, nil)

	l := &orderedListener{hold: time.Millisecond}
	bus, err := lightbus.Create(append(workerOptions(gw, 5*time.Second), lightbus.WithService("ledger"))...)
	if err != nil {
		t.Fatal(err)
	}
	bus.Listen("shop.order_placed", "post", func(ctx context.Context, ev lightbus.EventMessage) error {
		if l.inFlight.Add(1) > 1 {
			l.overlapped.Add(1)
		}
		defer l.inFlight.Add(-1)
		time.Sleep(l.hold)
		l.mu.Lock()
		l.arrivals = append(l.arrivals, arrival{id: ev.ID, attempt: ev.Attempt})
		l.mu.Unlock()
		return nil
	}, lightbus.Ordered())
	runBus(t, bus)

	n := fireConcurrently(t, []*testGateway{gw}, 8, 25)
	l.waitFor(t, n, 60*time.Second)
	l.checkOneAtATime(t)
	if got, want := l.firstArrivals(), commitOrder(t, dbURL); !slices.Equal(got, want) {
		t.Fatalf("events arrived in the order\n%v\nwant the commit order\n%v", got, want)
	}
	if got := len(l.received()); got != n {
		t.Fatalf("%d requests for %d events, want one each", got, n)
	}
	groups, err := bus.Listeners(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		if g.Service == "ledger" && (g.Pending != 0 || g.LagMS != 0) {
			t.Fatalf("caught up, the group shows %d pending, lag %dms", g.Pending, g.LagMS)
		}
	}
}

// TestOrderedFailureHoldsBack: the listener fails event 2 until released;
// meanwhile nothing after it is delivered, and readers show it so; once
// event 2 succeeds, 3, 4 and 5 follow in order.
func TestOrderedFailureHoldsBack(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	release := make(chan struct{})
	l := &orderedListener{answer: func(a arrival, seen int) int {
		select {
		case <-release:
		default:
			if a.n == 2 {
				return http.StatusInternalServerError
			}
		}
		return http.StatusNoContent
	}}
	h := l.serve(t)
	registerGroup(t, gw, "w1", "ledger", "post", h.srv.URL, orderedPolicy, "shop.order_placed")
	ids := fireInTurn(t, gw, 6)

	attemptsOf := func(n int) []int {
		var attempts []int
		for _, a := range l.received() {
			if a.n == n {
				attempts = append(attempts, a.attempt)
			}
		}
		return attempts
	}
	testwait.For(t, 20*time.Second, "event 2 failing three times", func() bool { return len(attemptsOf(2)) >= 3 })
	for n := 3; n < 6; n++ {
		if got := attemptsOf(n); len(got) > 0 {
			t.Fatalf("event %d delivered while event 2 fails", n)
		}
	}
	// Readers: event 2 has a delivery job of its own, retrying; event 4 is
	// pending for the group; the group counts 2, 3, 4, 5 as pending.
	d2 := eventDeliveries(t, gw, ids[2])["ledger.post"]
	if len(d2) != 1 || d2[0].ID == 0 || d2[0].State == "completed" || len(d2[0].Errors) == 0 {
		t.Fatalf("event 2's delivery: %+v, want a delivery job with its failed attempts", d2)
	}
	if d4 := eventDeliveries(t, gw, ids[4])["ledger.post"]; len(d4) != 1 || d4[0].State != "pending" || d4[0].ID != 0 {
		t.Fatalf("event 4's delivery: %+v, want pending", d4)
	}
	if d0 := eventDeliveries(t, gw, ids[0])["ledger.post"]; len(d0) != 1 || d0[0].State != "completed" {
		t.Fatalf("event 0's delivery: %+v, want completed", d0)
	}
	groups, err := newBus(t, gw.URL).Listeners(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		if g.Service == "ledger" && (g.Pending+g.InFlight < 4 || g.LagMS == 0) {
			t.Fatalf("held back, the group shows %d pending, %d in flight, lag %dms; want 4 undelivered", g.Pending, g.InFlight, g.LagMS)
		}
	}

	close(release)
	l.waitFor(t, 6, 20*time.Second)
	l.checkOneAtATime(t)
	var order []int
	for _, a := range l.received() {
		order = append(order, a.n)
	}
	k := len(attemptsOf(2))
	want := []int{0, 1}
	for range k {
		want = append(want, 2)
	}
	want = append(want, 3, 4, 5)
	if !slices.Equal(order, want) {
		t.Fatalf("requests in the order %v, want %v", order, want)
	}
	for i, a := range attemptsOf(2) {
		if a != i+1 {
			t.Fatalf("event 2's attempts %v, want 1, 2, 3...", attemptsOf(2))
		}
	}
}

// TestOrderedDeadMovesOn: event 1 fails every attempt (max_attempts 2): it is
// dead, listed as a dead letter, and the events after it are delivered; a
// redrive delivers it again, out of order.
func TestOrderedDeadMovesOn(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	var healthy atomic.Bool
	l := &orderedListener{answer: func(a arrival, _ int) int {
		if a.n == 1 && !healthy.Load() {
			return http.StatusUnprocessableEntity
		}
		return http.StatusNoContent
	}}
	h := l.serve(t)
	registerGroup(t, gw, "w1", "ledger", "post", h.srv.URL,
		`{"ordered":true,"max_attempts":2,"backoff":{"base_ms":20,"max_ms":50}}`, "shop.order_placed")
	ids := fireInTurn(t, gw, 4)
	l.waitFor(t, 4, 20*time.Second)
	testwait.For(t, 10*time.Second, "event 3 delivered", func() bool { return len(l.received()) >= 5 })
	var order []int
	for _, a := range l.received() {
		order = append(order, a.n)
	}
	if want := []int{0, 1, 1, 2, 3}; !slices.Equal(order, want) {
		t.Fatalf("requests in the order %v, want %v", order, want)
	}

	var dead struct {
		Deliveries []deliveryRecord `json:"deliveries"`
	}
	gw.do(t, "GET", "/v1/listeners/ledger/post/dead", "", nil, &dead)
	if len(dead.Deliveries) != 1 || dead.Deliveries[0].EventID != ids[1] || dead.Deliveries[0].Attempt != 2 {
		t.Fatalf("dead letters: %+v, want event 1 after 2 attempts", dead.Deliveries)
	}
	healthy.Store(true)
	if resp := gw.do(t, "POST", fmt.Sprintf("/v1/deliveries/%d/redrive", dead.Deliveries[0].ID), "", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("redrive: %d", resp.StatusCode)
	}
	testwait.For(t, 10*time.Second, "the redriven event delivered", func() bool {
		r := l.received()
		return len(r) == 6 && r[5].n == 1 && r[5].attempt == 3
	})
}

// TestOrderedTwoReplicas: two gateways share the database and fires, and
// both run the group's job; the group still gets one request at a time, in
// commit order.
func TestOrderedTwoReplicas(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	gw1 := startGatewayOn(t, dbURL, nil)
	gw2 := startGatewayOn(t, dbURL, nil)
	l := &orderedListener{hold: 2 * time.Millisecond}
	h := l.serve(t)
	registerGroup(t, gw1, "w1", "ledger", "post", h.srv.URL, orderedPolicy, "shop.order_placed")

	pool, err := pgxpool.New(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// Replicas that ran the group's job (River records who ran each run).
	runners := func() int {
		var n int
		if err := pool.QueryRow(t.Context(), `SELECT count(DISTINCT r) FROM river_job, unnest(attempted_by) r WHERE kind = 'lightbus.ordered'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Waves of fires, the group catching up in between: each wave wakes its
	// job, and either replica may take it. At least 4 waves, and more (up to
	// 30) until both replicas have run it.
	n := 0
	for wave := 0; wave < 4 || (wave < 30 && runners() < 2); wave++ {
		n += fireConcurrently(t, []*testGateway{gw1, gw2}, 8, 4)
		l.waitFor(t, n, 30*time.Second)
		time.Sleep(100 * time.Millisecond)
	}
	l.checkOneAtATime(t)
	if got, want := l.firstArrivals(), commitOrder(t, dbURL); !slices.Equal(got, want) {
		t.Fatalf("events arrived in the order\n%v\nwant the commit order\n%v", got, want)
	}
	if got := len(l.received()); got != n {
		t.Fatalf("%d requests for %d events, want one each", got, n)
	}
	if r := runners(); r < 2 {
		t.Fatalf("the group's job was run by %d replica(s): the test did not make two replicas share it", r)
	}
	t.Logf("%d events in waves, the job run by both replicas", n)
}

// TestOrderedGatewayRestart stops the gateway while the group's events are
// being delivered and starts another on the same database: every event
// arrives, in commit order, and at most the one in flight at the stop is
// delivered twice.
func TestOrderedGatewayRestart(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	start := func(shutdown time.Duration) (*testGateway, func() error) {
		cfg := testConfig()
		cfg.ShutdownTimeout = shutdown
		return launchGateway(t, cfg, dbURL, logger)
	}
	l := &orderedListener{hold: 5 * time.Millisecond}
	h := l.serve(t)

	gw1, stop1 := start(100 * time.Millisecond)
	registerGroup(t, gw1, "w1", "ledger", "post", h.srv.URL, orderedPolicy, "shop.order_placed")
	n := fireConcurrently(t, []*testGateway{gw1}, 4, 50)
	l.waitFor(t, 30, 30*time.Second)
	if err := stop1(); err != nil {
		t.Fatalf("first gateway: %v", err)
	}
	stopped := len(l.firstArrivals())
	if stopped >= n {
		t.Fatalf("all %d events delivered before the stop: the test stopped nothing mid-stream", n)
	}

	gw2, stop2 := start(5 * time.Second)
	t.Cleanup(func() {
		if err := stop2(); err != nil {
			t.Errorf("second gateway: %v", err)
		}
	})
	_ = gw2
	l.waitFor(t, n, 60*time.Second)
	l.checkOneAtATime(t)
	if got, want := l.firstArrivals(), commitOrder(t, dbURL); !slices.Equal(got, want) {
		t.Fatalf("events arrived in the order\n%v\nwant the commit order\n%v", got, want)
	}
	if repeats := len(l.received()) - n; repeats > 1 {
		t.Fatalf("%d events delivered twice across the restart, want at most the one in flight", repeats)
	}
	t.Logf("%d of %d events delivered before the stop", stopped, n)
}

// TestOrderedReplay: a replay of an ordered group delivers its events again,
// in commit order, one at a time, through the group's own job.
func TestOrderedReplay(t *testing.T) {
	t.Parallel()
	dbURL := pgtest.NewURL(t)
	gw := startGatewayOn(t, dbURL, nil)
	l := &orderedListener{}
	h := l.serve(t)
	registerGroup(t, gw, "w1", "ledger", "post", h.srv.URL, orderedPolicy, "shop.order_placed")
	n := fireConcurrently(t, []*testGateway{gw}, 4, 10)
	l.waitFor(t, n, 30*time.Second)

	var rp struct {
		State string `json:"state"`
	}
	if resp := gw.do(t, "POST", "/v1/listeners/ledger/post/replay", `{"since":"earliest"}`, nil, &rp); resp.StatusCode/100 != 2 || rp.State != "done" {
		t.Fatalf("replay: %d, state %q; want done at once", resp.StatusCode, rp.State)
	}
	testwait.For(t, 30*time.Second, "every event delivered again", func() bool { return len(l.received()) >= 2*n })
	l.checkOneAtATime(t)
	want := commitOrder(t, dbURL)
	var again []string
	for _, a := range l.received()[n:] {
		again = append(again, a.id)
	}
	if !slices.Equal(again, want) {
		t.Fatalf("replayed in the order\n%v\nwant the commit order\n%v", again, want)
	}
}
