package metrics

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/gateway/dispatch"
)

// Source is what the gauges read at scrape time; store/postgres implements
// it. Each method returns the store's errors (EUnavailable and the like).
type Source interface {
	// ListListeners lists every listener group with its delivery counts
	// and lag.
	ListListeners(ctx context.Context) ([]gateway.ListenerStatus, error)
	// ListWorkers lists live workers.
	ListWorkers(ctx context.Context) ([]gateway.Worker, error)
	// QueueCounts counts River's unfinished jobs by queue and state.
	QueueCounts(ctx context.Context) ([]dispatch.QueueCount, error)
}

var (
	pendingDesc = prometheus.NewDesc("lightbus_listener_pending",
		"Deliveries of the listener group waiting for an attempt (new, scheduled or retrying).", []string{"service", "listener"}, nil)
	inFlightDesc = prometheus.NewDesc("lightbus_listener_in_flight",
		"Deliveries of the listener group being attempted now.", []string{"service", "listener"}, nil)
	deadDesc = prometheus.NewDesc("lightbus_listener_dead",
		"Dead deliveries of the listener group, kept until redriven or pruned.", []string{"service", "listener"}, nil)
	lagDesc = prometheus.NewDesc("lightbus_listener_lag_seconds",
		"Age of the listener group's oldest undelivered event (0 when caught up).", []string{"service", "listener"}, nil)
	endpointsDesc = prometheus.NewDesc("lightbus_listener_endpoints",
		"Live endpoints serving the listener group.", []string{"service", "listener"}, nil)
	workersDesc = prometheus.NewDesc("lightbus_workers_live",
		"Live (leased) workers by service.", []string{"service"}, nil)
	jobsDesc = prometheus.NewDesc("lightbus_river_jobs",
		"River jobs by queue and state (available, running, retryable, scheduled).", []string{"queue", "state"}, nil)
	stateUpDesc = prometheus.NewDesc("lightbus_metrics_state_up",
		"1 when the last read of the store's state for the gauges succeeded, else 0.", nil, nil)
)

// stateCollector reads the gauges that need queries, at most once per ttl
// however many scrapers ask: concurrent scrapes wait for one read.
type stateCollector struct {
	src     Source
	ttl     time.Duration
	timeout time.Duration
	logger  *slog.Logger
	now     func() time.Time

	mu      sync.Mutex
	readAt  time.Time
	metrics []prometheus.Metric
}

func newStateCollector(src Source, ttl, timeout time.Duration, logger *slog.Logger) *stateCollector {
	return &stateCollector{src: src, ttl: ttl, timeout: timeout, logger: logger, now: time.Now}
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{pendingDesc, inFlightDesc, deadDesc, lagDesc, endpointsDesc, workersDesc, jobsDesc, stateUpDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	if now := c.now(); c.metrics == nil || now.Sub(c.readAt) >= c.ttl {
		c.metrics = c.read()
		c.readAt = now
	}
	metrics := c.metrics
	c.mu.Unlock()
	for _, m := range metrics {
		ch <- m
	}
}

// read queries the source and returns the gauges it gives; a failed query
// leaves its gauges out and lightbus_metrics_state_up at 0.
func (c *stateCollector) read() []prometheus.Metric {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	var out []prometheus.Metric
	up := 1.0
	fail := func(what string, err error) {
		up = 0
		c.logger.WarnContext(ctx, "metrics: could not read the store", slog.String("what", what), slog.String("error", err.Error()))
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		out = append(out, prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...))
	}
	if groups, err := c.src.ListListeners(ctx); err != nil {
		fail("listeners", err)
	} else {
		for _, g := range groups {
			gauge(pendingDesc, float64(g.Pending), g.Service, g.Name)
			gauge(inFlightDesc, float64(g.InFlight), g.Service, g.Name)
			gauge(deadDesc, float64(g.Dead), g.Service, g.Name)
			gauge(lagDesc, float64(g.LagMS)/1000, g.Service, g.Name)
			gauge(endpointsDesc, float64(g.Endpoints), g.Service, g.Name)
		}
	}
	if workers, err := c.src.ListWorkers(ctx); err != nil {
		fail("workers", err)
	} else {
		live := map[string]int{}
		for _, w := range workers {
			live[w.Service]++
		}
		for service, n := range live {
			gauge(workersDesc, float64(n), service)
		}
	}
	if counts, err := c.src.QueueCounts(ctx); err != nil {
		fail("queues", err)
	} else {
		for _, q := range counts {
			gauge(jobsDesc, float64(q.Count), q.Queue, q.State)
		}
	}
	gauge(stateUpDesc, up)
	return out
}

// PoolStats are the database pool's statistics (pgxpool.Stat).
type PoolStats struct {
	// Acquired, Idle and Constructing count connections by state; Max is
	// the pool's size.
	Acquired, Idle, Constructing, Max int32
	// Acquires counts acquisitions, EmptyAcquires those that waited for a
	// connection, CanceledAcquires those abandoned; AcquireWait is the
	// time all acquisitions took.
	Acquires, EmptyAcquires, CanceledAcquires int64
	AcquireWait                               time.Duration
}

// poolCollector reports stats() at each scrape: it is cheap, no query.
// The families are named prefix_connections, prefix_max_connections and
// so on; pool names the pool in their help, sizeVar the setting of its
// size.
func poolCollector(prefix, pool, sizeVar string, stats func() PoolStats) prometheus.Collector {
	var (
		conns = prometheus.NewDesc(prefix+"_connections",
			"Connections of the "+pool+" by state (acquired, idle, constructing).", []string{"state"}, nil)
		size = prometheus.NewDesc(prefix+"_max_connections",
			"The "+pool+"'s size ("+sizeVar+").", nil, nil)
		acquires = prometheus.NewDesc(prefix+"_acquires_total",
			"Connections acquired from the "+pool+".", nil, nil)
		empty = prometheus.NewDesc(prefix+"_empty_acquires_total",
			"Acquisitions from the "+pool+" that had to wait because it had no idle connection.", nil, nil)
		canceled = prometheus.NewDesc(prefix+"_canceled_acquires_total",
			"Acquisitions from the "+pool+" abandoned (their context ended) before a connection came.", nil, nil)
		wait = prometheus.NewDesc(prefix+"_acquire_seconds_total",
			"Total time spent acquiring connections from the "+pool+".", nil, nil)
	)
	return collectorFunc{
		descs: []*prometheus.Desc{conns, size, acquires, empty, canceled, wait},
		collect: func(ch chan<- prometheus.Metric) {
			s := stats()
			ch <- prometheus.MustNewConstMetric(conns, prometheus.GaugeValue, float64(s.Acquired), "acquired")
			ch <- prometheus.MustNewConstMetric(conns, prometheus.GaugeValue, float64(s.Idle), "idle")
			ch <- prometheus.MustNewConstMetric(conns, prometheus.GaugeValue, float64(s.Constructing), "constructing")
			ch <- prometheus.MustNewConstMetric(size, prometheus.GaugeValue, float64(s.Max))
			ch <- prometheus.MustNewConstMetric(acquires, prometheus.CounterValue, float64(s.Acquires))
			ch <- prometheus.MustNewConstMetric(empty, prometheus.CounterValue, float64(s.EmptyAcquires))
			ch <- prometheus.MustNewConstMetric(canceled, prometheus.CounterValue, float64(s.CanceledAcquires))
			ch <- prometheus.MustNewConstMetric(wait, prometheus.CounterValue, s.AcquireWait.Seconds())
		},
	}
}

// collectorFunc is a prometheus.Collector of fixed descriptions.
type collectorFunc struct {
	descs   []*prometheus.Desc
	collect func(ch chan<- prometheus.Metric)
}

// Describe implements prometheus.Collector.
func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }
