package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/testwait"
)

// hook is a test listener whose answers a function decides, recording each
// request and when it arrived.
type hook struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []hookRequest
}

type hookRequest struct {
	at     time.Time
	path   string
	header http.Header
	body   string
}

// newHook serves answer(n, w, r) for the n-th request (from 1).
func newHook(t *testing.T, answer func(n int, w http.ResponseWriter, r *http.Request)) *hook {
	h := &hook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.requests = append(h.requests, hookRequest{at: time.Now(), path: r.URL.Path, header: r.Header.Clone(), body: string(body)})
		n := len(h.requests)
		h.mu.Unlock()
		answer(n, w, r)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) received() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookRequest(nil), h.requests...)
}

// newListener is a hook that answers its first requests with statuses, in
// turn, and the later ones with 204.
func newListener(t *testing.T, statuses ...int) *hook {
	return newHook(t, func(n int, w http.ResponseWriter, r *http.Request) {
		status := http.StatusNoContent
		if n <= len(statuses) {
			status = statuses[n-1]
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, "answer %d", status)
	})
}

// newFailingHook is a hook that answers with fail until healthy is set, and
// then with 204.
func newFailingHook(t *testing.T, fail func(w http.ResponseWriter)) (h *hook, healthy *atomic.Bool) {
	healthy = new(atomic.Bool)
	h = newHook(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if healthy.Load() {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		fail(w)
	})
	return h, healthy
}

// deadURL returns a loopback URL at which nothing listens.
func deadURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return "http://" + ln.Addr().String()
}

// registerGroup registers a worker serving the group service.name at
// baseURL+"/hook" with the given policy JSON (empty for none), and returns
// the group's secret.
func registerGroup(t *testing.T, gw *testGateway, workerID, service, name, baseURL, policy string, events ...string) string {
	t.Helper()
	l := fmt.Sprintf(`{"name":%q,"events":["%s"],"path":"/hook"`, name, strings.Join(events, `","`))
	if policy != "" {
		l += `,"policy":` + policy
	}
	body := fmt.Sprintf(`{"service":%q,"base_url":%q,"lease_ttl_ms":60000,"listeners":[%s}]}`, service, baseURL, l)
	var res struct {
		Listeners []struct{ Secret string } `json:"listeners"`
	}
	if resp := gw.do(t, "PUT", "/v1/workers/"+workerID, body, nil, &res); resp.StatusCode != 200 {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("register %s: %d %s", workerID, resp.StatusCode, body)
	}
	return res.Listeners[0].Secret
}

// fireOne fires api.event with empty parameters and returns the event id.
func fireOne(t *testing.T, gw *testGateway, api, event string) string {
	t.Helper()
	var res fireResult
	if resp := gw.do(t, "POST", "/v1/events/"+api+"/"+event, `{}`, nil, &res); resp.StatusCode != http.StatusAccepted || res.Deliveries != 1 {
		t.Fatalf("fire %s.%s: %d, %d deliveries", api, event, resp.StatusCode, res.Deliveries)
	}
	return res.ID
}

// waitState waits until the event's only delivery is in state and returns
// the event.
func waitState(t *testing.T, gw *testGateway, id, state string) eventDetail {
	t.Helper()
	return waitStateWithin(t, gw, id, state, 15*time.Second)
}

// waitStateWithin is waitState with its own timeout.
func waitStateWithin(t *testing.T, gw *testGateway, id, state string, timeout time.Duration) eventDetail {
	t.Helper()
	var detail eventDetail
	testwait.For(t, timeout, "delivery of "+id+" to be "+state, func() bool {
		detail = eventDetail{}
		gw.do(t, "GET", "/v1/events/"+id, "", nil, &detail)
		return len(detail.Deliveries) == 1 && detail.Deliveries[0].State == state
	})
	return detail
}

// deliverOne registers h as the group service.name, with policy, for
// shop.order_placed, fires one such event and waits until its delivery
// completes. It checks that h got requests requests, and returns the event
// and the requests.
func deliverOne(t *testing.T, gw *testGateway, h *hook, service, name, policy string, requests int) (eventDetail, []hookRequest) {
	t.Helper()
	registerGroup(t, gw, "w1", service, name, h.srv.URL, policy, "shop.order_placed")
	detail := waitState(t, gw, fireOne(t, gw, "shop", "order_placed"), gateway.DeliveryCompleted)
	got := h.received()
	if len(got) != requests {
		t.Fatalf("listener got %d requests, want %d", len(got), requests)
	}
	return detail, got
}

func TestContractRetryAfter(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)

	h := newHook(t, func(n int, w http.ResponseWriter, r *http.Request) {
		switch n {
		case 1:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		case 2:
			w.Header().Set("Retry-After", time.Now().Add(2*time.Second).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusOK)
		}
	})
	detail, got := deliverOne(t, gw, h, "billing", "charge", "", 3)
	// The test backoff is 20ms: only Retry-After explains these gaps. An HTTP
	// date has whole seconds, so "now + 2s" is at least one second away.
	for i := 1; i < 3; i++ {
		if gap := got[i].at.Sub(got[i-1].at); gap < time.Second {
			t.Errorf("attempt %d came %s after attempt %d: want no sooner than Retry-After", i+1, gap, i)
		}
	}
	d := detail.Deliveries[0]
	if d.Attempt != 3 || len(d.Errors) != 2 || !strings.Contains(d.Errors[0].Error, "429") ||
		!strings.Contains(d.Errors[0].Error, "Retry-After 1s") || !strings.Contains(d.Errors[1].Error, "503") {
		t.Errorf("delivery %+v: want each Retry-After answer to use an attempt", d)
	}
}

func TestContractRetryAfterUsesAttempts(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)

	// A listener that answers 503 forever must not keep its delivery alive.
	h := newHook(t, func(n int, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "0")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	registerGroup(t, gw, "w1", "billing", "charge", h.srv.URL, `{"max_attempts":2}`, "shop.order_placed")
	id := fireOne(t, gw, "shop", "order_placed")
	waitState(t, gw, id, gateway.DeliveryDead)
	if n := len(h.received()); n != 2 {
		t.Fatalf("listener got %d requests, want 2 (max_attempts)", n)
	}
}

func TestContractGoneRemovesEndpoint(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)

	gone := newHook(t, func(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusGone) })
	ok := newHook(t, func(n int, w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	registerGroup(t, gw, "old", "mail", "welcome", gone.srv.URL, "", "auth.user_registered")
	id := fireOne(t, gw, "auth", "user_registered")
	testwait.For(t, 10*time.Second, "the 410 answer", func() bool { return len(gone.received()) == 1 })

	// The only endpoint is gone: the delivery waits for another one.
	time.Sleep(300 * time.Millisecond)
	var detail eventDetail
	gw.do(t, "GET", "/v1/events/"+id, "", nil, &detail)
	if d := detail.Deliveries[0]; d.State == gateway.DeliveryCompleted || d.State == gateway.DeliveryDead {
		t.Fatalf("delivery %+v: want it waiting for an endpoint", d)
	}
	if n := len(gone.received()); n != 1 {
		t.Fatalf("the endpoint that answered 410 got %d requests, want 1", n)
	}

	// A new worker joins the group under another id: the delivery goes
	// there, and the old endpoint gets nothing more even though its worker's
	// lease is still live.
	registerGroup(t, gw, "new", "mail", "welcome", ok.srv.URL, "", "auth.user_registered")
	detail = waitState(t, gw, id, gateway.DeliveryCompleted)
	if d := detail.Deliveries[0]; len(d.Errors) != 1 || !strings.Contains(d.Errors[0].Error, "410") {
		t.Errorf("delivery %+v: want the 410 recorded", d)
	}
	for range 3 {
		waitState(t, gw, fireOne(t, gw, "auth", "user_registered"), gateway.DeliveryCompleted)
	}
	if n, m := len(gone.received()), len(ok.received()); n != 1 || m != 4 {
		t.Fatalf("requests: %d to the gone endpoint (want 1), %d to the live one (want 4)", n, m)
	}
}

func TestContractFailuresRetried(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)

	h := newHook(t, func(n int, w http.ResponseWriter, r *http.Request) {
		switch n {
		case 1:
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, "bad params")
		case 2:
			// A redirect is a failure and is not followed.
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case 3:
			w.WriteHeader(http.StatusInternalServerError)
		case 4:
			w.WriteHeader(http.StatusServiceUnavailable) // no Retry-After: plain backoff
		default:
			w.WriteHeader(http.StatusAccepted)
		}
	})
	detail, got := deliverOne(t, gw, h, "audit", "log", "", 5)
	for _, r := range got {
		if r.path != "/hook" {
			t.Errorf("request to %s: redirects must not be followed", r.path)
		}
	}
	d := detail.Deliveries[0]
	want := []string{"listener answered 400: bad params", "listener answered 302", "listener answered 500", "listener answered 503"}
	if len(d.Errors) != len(want) {
		t.Fatalf("errors %+v, want %d", d.Errors, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(d.Errors[i].Error, w) || d.Errors[i].Attempt != i+1 {
			t.Errorf("error %d = %+v, want %q", i, d.Errors[i], w)
		}
	}
}

func TestContractTimeoutAndConnectionErrors(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)

	dead := deadURL(t) // nothing listens at this address

	h := newHook(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			select { // slower than the group's timeout
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	registerGroup(t, gw, "w1", "audit", "log", dead, `{"timeout_ms":200}`, "shop.order_placed")
	id := fireOne(t, gw, "shop", "order_placed")
	testwait.For(t, 10*time.Second, "a failed connection attempt", func() bool {
		var detail eventDetail
		gw.do(t, "GET", "/v1/events/"+id, "", nil, &detail)
		return len(detail.Deliveries) == 1 && len(detail.Deliveries[0].Errors) > 0
	})
	// The worker comes back at a working address.
	registerGroup(t, gw, "w1", "audit", "log", h.srv.URL, `{"timeout_ms":200}`, "shop.order_placed")
	detail := waitState(t, gw, id, gateway.DeliveryCompleted)
	d := detail.Deliveries[0]
	var refused, timedOut bool
	for _, e := range d.Errors {
		refused = refused || strings.Contains(e.Error, "deliver to "+dead)
		timedOut = timedOut || strings.Contains(e.Error, "no answer within 200ms")
	}
	if !refused || !timedOut || len(h.received()) != 2 {
		t.Fatalf("errors %+v (%d requests): want a connection error and a timeout, then success", d.Errors, len(h.received()))
	}
}

func TestPolicyBackoffPerGroup(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil) // default backoff 20ms to 200ms

	h := newHook(t, func(n int, w http.ResponseWriter, r *http.Request) {
		if n <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	_, got := deliverOne(t, gw, h, "audit", "log", `{"backoff":{"base_ms":400,"max_ms":5000}}`, 3)
	if gap := got[1].at.Sub(got[0].at); gap < 400*time.Millisecond {
		t.Errorf("first retry after %s, want at least the group's base 400ms", gap)
	}
	if gap := got[2].at.Sub(got[1].at); gap < 800*time.Millisecond {
		t.Errorf("second retry after %s, want at least 800ms (doubled)", gap)
	}
}

func TestPolicyMaxInFlight(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)

	var mu sync.Mutex
	var running, peak int
	h := newHook(t, func(n int, w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		running++
		peak = max(peak, running)
		mu.Unlock()
		time.Sleep(50 * time.Millisecond)
		mu.Lock()
		running--
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	registerGroup(t, gw, "w1", "audit", "log", h.srv.URL, `{"max_in_flight":2}`, "shop.order_placed")
	ids := make([]string, 12)
	for i := range ids {
		ids[i] = fireOne(t, gw, "shop", "order_placed")
	}
	for _, id := range ids {
		waitState(t, gw, id, gateway.DeliveryCompleted)
	}
	mu.Lock()
	defer mu.Unlock()
	if peak > 2 || peak < 1 {
		t.Fatalf("peak concurrency %d, want at most max_in_flight 2", peak)
	}
}

func TestPolicyValidated(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)

	body := `{"service":"audit","base_url":"http://127.0.0.1:1","listeners":[{"name":"log","events":["shop.*"],"path":"/h","policy":{"timeout_ms":1}}]}`
	p := expectProblem(t, gw.do(t, "PUT", "/v1/workers/w1", body, nil, nil), http.StatusBadRequest, "invalid")
	if !strings.Contains(p.Detail, "timeout_ms") {
		t.Errorf("detail %q should name the field", p.Detail)
	}
}
