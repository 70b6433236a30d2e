package lightbus

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// TaskFunc is the body of a scheduled task ([Bus.Every], [Bus.Schedule]).
// Its ctx is cancelled when the worker stops and the run has not finished
// within the shutdown timeout. An error (or a panic) is logged and reported
// to the gateway; the task runs again at its next tick.
type TaskFunc func(ctx context.Context) error

// TaskOption adjusts a scheduled task ([Bus.Every], [Bus.Schedule]) or a
// background task ([Bus.Go]); each option says which it applies to.
type TaskOption func(*taskConfig)

type taskConfig struct {
	name       string
	runAtStart bool
	perProcess bool
	loc        *time.Location
	restart    bool // background tasks only (RestartOnFailure)
}

// TaskName names a task. A scheduled task without it is named after its
// function ("expireSessions"), and a function literal must be named with
// it; names are identifiers, unique within the service. A background task
// without it is "task-N", N counting from 1 in the order of [Bus.Go] calls.
func TaskName(name string) TaskOption { return func(c *taskConfig) { c.name = name } }

// RunAtStart makes an [Bus.Every] task run as soon as the worker leads it
// (at start, for a [PerProcess] task) instead of one interval later. A
// worker taking the task over from another runs it when the interval since
// the other's last run has passed.
func RunAtStart() TaskOption { return func(c *taskConfig) { c.runAtStart = true } }

// PerProcess makes the task run in every worker process of the service, as
// Lightbus does, instead of once per tick per service.
func PerProcess() TaskOption { return func(c *taskConfig) { c.perProcess = true } }

// InLocation sets the time zone of a [Bus.Schedule] cron spec without a
// CRON_TZ= prefix; the default is UTC.
func InLocation(loc *time.Location) TaskOption { return func(c *taskConfig) { c.loc = loc } }

// Task kinds as the gateway lists them.
const (
	taskEvery = "every"
	taskCron  = "cron"
)

// maxTaskSpecLen and maxTaskErrorLen are the gateway's bounds on a task's
// declared spec and on a run's error text, in bytes.
const (
	maxTaskSpecLen  = 200
	maxTaskErrorLen = 4096
)

// task is a scheduled task and, unless it runs per process, whether this
// worker leads it.
type task struct {
	name       string
	kind       string
	spec       string // as declared to the gateway
	sched      schedule
	interval   time.Duration // every only
	runAtStart bool
	perProcess bool
	fn         TaskFunc

	running atomic.Bool   // a run is in progress
	gained  chan struct{} // buffered: this worker became the leader

	mu sync.Mutex
	// leaderUntil is when this worker's lead ends unless a heartbeat
	// renews it: the heartbeat's send time plus the lease, on this
	// process's monotonic clock, so never later than the gateway's.
	leaderUntil time.Time
	// lastTick is the latest tick run here or reported by the gateway;
	// ticks at or before it are skipped.
	lastTick time.Time
}

// taskDecl is the wire form of a task in PUT /v1/workers/{id}.
type taskDecl struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	Spec string `json:"spec"`
}

// TaskGrant answers a registration for each task it declares.
type TaskGrant struct {
	// Name is the task's name.
	Name string `json:"name"`
	// Leader is true when this worker runs the task's ticks.
	Leader bool `json:"leader"`
	// LastTick is the scheduled time of the task's latest reported run.
	LastTick *time.Time `json:"last_tick,omitempty"`
}

// Every runs fn every interval, once per tick per service: the gateway
// elects one live worker of the service to run it, and another takes over
// within a lease when that one stops or dies ([PerProcess] runs it in
// every process instead). The first run is one interval after the worker
// starts leading, or at once with [RunAtStart]. Ticks are interval apart
// from start to start: a run's own time is subtracted from the wait, and a
// tick that comes while the previous run is still going is skipped and
// logged. Declare tasks before [Bus.Run] starts, e.g. in the bus package.
// It panics on a bad interval or name, or a name already used.
func (b *Bus) Every(interval time.Duration, fn TaskFunc, opts ...TaskOption) {
	if interval <= 0 {
		panic(fmt.Sprintf("lightbus: Every %s: the interval must be positive", interval))
	}
	b.addTask(taskEvery, interval.String(), everySchedule{interval}, interval, fn, opts)
}

// Schedule runs fn on a standard 5-field cron schedule ("minute hour
// day-of-month month day-of-week", or a descriptor such as "@hourly"), in
// UTC unless the spec starts with CRON_TZ= or TZ= ("CRON_TZ=Europe/London 0
// 3 * * *") or [InLocation] says otherwise. Like [Bus.Every] it runs once
// per tick per service unless [PerProcess], skips a tick that comes while
// the previous run is still going, and does not catch up missed ticks. It
// panics on a bad spec or name, or a name already used.
func (b *Bus) Schedule(spec string, fn TaskFunc, opts ...TaskOption) {
	var c taskConfig
	for _, o := range opts {
		o(&c)
	}
	sched, declared, err := parseCron(spec, c.loc)
	if err != nil {
		panic("lightbus: Schedule: " + err.Error())
	}
	b.addTask(taskCron, declared, sched, 0, fn, opts)
}

func (b *Bus) addTask(kind, spec string, sched schedule, interval time.Duration, fn TaskFunc, opts []TaskOption) {
	if fn == nil {
		panic("lightbus: scheduled task: nil function")
	}
	var c taskConfig
	for _, o := range opts {
		o(&c)
	}
	if c.name == "" {
		c.name = funcName(fn)
		if c.name == "" {
			panic("lightbus: scheduled task: name a function literal with TaskName")
		}
	}
	if !isIdent(c.name) {
		panic(fmt.Sprintf("lightbus: scheduled task: invalid name %q: want an identifier", c.name))
	}
	if len(spec) > maxTaskSpecLen {
		panic(fmt.Sprintf("lightbus: scheduled task %s: spec longer than %d bytes", c.name, maxTaskSpecLen))
	}
	t := &task{
		name: c.name, kind: kind, spec: spec, sched: sched, interval: interval,
		runAtStart: c.runAtStart, perProcess: c.perProcess, fn: fn,
		gained: make(chan struct{}, 1),
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tasks == nil {
		b.tasks = map[string]*task{}
	}
	if _, dup := b.tasks[c.name]; dup {
		panic(fmt.Sprintf("lightbus: scheduled task %s declared twice", c.name))
	}
	b.tasks[c.name] = t
}

// anonymousFunc matches the last element of a function literal's name.
var anonymousFunc = regexp.MustCompile(`^func\d+$`)

// funcName returns the name of the function fn refers to
// ("expireSessions", "Sweep" for a method value), or "" for a function
// literal.
func funcName(fn TaskFunc) string {
	f := runtime.FuncForPC(reflect.ValueOf(fn).Pointer())
	if f == nil {
		return ""
	}
	name := f.Name()
	name = name[strings.LastIndexByte(name, '/')+1:]
	name = strings.TrimSuffix(name, "-fm")
	name = name[strings.LastIndexByte(name, '.')+1:]
	if anonymousFunc.MatchString(name) || !isIdent(name) {
		return ""
	}
	return name
}

// taskDecls returns the declarations of the tasks the gateway elects a
// leader for. The caller holds b.mu.
func (b *Bus) taskDecls() []taskDecl {
	if !b.runs(FeatureTasks) {
		return nil
	}
	var decls []taskDecl
	for _, t := range b.tasks {
		if !t.perProcess {
			decls = append(decls, taskDecl{Name: t.name, Kind: t.kind, Spec: t.spec})
		}
	}
	return decls
}

// applyTaskGrants records which tasks this worker leads, from the answer
// to a registration sent at sent.
func (b *Bus) applyTaskGrants(grants []TaskGrant, sent time.Time) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	now := time.Now()
	for _, g := range grants {
		t := b.tasks[g.Name]
		if t == nil || t.perProcess {
			continue
		}
		t.mu.Lock()
		was := now.Before(t.leaderUntil)
		if g.Leader {
			t.leaderUntil = sent.Add(b.leaseTTL)
			if g.LastTick != nil && g.LastTick.After(t.lastTick) {
				t.lastTick = *g.LastTick
			}
		} else {
			t.leaderUntil = time.Time{}
		}
		t.mu.Unlock()
		switch {
		case g.Leader && !was:
			b.log.Info("lightbus: this worker leads the task", "task", g.Name, "worker_id", b.workerID)
			select {
			case t.gained <- struct{}{}:
			default:
			}
		case !g.Leader && was:
			b.log.Info("lightbus: this worker no longer leads the task", "task", g.Name, "worker_id", b.workerID)
		}
	}
}

// leads reports whether this worker may run the task's tick now, and
// the latest tick known to have run.
func (t *task) leads() (bool, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.perProcess || time.Now().Before(t.leaderUntil), t.lastTick
}

// ran records tick as run.
func (t *task) ran(tick time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tick.After(t.lastTick) {
		t.lastTick = tick
	}
}

// lose drops this worker's lead.
func (t *task) lose() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.leaderUntil = time.Time{}
}

// after returns the first tick after tick that is not before now.
func (t *task) after(tick, now time.Time) time.Time {
	if t.kind == taskCron {
		return t.sched.next(maxTime(tick, now))
	}
	next := tick.Add(t.interval)
	if next.Before(now) {
		next = next.Add(now.Sub(next).Truncate(t.interval))
		if next.Before(now) {
			next = next.Add(t.interval)
		}
	}
	return next
}

// onGain returns the next tick when this worker has just become the
// leader and next was its tick before; last is the latest tick run.
func (t *task) onGain(next, last, now time.Time) time.Time {
	switch {
	case t.kind == taskCron:
		return t.sched.next(maxTime(last, now))
	case !last.IsZero():
		// Continue the previous leader's cadence; an overdue tick runs now.
		return maxTime(last.Add(t.interval), now)
	case t.runAtStart:
		return now
	}
	return next
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// startTasks runs the scheduled tasks until the returned stop is called;
// stop waits for runs in progress, cancelling them after the shutdown
// timeout.
func (b *Bus) startTasks(ctx context.Context) (stop func()) {
	b.mu.RLock()
	tasks := make([]*task, 0, len(b.tasks))
	for _, t := range b.tasks {
		tasks = append(tasks, t)
	}
	b.mu.RUnlock()
	if len(tasks) == 0 {
		return func() {}
	}
	if !b.runs(FeatureTasks) {
		b.log.Info("lightbus: scheduled tasks skipped", "tasks", len(tasks))
		return func() {}
	}
	loopCtx, stopLoops := context.WithCancel(ctx)
	runCtx, cancelRuns := context.WithCancel(context.WithoutCancel(ctx))
	var loops, runs sync.WaitGroup
	for _, t := range tasks {
		loops.Go(func() { b.taskLoop(loopCtx, runCtx, t, &runs) })
	}
	return func() {
		stopLoops()
		loops.Wait()
		done := make(chan struct{})
		go func() { runs.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(b.shutdownTimeout):
			b.log.Warn("lightbus: scheduled tasks did not finish in time; cancelling them")
			cancelRuns()
			<-done
		}
		cancelRuns()
	}
}

// taskLoop waits for each tick of t and runs it when this worker may.
func (b *Bus) taskLoop(ctx, runCtx context.Context, t *task, runs *sync.WaitGroup) {
	now := time.Now()
	next := now.Add(t.interval)
	switch {
	case t.kind == taskCron:
		next = t.sched.next(now)
	case t.runAtStart && t.perProcess:
		next = now
	}
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.gained:
			_, last := t.leads()
			next = t.onGain(next, last, time.Now())
			timer.Reset(time.Until(next))
			continue
		case <-timer.C:
		}
		// Ticks are wall-clock times in microseconds, as the gateway
		// stores them.
		tick := next.Round(0).Truncate(time.Microsecond)
		now := time.Now()
		next = t.after(tick, now)
		timer.Reset(time.Until(next))
		leader, last := t.leads()
		switch {
		case !leader:
			b.log.Debug("lightbus: task tick skipped: another worker leads it", "task", t.name, "tick", tick)
			continue
		case !tick.After(last):
			b.log.Debug("lightbus: task tick skipped: it has run", "task", t.name, "tick", tick, "last_tick", last)
			continue
		case !t.running.CompareAndSwap(false, true):
			b.log.Warn("lightbus: task tick skipped: the previous run is still going", "task", t.name, "tick", tick)
			continue
		}
		t.ran(tick)
		runs.Go(func() {
			defer t.running.Store(false)
			b.runTask(runCtx, t, tick)
		})
	}
}

// runTask runs one tick of t and, unless it runs per process, reports the
// run to the gateway.
func (b *Bus) runTask(ctx context.Context, t *task, tick time.Time) {
	start := time.Now()
	err := callTask(context.WithValue(ctx, tickKey{}, tick), t.fn)
	took := time.Since(start)
	if err != nil {
		b.log.Error("lightbus: task failed; it runs again at its next tick", "task", t.name, "tick", tick, "duration", took, "error", err)
	} else {
		b.log.Debug("lightbus: task ran", "task", t.name, "tick", tick, "duration", took)
	}
	if t.perProcess {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if rerr := b.reportRun(rctx, t.name, tick, took, err); rerr != nil {
		var lerr *Error
		if errors.As(rerr, &lerr) && lerr.Status == http.StatusConflict {
			t.lose()
			b.log.Warn("lightbus: another worker leads the task now; this one stops running it", "task", t.name, "worker_id", b.workerID)
			return
		}
		b.log.Warn("lightbus: could not report a task run", "task", t.name, "tick", tick, "error", rerr)
	}
}

type tickKey struct{}

// TaskTick returns the scheduled time of the task run whose ctx this is,
// and false outside a task run. Runs of one task have distinct ticks, so a
// task can use it to make its work idempotent per tick.
func TaskTick(ctx context.Context) (time.Time, bool) {
	t, ok := ctx.Value(tickKey{}).(time.Time)
	return t, ok
}

// callTask runs fn, turning a panic into an error.
func callTask(ctx context.Context, fn TaskFunc) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn(ctx)
}

// reportRun sends POST /v1/tasks/{service}/{task}/runs.
func (b *Bus) reportRun(ctx context.Context, name string, tick time.Time, took time.Duration, runErr error) error {
	body := struct {
		WorkerID   string    `json:"worker_id"`
		Tick       time.Time `json:"tick"`
		DurationMS int64     `json:"duration_ms"`
		Error      string    `json:"error,omitempty"`
	}{WorkerID: b.workerID, Tick: tick.UTC(), DurationMS: took.Milliseconds()}
	if runErr != nil {
		body.Error = truncateUTF8(runErr.Error(), maxTaskErrorLen)
		if body.Error == "" {
			body.Error = "error"
		}
	}
	data, err := jsonBody(body)
	if err != nil {
		return err
	}
	return b.do(ctx, http.MethodPost, "/v1/tasks/"+url.PathEscape(b.service)+"/"+url.PathEscape(name)+"/runs", nil, data, nil, nil)
}

// truncateUTF8 cuts s to at most n bytes of valid UTF-8.
func truncateUTF8(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// Task is a scheduled task as the gateway lists it (GET /v1/tasks).
type Task struct {
	// Service and Name identify the task.
	Service string `json:"service"`
	Name    string `json:"name"`
	// Kind is "every" or "cron"; Spec the schedule as declared.
	Kind string `json:"kind"`
	Spec string `json:"spec"`
	// LeaderID is the live worker running the task, "" when none does.
	LeaderID string `json:"leader_id,omitempty"`
	// LastTick is the scheduled time of the latest reported run, LastRunAt
	// when it was reported, LastDurationMS how long it took, LastError its
	// error ("" when it succeeded) and LastWorkerID who ran it.
	LastTick       *time.Time `json:"last_tick,omitempty"`
	LastRunAt      *time.Time `json:"last_run_at,omitempty"`
	LastDurationMS *int64     `json:"last_duration_ms,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	LastWorkerID   string     `json:"last_worker_id,omitempty"`
	// Runs and Failures count the reported runs and the failed ones.
	Runs     int64 `json:"runs"`
	Failures int64 `json:"failures"`
}

// Tasks lists the scheduled tasks with their leaders and latest runs (GET
// /v1/tasks).
func (b *Bus) Tasks(ctx context.Context) ([]Task, error) {
	var out struct {
		Tasks []Task `json:"tasks"`
	}
	if err := b.do(ctx, http.MethodGet, "/v1/tasks", nil, nil, nil, &out); err != nil {
		return nil, fmt.Errorf("lightbus: list tasks: %w", err)
	}
	return out.Tasks, nil
}
