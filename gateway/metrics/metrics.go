// Package metrics is the gateway's Prometheus instrumentation: the counters
// and histograms of fires, RPC calls and delivery attempts (recorded by
// gateway/httpapi through httpapi.Recorder and by gateway/dispatch through
// dispatch.DeliveryObserver), the gauges read from the store at scrape time
// (listener groups, live workers, River queues), the database pool's gauges,
// and Go's runtime and process collectors. Handler serves them in the
// Prometheus text format. docs/OPERATING.md says what each one means.
//
// Label values are only names the gateway has validated (API, event,
// service, listener and method names) and fixed words (outcomes, states),
// never raw request input; a family holds at most MaxSeries label sets, past
// which the names of new ones read Other.
package metrics

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lightbus-go/lightbus/gateway/dispatch"
)

// Other is the name label value of the series recorded once a family holds
// MaxSeries label sets.
const Other = "_other"

// Config configures the metrics.
type Config struct {
	// Source is read for the listener, worker and queue gauges, at most
	// once per CacheTTL; nil leaves them out.
	Source Source
	// Pool returns the database pool's statistics at each scrape; nil
	// leaves them out.
	Pool func() PoolStats
	// ReadPool returns the read database pool's statistics
	// (DATABASE_READ_URL) at each scrape, as lightbus_db_read_pool_*; nil
	// leaves them out.
	ReadPool func() PoolStats
	// CacheTTL is how long the Source's answers are reused, however many
	// scrapers ask (default 5s).
	CacheTTL time.Duration
	// QueryTimeout bounds the Source's queries of one scrape (default 5s).
	QueryTimeout time.Duration
	// MaxSeries bounds the label sets of each family (default 1000).
	MaxSeries int
	Logger    *slog.Logger
}

// Metrics records the gateway's metrics in its own registry.
type Metrics struct {
	reg *prometheus.Registry

	fired           *family[prometheus.Counter]
	fireDuration    *family[prometheus.Observer]
	calls           *family[prometheus.Counter]
	callDuration    *family[prometheus.Observer]
	deliveries      *family[prometheus.Counter]
	attemptDuration *family[prometheus.Observer]
	fireToDelivered *family[prometheus.Observer]
}

// latencyBuckets are the buckets of request and attempt durations, in
// seconds: 1 ms to 60 s.
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// lagBuckets are the buckets of fire-to-delivered times, in seconds: 5 ms
// to a day, for deliveries that waited through retries.
var lagBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600}

// New returns the metrics of cfg, registered with Go's runtime and process
// collectors.
func New(cfg Config) *Metrics {
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = 5 * time.Second
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = 5 * time.Second
	}
	if cfg.MaxSeries <= 0 {
		cfg.MaxSeries = 1000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{reg: prometheus.NewRegistry()}
	max := cfg.MaxSeries
	counter := func(name, help string, labels ...string) *family[prometheus.Counter] {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		m.reg.MustRegister(v)
		return newFamily(max, 2, func(lv ...string) prometheus.Counter { return v.WithLabelValues(lv...) }, len(labels))
	}
	histogram := func(name, help string, buckets []float64, labels ...string) *family[prometheus.Observer] {
		v := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
		m.reg.MustRegister(v)
		return newFamily(max, len(labels), func(lv ...string) prometheus.Observer { return v.WithLabelValues(lv...) }, len(labels))
	}
	m.fired = counter("lightbus_events_fired_total",
		"Events fired, one of a batch included, by API, event and outcome (accepted, replayed, or the error code).", "api", "event", "outcome")
	m.fireDuration = histogram("lightbus_fire_duration_seconds",
		"Time from a fire request to its answer, by API (empty for a batch or a fire whose names were invalid).", latencyBuckets, "api")
	m.calls = counter("lightbus_rpc_calls_total",
		"RPC calls by API, method and outcome (ok, or the error code).", "api", "method", "outcome")
	m.callDuration = histogram("lightbus_rpc_duration_seconds",
		"Time from an RPC call to its answer, by API and method.", latencyBuckets, "api", "method")
	m.deliveries = counter("lightbus_deliveries_total",
		"Delivery attempts by listener group and outcome (delivered, retried, endpoint_removed, dead, cancelled).", "service", "listener", "outcome")
	m.attemptDuration = histogram("lightbus_delivery_duration_seconds",
		"Time of one delivery attempt's request to a listener, by listener group.", latencyBuckets, "service", "listener")
	m.fireToDelivered = histogram("lightbus_fire_to_delivered_seconds",
		"Time from an event's fire (its created_at) to its delivery to a listener group (the first 2xx).", lagBuckets, "service", "listener")

	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if cfg.Source != nil {
		m.reg.MustRegister(newStateCollector(cfg.Source, cfg.CacheTTL, cfg.QueryTimeout, cfg.Logger))
	}
	if cfg.Pool != nil {
		m.reg.MustRegister(poolCollector("lightbus_db_pool", "database pool", "LIGHTBUS_DB_MAX_CONNS", cfg.Pool))
	}
	if cfg.ReadPool != nil {
		m.reg.MustRegister(poolCollector("lightbus_db_read_pool", "read database pool", "LIGHTBUS_DB_READ_MAX_CONNS", cfg.ReadPool))
	}
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Registry returns the registry the metrics are in, for tests and for
// registering more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// EventFired implements httpapi.Recorder: it counts one fired event.
func (m *Metrics) EventFired(api, event, outcome string) {
	m.fired.get(api, event, outcome).Inc()
}

// FireDone implements httpapi.Recorder: it observes a fire request's time.
func (m *Metrics) FireDone(api string, took time.Duration) {
	m.fireDuration.get(api, "", "").Observe(took.Seconds())
}

// CallDone implements httpapi.Recorder: it counts an RPC call and observes
// its time.
func (m *Metrics) CallDone(api, method, outcome string, took time.Duration) {
	m.calls.get(api, method, outcome).Inc()
	m.callDuration.get(api, method, "").Observe(took.Seconds())
}

// DeliveryDone implements dispatch.DeliveryObserver: it counts a delivery
// attempt and observes its request's time (when one was made) and, for a
// delivered event, the time since it was fired (0 if the database's
// clock, which stamped created_at, runs ahead of this one).
func (m *Metrics) DeliveryDone(service, listener, outcome string, took, sinceFired time.Duration) {
	m.deliveries.get(service, listener, outcome).Inc()
	if took > 0 {
		m.attemptDuration.get(service, listener, "").Observe(took.Seconds())
	}
	if outcome == dispatch.AttemptDelivered {
		m.fireToDelivered.get(service, listener, "").Observe(max(sinceFired, 0).Seconds())
	}
}

// family holds the resolved children of a vector by label values, so that
// recording costs a read-locked map lookup, and bounds their number: once
// it holds max, a new label set's names (its first names labels) read
// Other.
type family[T any] struct {
	with   func(lv ...string) T
	labels int // how many of the three key positions are labels
	names  int // how many leading labels are names, replaced by Other
	max    int

	mu       sync.RWMutex
	children map[[3]string]T
}

func newFamily[T any](max, names int, with func(lv ...string) T, labels int) *family[T] {
	return &family[T]{with: with, labels: labels, names: min(names, labels), max: max, children: map[[3]string]T{}}
}

// get returns the child of the label values a, b, c (the unused trailing
// ones "").
func (f *family[T]) get(a, b, c string) T {
	key := [3]string{a, b, c}
	f.mu.RLock()
	child, ok := f.children[key]
	f.mu.RUnlock()
	if ok {
		return child
	}
	return f.add(key)
}

// add makes the child of key, a new label set (or Other's once the family
// is full). It takes key by value, apart from get, so that the lookup that
// finds a child allocates nothing.
func (f *family[T]) add(key [3]string) T {
	f.mu.Lock()
	defer f.mu.Unlock()
	if child, ok := f.children[key]; ok {
		return child
	}
	if len(f.children) >= f.max {
		for i := range f.names {
			key[i] = Other
		}
		if child, ok := f.children[key]; ok {
			return child
		}
	}
	child := f.with(key[:f.labels]...)
	f.children[key] = child
	return child
}
