package bench

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// runner runs one scenario, adding its results to r.
type runner struct {
	o      Options
	r      *Report
	client *http.Client
	// authorization is the Authorization header of requests to the
	// gateway; nil without a token.
	authorization []string
}

// bearer returns the Authorization header's value for token, nil for none.
func bearer(token string) []string {
	if token == "" {
		return nil
	}
	return []string{"Bearer " + token}
}

// drainIdle is how long a run waits for a delivery before it stops
// waiting for the rest.
const drainIdle = 15 * time.Second

// post sends body to url and checks the status, returning the answer.
func (b *runner) post(ctx context.Context, url string, body []byte, want ...int) ([]byte, int, error) {
	return b.postKeyed(ctx, url, body, "", want...)
}

// postKeyed is post with an Idempotency-Key, unless key is empty.
func (b *runner) postKeyed(ctx context.Context, url string, body []byte, key string, want ...int) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	req.Header["Content-Type"] = []string{"application/json"}
	if key != "" {
		req.Header["Idempotency-Key"] = []string{key}
	}
	if b.authorization != nil && strings.HasPrefix(url, b.o.URL) { // not to the direct baselines
		req.Header["Authorization"] = b.authorization
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, resp.StatusCode, err
	}
	for _, w := range want {
		if resp.StatusCode == w {
			return answer, resp.StatusCode, nil
		}
	}
	return answer, resp.StatusCode, fmt.Errorf("POST %s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(answer)))
}

// withPeer starts and registers a peer, runs fn, and deregisters it.
func (b *runner) withPeer(ctx context.Context, groups int, rpc bool, fn func(p *Peer) error) error {
	return b.withPeerOrdered(ctx, groups, rpc, false, fn)
}

// withPeerOrdered is withPeer with the peer's groups ordered or not.
func (b *runner) withPeerOrdered(ctx context.Context, groups int, rpc, ordered bool, fn func(p *Peer) error) error {
	p, err := NewPeer(b.o.URL, b.client)
	if err != nil {
		return err
	}
	p.Token = b.o.Token
	p.Ordered = ordered
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		_ = p.Close(cctx)
		cancel()
	}()
	if err := p.Register(ctx, groups, rpc); err != nil {
		return err
	}
	return fn(p)
}

// fireURL is where the peer's API.ping is fired.
func (b *runner) fireURL(p *Peer) string {
	return strings.TrimRight(b.o.URL, "/") + "/v1/events/" + p.API + "/ping"
}

// fire measures single-event fires for each number of listener groups.
func (b *runner) fire(ctx context.Context) error {
	if err := b.baselines(ctx); err != nil {
		return err
	}
	groups := b.o.Groups
	if len(groups) == 0 {
		groups = []int{0, 1, 4}
	}
	for _, g := range groups {
		err := b.withPeer(ctx, g, false, func(p *Peer) error {
			url := b.fireURL(p)
			name := fmt.Sprintf("fire %d group(s)", g)
			if b.o.IdempotencyKeys {
				name += " with keys"
			}
			mark := b.cpuMark()
			s := Drive(ctx, b.o.Load, name, b.o.Progress, func(ctx context.Context, _ int) (int, error) {
				var key string
				if b.o.IdempotencyKeys {
					key = uuid.NewString()
				}
				_, _, err := b.postKeyed(ctx, url, b.o.Params, key, http.StatusAccepted)
				return 1, err
			})
			if g > 0 {
				// Let the deliveries finish so that they do not load the
				// next measurement (and count in its CPU).
				p.WaitCount(ctx, s.Ops*g, drainIdle)
			}
			b.r.add(Result{Name: name, Summary: s, Note: durabilityNote, CPU: mark.perItem(s.Items)})
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Names of the delivered results the deliver scenario compares.
const (
	gatewayDelivered = "deliver: fire → delivered"
	riverDelivered   = "river-baseline: enqueue → delivered"
)

const durabilityNote = "a 2xx means the event and its deliveries are committed"

// fireBatch measures batch fires of BatchSize events to one group.
func (b *runner) fireBatch(ctx context.Context) error {
	if err := b.baselines(ctx); err != nil {
		return err
	}
	groups := 1
	if len(b.o.Groups) > 0 {
		groups = b.o.Groups[0]
	}
	return b.withPeer(ctx, groups, false, func(p *Peer) error {
		url := strings.TrimRight(b.o.URL, "/") + "/v1/events"
		// With keys, every item of every request gets its own: the run's
		// prefix, the request's number and the item's.
		run := uuid.NewString()
		batchBody := func(op int) []byte {
			var buf bytes.Buffer
			buf.WriteByte('[')
			for i := range b.o.BatchSize {
				if i > 0 {
					buf.WriteByte(',')
				}
				fmt.Fprintf(&buf, `{"api":%q,"event":"ping","params":%s`, p.API, b.o.Params)
				if b.o.IdempotencyKeys {
					fmt.Fprintf(&buf, `,"idempotency_key":"%s-%d-%d"`, run, op, i)
				}
				buf.WriteByte('}')
			}
			buf.WriteByte(']')
			return buf.Bytes()
		}
		body := batchBody(-1)

		// Probe: a gateway without batch fire answers 404 or 405 (this
		// gateway's method-not-allowed is a 400 problem saying so).
		answer, status, err := b.post(ctx, url, body, http.StatusAccepted, http.StatusOK, http.StatusMultiStatus)
		if status == http.StatusNotFound || status == http.StatusMethodNotAllowed ||
			(status == http.StatusBadRequest && bytes.Contains(answer, []byte("method POST is not allowed"))) {
			b.r.Skipped = fmt.Sprintf("the gateway does not serve batch fire (POST /v1/events answered %d)", status)
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := batchAccepted(answer, b.o.BatchSize); err != nil {
			return err
		}
		name := fmt.Sprintf("fire-batch %d x %d group(s)", b.o.BatchSize, groups)
		if b.o.IdempotencyKeys {
			name += " with keys"
		}
		mark := b.cpuMark()
		s := Drive(ctx, b.o.Load, name, b.o.Progress, func(ctx context.Context, op int) (int, error) {
			req := body
			if b.o.IdempotencyKeys {
				req = batchBody(op)
			}
			answer, _, err := b.post(ctx, url, req, http.StatusAccepted, http.StatusOK, http.StatusMultiStatus)
			if err != nil {
				return 0, err
			}
			return batchAccepted(answer, b.o.BatchSize)
		})
		if groups > 0 {
			p.WaitCount(ctx, (s.Items+b.o.BatchSize)*groups, drainIdle)
		}
		b.r.add(Result{Name: name, Summary: s, Note: "EVENTS/S counts events accepted; OPS are requests", CPU: mark.perItem(s.Items)})
		return nil
	})
}

// batchAccepted counts the accepted items of a batch fire's answer: an
// array of per-item results, bare or under "results", where an item with
// an "id" and no "error" was stored.
func batchAccepted(answer []byte, size int) (int, error) {
	// Only the two fields are decoded: the tool shares the machine with the
	// gateway, so its own work per answer is kept small.
	type item struct {
		ID    json.RawMessage `json:"id"`
		Error json.RawMessage `json:"error"`
	}
	var items []item
	if err := json.Unmarshal(answer, &items); err != nil {
		var wrapped struct {
			Results []item `json:"results"`
		}
		if err := json.Unmarshal(answer, &wrapped); err != nil {
			return 0, fmt.Errorf("batch fire answer is not a list of results: %w", err)
		}
		items = wrapped.Results
	}
	n := 0
	for _, it := range items {
		if it.ID != nil && it.Error == nil {
			n++
		}
	}
	if n < size {
		return n, fmt.Errorf("batch fire stored %d of %d events", n, size)
	}
	return n, nil
}

// deliver measures fire → delivered latency at a fixed fire rate into one
// group served by the peer, and the sustained delivery rate; with Ordered,
// that of an ordered group too, in alternating rounds.
func (b *runner) deliver(ctx context.Context) error {
	if b.o.DatabaseURL != "" {
		if err := b.riverBaseline(ctx); err != nil {
			return err
		}
	}
	if !b.o.Ordered {
		return b.deliverOnce(ctx, false, "deliver: fire", gatewayDelivered)
	}
	var plain, ordered []Result
	for round := 1; round <= orderedRounds; round++ {
		for _, o := range []bool{false, true} {
			name := "deliver"
			if o {
				name = "deliver ordered"
			}
			fire, delivered := fmt.Sprintf("%s: fire (round %d)", name, round), fmt.Sprintf("%s: fire → delivered (round %d)", name, round)
			if err := b.deliverOnce(ctx, o, fire, delivered); err != nil {
				return err
			}
			res, _ := b.r.find(delivered)
			if o {
				ordered = append(ordered, res)
			} else {
				plain = append(plain, res)
			}
		}
	}
	mp, mo := medianResult(plain), medianResult(ordered)
	mp.Name, mo.Name = "deliver: median of rounds", "deliver ordered: median of rounds"
	mp.Note = "the round with the median EVENTS/S"
	mo.Note = "the round with the median EVENTS/S; vs_unordered is its EVENTS/S over the unordered median's"
	if mp.Summary.ItemsPerSec > 0 {
		mo.Ratios = map[string]float64{"vs_unordered": mo.Summary.ItemsPerSec / mp.Summary.ItemsPerSec}
	}
	b.r.add(mp)
	b.r.add(mo)
	return nil
}

// orderedRounds is how many rounds deliver --ordered alternates.
const orderedRounds = 3

// medianResult returns the result with the median delivery rate.
func medianResult(rs []Result) Result {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b Result) int { return cmp.Compare(a.Summary.ItemsPerSec, b.Summary.ItemsPerSec) })
	r := sorted[len(sorted)/2]
	r.Ratios = nil
	return r
}

// deliverOnce fires at the load's rate into one group of a new peer,
// ordered or not, and adds the fires' result as fireName and the
// deliveries' as deliveredName.
func (b *runner) deliverOnce(ctx context.Context, ordered bool, fireName, deliveredName string) error {
	return b.withPeerOrdered(ctx, 1, false, ordered, func(p *Peer) error {
		url := b.fireURL(p)
		var mu sync.Mutex
		sent := map[string]time.Time{}
		mark := b.cpuMark()
		s := Drive(ctx, b.o.Load, fireName, b.o.Progress, func(ctx context.Context, _ int) (int, error) {
			at := time.Now()
			answer, _, err := b.post(ctx, url, b.o.Params, http.StatusAccepted)
			if err != nil {
				return 0, err
			}
			var res struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(answer, &res); err != nil || res.ID == "" {
				return 0, fmt.Errorf("fire answer without an id: %s", answer)
			}
			mu.Lock()
			sent[res.ID] = at
			mu.Unlock()
			return 1, nil
		})
		b.r.add(Result{Name: fireName, Summary: s})
		p.WaitCount(ctx, len(sent), drainIdle)
		delivered := deliveredResult(deliveredName, sent, p)
		delivered.CPU = mark.perItem(delivered.Summary.Items)
		b.r.add(delivered)
		return nil
	})
}

// deliveredResult summarizes deliveries: latency is receipt minus send of
// each event; throughput is deliveries over first send to last receipt.
func deliveredResult(name string, sent map[string]time.Time, p *Peer) Result {
	var lat []time.Duration
	var first, last time.Time
	missing := 0
	for id, at := range sent {
		got, ok := p.Received(id)
		if !ok {
			missing++
			continue
		}
		lat = append(lat, got.Sub(at))
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if got.After(last) {
			last = got
		}
	}
	first1 := ""
	if missing > 0 {
		first1 = fmt.Sprintf("%d events were not delivered within %s of the last delivery", missing, drainIdle)
	}
	s := Summarize(lat, len(lat), missing, first1, last.Sub(first))
	return Result{Name: name, Summary: s, Note: "latency is the listener's receipt time minus the fire's send time; EVENTS/S is deliveries from first send to last receipt"}
}
