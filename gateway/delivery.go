package gateway

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Delivery job identity.
const (
	// DeliveryKind is the River job kind of a delivery.
	DeliveryKind = "lightbus.delivery"
	// QueueDelivery is the River queue deliveries run in.
	QueueDelivery = "lightbus_delivery"
)

// DeliveryArgs are the River job args of one event's delivery to one
// listener group.
type DeliveryArgs struct {
	EventID  string `json:"event_id"`
	Service  string `json:"service"`
	Listener string `json:"listener"`
}

// Kind implements river.JobArgs.
func (DeliveryArgs) Kind() string { return DeliveryKind }

// InsertOpts implements river.JobArgsWithInsertOpts: deliveries have their
// own queue so that they never wait behind other work.
func (DeliveryArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{Queue: QueueDelivery} }

// DeliveryTarget is what a delivery needs: the event, the group's signing
// secret and the URLs of the group's live endpoints.
type DeliveryTarget struct {
	Event     Event
	Secret    string
	Endpoints []string
}

// DeliveryStore reads what deliveries need.
type DeliveryStore interface {
	// DeliveryTarget returns the event, the group's secret and its live
	// endpoints (possibly none). Returns ErrNotFound when the event or the
	// group no longer exists.
	DeliveryTarget(ctx context.Context, eventID, service, listener string) (*DeliveryTarget, error)
}

// DeliveryWorker is the River worker that POSTs events to listeners.
type DeliveryWorker struct {
	river.WorkerDefaults[DeliveryArgs]

	client     *http.Client
	groupLimit int
	logger     *slog.Logger
	next       atomic.Uint64
	snooze     time.Duration
	store      DeliveryStore
	timeout    time.Duration

	mu       sync.Mutex
	inFlight map[string]int // running deliveries per group ("service.listener")
}

// DeliveryWorkerConfig configures a DeliveryWorker.
type DeliveryWorkerConfig struct {
	// Client makes the requests; nil uses a client with a tuned transport.
	Client *http.Client
	// GroupLimit caps the deliveries of one listener group running at once
	// in this worker, so that a slow group cannot occupy every River
	// worker slot and hold back the other groups. A delivery over the cap
	// snoozes briefly without using an attempt. 0 means no cap.
	GroupLimit int
	Logger     *slog.Logger
	// Snooze is how long a delivery waits, without using an attempt, when
	// its group has no live endpoint.
	Snooze time.Duration
	Store  DeliveryStore
	// Timeout bounds one delivery request.
	Timeout time.Duration
}

// NewDeliveryWorker returns a delivery worker.
func NewDeliveryWorker(cfg DeliveryWorkerConfig) *DeliveryWorker {
	w := &DeliveryWorker{
		client:     cfg.Client,
		groupLimit: cfg.GroupLimit,
		inFlight:   map[string]int{},
		logger:     cfg.Logger,
		snooze:     cfg.Snooze,
		store:      cfg.Store,
		timeout:    cfg.Timeout,
	}
	if w.client == nil {
		w.client = newHTTPClient()
	}
	if w.logger == nil {
		w.logger = slog.New(slog.DiscardHandler)
	}
	if w.snooze <= 0 {
		w.snooze = time.Second
	}
	if w.timeout <= 0 {
		w.timeout = 30 * time.Second
	}
	return w
}

// Timeout implements river.Worker: a little more than the request timeout,
// so that the request's own timeout is what normally fires.
func (w *DeliveryWorker) Timeout(*river.Job[DeliveryArgs]) time.Duration {
	return w.timeout + 5*time.Second
}

// groupBusySnooze is how long a delivery over its group's in-flight cap
// waits before it is tried again.
const groupBusySnooze = 50 * time.Millisecond

// acquire takes one of group's in-flight slots; false when the group is at
// its cap.
func (w *DeliveryWorker) acquire(group string) bool {
	if w.groupLimit <= 0 {
		return true
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inFlight[group] >= w.groupLimit {
		return false
	}
	w.inFlight[group]++
	return true
}

// release gives back a slot taken by acquire.
func (w *DeliveryWorker) release(group string) {
	if w.groupLimit <= 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inFlight[group]--; w.inFlight[group] <= 0 {
		delete(w.inFlight, group)
	}
}

// Work delivers one event to one live endpoint of its group.
func (w *DeliveryWorker) Work(ctx context.Context, job *river.Job[DeliveryArgs]) error {
	args := job.Args
	group := args.Service + "." + args.Listener
	if !w.acquire(group) {
		return river.JobSnooze(groupBusySnooze + rand.N(groupBusySnooze))
	}
	defer w.release(group)
	target, err := w.store.DeliveryTarget(ctx, args.EventID, args.Service, args.Listener)
	if errors.Is(err, ErrNotFound) {
		// The event or the group is gone: there is nothing left to deliver.
		return river.JobCancel(fmt.Errorf("event %s or listener %s.%s no longer exists", args.EventID, args.Service, args.Listener))
	}
	if err != nil {
		return err
	}
	if len(target.Endpoints) == 0 {
		return river.JobSnooze(w.snooze)
	}
	url := target.Endpoints[int(w.next.Add(1)%uint64(len(target.Endpoints)))]

	reqCtx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := NewDeliveryRequest(reqCtx, url, &target.Event, target.Secret, job.Attempt, args.Service+"."+args.Listener, time.Now())
	if err != nil {
		return err
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("deliver to %s: %w", url, err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // let the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	w.logger.DebugContext(ctx, "delivery failed",
		slog.String("event_id", args.EventID), slog.String("listener", args.Service+"."+args.Listener),
		slog.Int("attempt", job.Attempt), slog.Int("status", resp.StatusCode))
	return fmt.Errorf("listener answered %d: %s", resp.StatusCode, strings.TrimSpace(string(snippet)))
}

// NewDeliveryRequest builds the POST that delivers ev: the stored parameters
// as body, CloudEvents binary-mode headers, and Standard Webhooks headers
// signed with secret at time now.
func NewDeliveryRequest(ctx context.Context, url string, ev *Event, secret string, attempt int, listener string, now time.Time) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(ev.Params))
	if err != nil {
		return nil, fmt.Errorf("build delivery request: %w", err)
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	sig, err := Sign(secret, ev.ID, ts, ev.Params)
	if err != nil {
		return nil, err
	}
	h := req.Header
	h["Content-Type"] = []string{"application/json"}
	h["Ce-Specversion"] = []string{"1.0"}
	h["Ce-Id"] = []string{ev.ID}
	h["Ce-Source"] = []string{"/lightbus/" + ev.API}
	h["Ce-Type"] = []string{ev.API + "." + ev.Name}
	h["Ce-Time"] = []string{ev.CreatedAt.UTC().Format(time.RFC3339Nano)}
	h["Webhook-Id"] = []string{ev.ID}
	h["Webhook-Timestamp"] = []string{ts}
	h["Webhook-Signature"] = []string{sig}
	h["Lightbus-Attempt"] = []string{strconv.Itoa(attempt)}
	h["Lightbus-Listener"] = []string{listener}
	return req, nil
}

// Sign returns the Standard Webhooks signature header value ("v1,<base64>")
// of body for message id and timestamp, keyed with a "whsec_" secret.
func Sign(secret, id, timestamp string, body []byte) (string, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return "", fmt.Errorf("decode signing secret: %w", err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(timestamp))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// RetryPolicy is the delivery backoff: Base doubled with each failed
// attempt, capped at Max, with up to Jitter (a fraction) added at random.
type RetryPolicy struct {
	Base   time.Duration
	Max    time.Duration
	Jitter float64
}

// NextRetry implements river.ClientRetryPolicy.
func (p *RetryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(p.Delay(job.Attempt))
}

// Delay returns the wait after the given failed attempt (counted from 1).
func (p *RetryPolicy) Delay(attempt int) time.Duration {
	d := p.Base
	for i := 1; i < attempt && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	if p.Jitter > 0 {
		d += time.Duration(rand.Float64() * p.Jitter * float64(d))
	}
	return d
}

func newHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	// Listeners and workers are never followed elsewhere: a 3xx is a failure.
	return &http.Client{
		Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
