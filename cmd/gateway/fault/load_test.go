package fault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// fireKind is one of the ways the load generator fires events. The audit
// counts each kind on its own: each takes another path through the gateway.
type fireKind int

const (
	// keyed is a fire with an Idempotency-Key. The HTTP client may resend
	// it on a kept-alive connection that the server closed meanwhile.
	keyed fireKind = iota
	// unkeyed is a fire without a key, as curl sends it: the gateway
	// group-commits it with other fires, and nobody may resend it (it could
	// be stored twice), so an ambiguous failure stays a failure.
	unkeyed
	// batched is a batch fire (POST /v1/events) of batchSize events, every
	// other batch with a key on each item: all are stored or none.
	batched
	numKinds
)

func (k fireKind) String() string { return [...]string{"keyed", "unkeyed", "batch"}[k] }

// batchSize is the number of events in each batch fire.
const batchSize = 5

// sentEvent is how one event of the load was sent: its kind and, for a
// batch item, the batch (the fire number of the batch's first item).
type sentEvent struct {
	kind  fireKind
	batch int64
	keyed bool // sent with an idempotency key
}

// kindLoad counts the requests of one kind and their outcomes.
type kindLoad struct {
	requests, failed    int
	resent, resentAcked int // failed keyed requests resent (resendFailed), and acknowledged then
}

// loadGen fires events, mixing the kinds in turn, and records what was
// sent and what was acknowledged. Every event's parameters are {"n": N},
// its fire number, by which the audit finds it in the store.
type loadGen struct {
	mu       sync.Mutex
	sent     map[int64]sentEvent // fire number → how it was sent
	acked    map[string]fireKind // event id → kind, for each acknowledged event
	ackedAt  map[string]time.Time
	ackOrder []string
	kinds    [numKinds]kindLoad
	// failedKeyed are the failed requests whose events all have keys, not
	// yet resent with success.
	failedKeyed []failedRequest
	errors      map[string]int // "status code" or a transport error's class → count
	slowest     time.Duration  // slowest fire answer, of any kind
	slowFail    time.Duration  // slowest failed fire
	fires       int            // requests sent, of every kind
	// lastTransportErr is the last fire error counted as a transport error.
	lastTransportErr error
	seq              atomic.Int64 // fire numbers
	turn             atomic.Int64 // which kind fires next

	// attemptsMayRepeat relaxes the audit's same-attempt check for
	// scenarios that cut database connections: a River state update whose
	// answer was lost can be applied again to a later run of the same job
	// (docs/RELIABILITY.md), so attempt numbers may repeat although no
	// delivery was worked twice at once.
	attemptsMayRepeat bool
}

func newLoadGen() *loadGen {
	return &loadGen{sent: map[int64]sentEvent{}, acked: map[string]fireKind{}, ackedAt: map[string]time.Time{},
		errors: map[string]int{}}
}

// fire sends the next request of the load, of each kind in turn, to the
// gateway at base, and reports whether it was acknowledged.
func (lg *loadGen) fire(base string) bool {
	return lg.fireKind(base, fireKind((lg.turn.Add(1)-1)%int64(numKinds)))
}

// numbers takes the fire numbers of one request of kind and records them
// as sent before the request goes out: an event stored although its fire
// failed is still attributed to its kind.
func (lg *loadGen) numbers(kind fireKind) []int64 {
	n := 1
	if kind == batched {
		n = batchSize
	}
	ns := make([]int64, n)
	for i := range ns {
		ns[i] = lg.seq.Add(1)
	}
	lg.mu.Lock()
	defer lg.mu.Unlock()
	for _, n := range ns {
		s := sentEvent{kind: kind, keyed: kind == keyed}
		if kind == batched {
			s.batch, s.keyed = ns[0], keyedBatch(ns[0])
		}
		lg.sent[n] = s
	}
	return ns
}

// loadKey is the idempotency key of the event with fire number n.
func loadKey(n int64) string { return fmt.Sprintf("load-%d-%d", os.Getpid(), n) }

// fireKind sends one request of kind to the gateway at base.
func (lg *loadGen) fireKind(base string, kind fireKind) bool {
	ns := lg.numbers(kind)
	a := send(base, kind, ns)

	lg.mu.Lock()
	defer lg.mu.Unlock()
	lg.fires++
	lg.kinds[kind].requests++
	lg.slowest = max(lg.slowest, a.took)
	if a.ok() {
		lg.ack(kind, a.ids)
		return true
	}
	lg.kinds[kind].failed++
	lg.slowFail = max(lg.slowFail, a.took)
	lg.errors[a.errorClass(kind)]++
	if a.err != nil {
		lg.lastTransportErr = a.err
	}
	if lg.sent[ns[0]].keyed {
		lg.failedKeyed = append(lg.failedKeyed, failedRequest{kind, ns})
	}
	return false
}

// ack records the events of an acknowledged request.
func (lg *loadGen) ack(kind fireKind, ids []string) {
	now := time.Now()
	for _, id := range ids {
		lg.acked[id] = kind
		lg.ackedAt[id] = now
		lg.ackOrder = append(lg.ackOrder, id)
	}
}

// failedRequest is a request of the load that was not acknowledged.
type failedRequest struct {
	kind fireKind
	ns   []int64
}

// resendFailed resends, once, every failed request whose events all have
// keys (keyed fires, keyed batches) with the same keys, as a client that got
// an error should: each gets back the event its first try stored, or stores
// it now. The audit then requires every stored keyed event to be
// acknowledged, unless its resend failed too.
func (lg *loadGen) resendFailed(base string) {
	lg.mu.Lock()
	pending := lg.failedKeyed
	lg.failedKeyed = nil
	lg.mu.Unlock()
	for _, f := range pending {
		a := send(base, f.kind, f.ns)
		lg.mu.Lock()
		lg.kinds[f.kind].resent++
		if a.ok() || (a.status == http.StatusOK && a.err == nil && len(a.ids) == len(f.ns) && !slices.Contains(a.ids, "")) {
			lg.kinds[f.kind].resentAcked++
			lg.ack(f.kind, a.ids)
		} else {
			lg.failedKeyed = append(lg.failedKeyed, f)
		}
		lg.mu.Unlock()
	}
}

// answer is the outcome of one request of the load.
type answer struct {
	ids    []string // the events' ids, on success
	status int
	body   []byte
	err    error
	reused bool // whether the last connection tried had served requests before
	took   time.Duration
}

// ok reports whether the request was acknowledged: 202 with an id for
// every event.
func (a answer) ok() bool {
	return a.err == nil && a.status == http.StatusAccepted && !slices.Contains(a.ids, "")
}

// errorClass names the failure for the audit's fire_errors.
func (a answer) errorClass(kind fireKind) string {
	switch {
	case a.err != nil && !a.reused && (errors.Is(a.err, syscall.ECONNRESET) || errors.Is(a.err, io.EOF)):
		// A new connection reset before any answer: it was still in the
		// listen backlog when a stopping gateway closed its listener, so the
		// request was never read (an accepted one is drained). Like a
		// refused connection, nothing happened.
		return "reset before accept"
	case a.err != nil && a.reused && kind != keyed && (errors.Is(a.err, syscall.ECONNRESET) || errors.Is(a.err, io.EOF)):
		// A kept-alive connection closed under a request that may not be
		// resent (no Idempotency-Key header): the client cannot tell whether
		// the gateway read it. (A keyed fire is resent by the HTTP client.)
		return "kept-alive connection closed"
	case a.err != nil:
		return transportKind(a.err)
	default:
		return fmt.Sprintf("%d %s", a.status, problemCode(a.body))
	}
}

// send fires the events numbered ns as one request of kind.
func send(base string, kind fireKind, ns []int64) answer {
	var a answer
	start := time.Now()
	ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { a.reused = info.Reused },
	})
	switch kind {
	case keyed, unkeyed:
		var header map[string]string
		if kind == keyed {
			header = map[string]string{"Idempotency-Key": loadKey(ns[0])}
		}
		var res struct {
			ID string `json:"id"`
		}
		a.status, a.body, a.err = doJSON(ctx, http.MethodPost, base+"/v1/events/load/tick", map[string]any{"n": ns[0]}, header, &res)
		a.ids = []string{res.ID}
	case batched:
		items := make([]map[string]any, len(ns))
		for i, n := range ns {
			items[i] = map[string]any{"api": "load", "event": "tick", "params": map[string]any{"n": n}}
			if keyedBatch(ns[0]) {
				items[i]["idempotency_key"] = loadKey(n)
			}
		}
		var res struct {
			Results []struct {
				ID string `json:"id"`
			} `json:"results"`
		}
		a.status, a.body, a.err = doJSON(ctx, http.MethodPost, base+"/v1/events", items, nil, &res)
		a.ids = make([]string, len(ns))
		for i := range a.ids {
			if i < len(res.Results) {
				a.ids[i] = res.Results[i].ID
			}
		}
	}
	a.took = time.Since(start)
	return a
}

// keyedBatch reports whether the batch whose first event is numbered first
// gives its items idempotency keys: every other batch does.
func keyedBatch(first int64) bool { return first%2 == 0 }

// refusedDial reports whether err is a refused dial by its text: the HTTP
// client can return a dial's refusal in a wrapper that does not unwrap to
// the errno (seen once while a gateway stopped, among hundreds of refusals
// that did unwrap). Like any refused connection, nothing reached the
// gateway.
func refusedDial(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "dial tcp") && strings.HasSuffix(msg, "connect: connection refused")
}

// transportKind classifies a transport error for the audit.
func transportKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), refusedDial(err):
		return "connection refused"
	case errors.As(err, &ne) && ne.Timeout():
		return "client timeout"
	default:
		return "transport error"
	}
}

// run fires from workers goroutines, spreading requests over bases, until
// ctx is done; pause between fires per goroutine.
func (lg *loadGen) run(ctx context.Context, workers int, pause time.Duration, bases func() []string) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; ctx.Err() == nil; i++ {
				b := bases()
				lg.fire(b[i%len(b)])
				select {
				case <-ctx.Done():
				case <-time.After(pause):
				}
			}
		})
	}
	return &wg
}

// ackedIDs returns when each acknowledged event was acknowledged.
func (lg *loadGen) ackedIDs() map[string]time.Time {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	return maps.Clone(lg.ackedAt)
}

// fireCount returns the number of requests sent so far.
func (lg *loadGen) fireCount() int {
	lg.mu.Lock()
	defer lg.mu.Unlock()
	return lg.fires
}

// waitRecovered fires at base, each kind in turn, until every kind has
// succeeded twice, for at most 30 s: each path through the gateway works
// again.
func (lg *loadGen) waitRecovered(t *testing.T, base string) {
	t.Helper()
	var succeeded [numKinds]int
	i := 0
	poll.For(t, 30*time.Second, "fires of every kind to succeed again", func() bool {
		k := fireKind(i % int(numKinds))
		i++
		if lg.fireKind(base, k) {
			succeeded[k]++
		}
		return min(succeeded[keyed], succeeded[unkeyed], succeeded[batched]) >= 2
	})
}

// expectErrors fails t for every kind of failed fire not in allowed,
// saying when they failed.
func (lg *loadGen) expectErrors(t *testing.T, when string, allowed ...string) {
	t.Helper()
	lg.mu.Lock()
	defer lg.mu.Unlock()
	for kind, n := range lg.errors {
		ok := false
		for _, a := range allowed {
			ok = ok || kind == a
		}
		if !ok {
			t.Errorf("%d fires failed with %q %s (last transport error: %v), want only %s", n, kind, when, lg.lastTransportErr, strings.Join(allowed, " or "))
		}
	}
}

// expectOnlyUnavailable fails t for every kind of failed fire other than 503
// unavailable, saying when they failed, and, unless slowest is 0, when a
// failed fire took longer than slowest.
func (lg *loadGen) expectOnlyUnavailable(t *testing.T, when string, slowest time.Duration) {
	t.Helper()
	lg.expectErrors(t, when, "503 unavailable")
	lg.mu.Lock()
	defer lg.mu.Unlock()
	if slowest > 0 && lg.slowFail > slowest {
		t.Errorf("the slowest failed fire took %s, want at most %s", lg.slowFail, slowest)
	}
}

// kindAudit is what the audit found for one kind of fire.
type kindAudit struct {
	requests, failed    int // requests sent, and those not acknowledged
	resent, resentAcked int // failed keyed requests resent with their keys, and acknowledged then
	sent                int // events sent (a batch sends several)
	acked               int // events acknowledged
	stored              int // events in the store
	storedUnacked       int // stored, although their request failed (allowed)
	delivered           int // (event, group) pairs delivered at least once
	duplicates          int // deliveries of a pair after its first (redeliveries, allowed)
	storedTwice         int // fires stored as more than one event (a fire resent by someone)
	lost                int // acknowledged (event, group) pairs never delivered
	partial             int // batches partly stored (all or nothing)
	// keyedUnresolved counts stored events with a key whose request failed
	// and whose resend with the same key was acknowledged with another
	// event, or never made: nonzero only when no resend was tried.
	keyedUnresolved int
}

func (k kindAudit) String() string {
	s := fmt.Sprintf("requests=%d failed=%d events=%d acknowledged=%d stored=%d stored_unacknowledged=%d delivered=%d duplicates=%d stored_twice=%d lost=%d",
		k.requests, k.failed, k.sent, k.acked, k.stored, k.storedUnacked, k.delivered, k.duplicates, k.storedTwice, k.lost)
	if k.resent > 0 {
		s += fmt.Sprintf(" resent=%d resent_acknowledged=%d", k.resent, k.resentAcked)
	}
	if k.partial > 0 {
		s += fmt.Sprintf(" partial_batches=%d", k.partial)
	}
	return s
}

// auditResult is what a scenario's audit found.
type auditResult struct {
	acked, stored, storedUnacked, delivered, duplicates, lost, doubleAttempts, stuck int
	kinds                                                                            [numKinds]kindAudit
}

// audit waits until every acknowledged event has reached every group (or
// the timeout passes), then checks the store and prints the audit. It fails
// the test when an acknowledged event is missing from the store or from a
// group, when a stored event (acknowledged or not) was not delivered, when
// a fire was stored twice or a batch in part, when one attempt was
// delivered twice (two gateways working the same delivery), or when a
// delivery job is left running. Each kind of fire is counted on its own.
func audit(t *testing.T, scenario, dbURL string, lg *loadGen, timeout time.Duration, listeners ...*listener) auditResult {
	t.Helper()
	lg.mu.Lock()
	acked := maps.Clone(lg.acked)
	sent := maps.Clone(lg.sent)
	kinds := lg.kinds
	pending := map[int64]bool{} // numbers of keyed events whose requests failed and were not resent with success
	for _, f := range lg.failedKeyed {
		for _, n := range f.ns {
			pending[n] = true
		}
	}
	fires, errs, slowest, slowFail := lg.fires, fmt.Sprint(lg.errors), lg.slowest, lg.slowFail
	lg.mu.Unlock()
	var groups []string
	for _, l := range listeners {
		groups = append(groups, l.fullGroups()...)
	}
	collect := func() map[string]map[string][]int { // group → event → attempts
		out := map[string]map[string][]int{}
		for _, g := range groups {
			out[g] = map[string][]int{}
		}
		for _, l := range listeners {
			for _, d := range l.snapshot() {
				out[d.group][d.eventID] = append(out[d.group][d.eventID], d.attempt)
			}
		}
		return out
	}
	missing := func(got map[string]map[string][]int, ids map[string]fireKind) int {
		n := 0
		for id := range ids {
			for _, g := range groups {
				if len(got[g][id]) == 0 {
					n++
				}
			}
		}
		return n
	}
	deadline := time.Now().Add(timeout)
	got := collect()
	for missing(got, acked) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		got = collect()
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second+time.Until(deadline))
	defer cancel()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	defer conn.Close(context.Background())
	type storedEvent struct {
		id string
		n  *int64 // the fire number; nil for a scenario's own probe fires
	}
	rows, err := conn.Query(ctx, `SELECT id::text, (params->>'n')::bigint FROM lightbus_event`)
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	stored, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storedEvent, error) {
		var s storedEvent
		return s, row.Scan(&s.id, &s.n)
	})
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	// Events stored although their fire failed were stored with their
	// deliveries too (one transaction): they reach every group as well.
	storedKind := map[string]fireKind{}
	for _, s := range stored {
		if s.n != nil {
			storedKind[s.id] = sent[*s.n].kind
		}
	}
	for missing(got, storedKind) > 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		got = collect()
	}

	var r auditResult
	for k := range numKinds {
		r.kinds[k].requests, r.kinds[k].failed = kinds[k].requests, kinds[k].failed
		r.kinds[k].resent, r.kinds[k].resentAcked = kinds[k].resent, kinds[k].resentAcked
	}
	for _, s := range sent {
		r.kinds[s.kind].sent++
	}
	for _, k := range acked {
		r.kinds[k].acked++
	}
	r.acked = len(acked)
	r.stored = len(stored)
	storedSet := map[string]bool{}
	storedNumbers := map[int64]int{} // fire number → events stored with it
	for _, s := range stored {
		storedSet[s.id] = true
		_, ack := acked[s.id]
		if !ack {
			r.storedUnacked++
		}
		if s.n == nil {
			continue
		}
		k := sent[*s.n].kind
		r.kinds[k].stored++
		if !ack {
			r.kinds[k].storedUnacked++
			if sent[*s.n].keyed && !pending[*s.n] {
				r.kinds[k].keyedUnresolved++
			}
		}
		if storedNumbers[*s.n]++; storedNumbers[*s.n] == 2 {
			r.kinds[k].storedTwice++
		}
	}
	batchStored := map[int64]int{} // batch → its items stored
	for n, s := range sent {
		if s.kind == batched && storedNumbers[n] > 0 {
			batchStored[s.batch]++
		}
	}
	for _, c := range batchStored {
		if c != batchSize {
			r.kinds[batched].partial++
		}
	}
	notStored := 0
	for id := range acked {
		if !storedSet[id] {
			notStored++
		}
	}
	var doubled, doubledIDs []string
	phantom := 0 // deliveries of events that were never stored
	undelivered := 0
	for _, g := range groups {
		for id := range acked {
			if len(got[g][id]) == 0 {
				r.lost++
				r.kinds[acked[id]].lost++
			}
		}
		for id := range storedKind {
			if _, ack := acked[id]; !ack && len(got[g][id]) == 0 {
				undelivered++
			}
		}
		for id, attempts := range got[g] {
			if !storedSet[id] {
				phantom++
			}
			r.delivered++
			r.duplicates += len(attempts) - 1
			if k, ok := storedKind[id]; ok {
				r.kinds[k].delivered++
				r.kinds[k].duplicates += len(attempts) - 1
			}
			seen := map[int]bool{}
			for _, a := range attempts {
				if seen[a] {
					r.doubleAttempts++
					doubled = append(doubled, fmt.Sprintf("%s %s attempts %v", g, id, attempts))
					doubledIDs = append(doubledIDs, id)
				}
				seen[a] = true
			}
		}
	}
	// A delivery the listener has answered is marked completed a moment
	// later (River completes jobs in batches); one whose gateway died is
	// rescued after LIGHTBUS_RESCUE_AFTER by River's leader, which looks
	// every 30 s. Either way none may stay running.
	settleStart := time.Now()
	for {
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind IN ('lightbus.delivery', 'lightbus.delivery_batch') AND state = 'running'`).Scan(&r.stuck); err != nil {
			t.Fatalf("audit: %v", err)
		}
		if r.stuck == 0 || time.Since(settleStart) > 60*time.Second {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	settled := time.Since(settleStart)

	line := fmt.Sprintf("AUDIT %s: fires=%d acknowledged=%d stored=%d stored_unacknowledged=%d groups=%d delivered=%d duplicates=%d lost=%d not_stored=%d stored_not_delivered=%d phantom=%d same_attempt_twice=%d running_jobs=%d (settled in %s) fire_errors=%s slowest_fire=%s slowest_failed_fire=%s",
		scenario, fires, r.acked, r.stored, r.storedUnacked, len(groups), r.delivered, r.duplicates, r.lost, notStored, undelivered, phantom,
		r.doubleAttempts, r.stuck, settled.Round(100*time.Millisecond), errs, slowest.Round(time.Millisecond), slowFail.Round(time.Millisecond))
	for k := range numKinds {
		if r.kinds[k].requests > 0 {
			line += fmt.Sprintf(" | %s: %s", k, r.kinds[k])
		}
	}
	report(t, line)

	if r.acked == 0 {
		t.Errorf("%s: no event was acknowledged: the load generator did nothing", scenario)
	}
	for k := range numKinds {
		ka := r.kinds[k]
		if ka.requests > 0 && ka.acked == 0 {
			t.Errorf("%s: no %s fire was acknowledged", scenario, k)
		}
		if ka.lost > 0 {
			t.Errorf("%s: %d acknowledged (event, group) deliveries of %s fires lost", scenario, ka.lost, k)
		}
		if ka.storedTwice > 0 {
			t.Errorf("%s: %d %s fires stored as more than one event", scenario, ka.storedTwice, k)
		}
		if ka.partial > 0 {
			t.Errorf("%s: %d batches stored in part", scenario, ka.partial)
		}
		if ka.keyedUnresolved > 0 {
			t.Errorf("%s: %d %s events with a key are stored although their request failed, and its resend with the same key was acknowledged without them", scenario, ka.keyedUnresolved, k)
		}
	}
	if notStored > 0 {
		t.Errorf("%s: %d acknowledged events are not in the store", scenario, notStored)
	}
	if undelivered > 0 {
		t.Errorf("%s: %d (event, group) deliveries of stored but unacknowledged events never arrived: stored without their deliveries", scenario, undelivered)
	}
	if phantom > 0 {
		t.Errorf("%s: %d deliveries of events that are not in the store", scenario, phantom)
	}
	if r.doubleAttempts > 0 && lg.attemptsMayRepeat {
		t.Logf("%s: %d deliveries repeated an attempt number after lost database answers: %v", scenario, r.doubleAttempts, doubled)
	}
	if r.doubleAttempts > 0 && !lg.attemptsMayRepeat {
		rows, err := conn.Query(ctx, `SELECT args::text, state::text, attempt, COALESCE(errors::text, ''), metadata::text FROM river_job WHERE args->>'event_id' = ANY($1)`, doubledIDs)
		if err == nil {
			for rows.Next() {
				var args, state, errs, meta string
				var attempt int
				_ = rows.Scan(&args, &state, &attempt, &errs, &meta)
				t.Logf("job %s: state %s attempt %d errors %s metadata %s", args, state, attempt, errs, meta)
			}
			rows.Close()
		}
		t.Logf("same attempt delivered twice: %v", doubled)
		t.Errorf("%s: %d deliveries received twice with the same attempt number (worked twice, not retried)", scenario, r.doubleAttempts)
	}
	if r.stuck > 0 {
		t.Errorf("%s: %d delivery jobs left running", scenario, r.stuck)
	}
	return r
}
