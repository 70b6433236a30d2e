package gateway

import (
	"context"
	"time"
)

// Task kinds: how a scheduled task's spec reads.
const (
	// TaskEvery runs at a fixed interval; its spec is a Go duration ("5m0s").
	TaskEvery = "every"
	// TaskCron runs on a 5-field cron schedule, optionally prefixed with
	// CRON_TZ= or TZ= ("CRON_TZ=Europe/London 0 3 * * *").
	TaskCron = "cron"
)

// Bounds on the tasks one registration may declare.
const (
	// MaxRegistrationTasks is the most scheduled tasks one worker may
	// declare.
	MaxRegistrationTasks = 100
	// MaxTaskSpecLen is the longest spec, in bytes.
	MaxTaskSpecLen = 200
	// MaxTaskErrorLen is the longest error text a run report may carry,
	// in bytes.
	MaxTaskErrorLen = 4096
	// MaxTaskDuration is the longest duration_ms a run report may carry.
	MaxTaskDuration = 7 * 24 * time.Hour
)

// TaskDeclaration is a scheduled task a worker declares: the gateway elects
// one live worker of the service to run it (see TaskGrant). The gateway
// does not parse the schedule: Kind and Spec are shown as declared, and the
// latest registration's win.
type TaskDeclaration struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	Spec string `json:"spec"`
}

// Validate checks the name, the kind and the length of the spec.
func (d *TaskDeclaration) Validate() error {
	if err := ValidateIdent("task", d.Name); err != nil {
		return err
	}
	if d.Kind != TaskEvery && d.Kind != TaskCron {
		return Errorf(EInvalid, "task %q: kind %q: want %q or %q", d.Name, d.Kind, TaskEvery, TaskCron)
	}
	if d.Spec == "" || len(d.Spec) > MaxTaskSpecLen {
		return Errorf(EInvalid, "task %q: spec must be 1 to %d bytes", d.Name, MaxTaskSpecLen)
	}
	return nil
}

// validateTasks checks a registration's task declarations.
func (r *Registration) validateTasks() error {
	if len(r.Tasks) > MaxRegistrationTasks {
		return Errorf(EInvalid, "the registration declares %d tasks: at most %d", len(r.Tasks), MaxRegistrationTasks)
	}
	seen := map[string]bool{}
	for i := range r.Tasks {
		if err := r.Tasks[i].Validate(); err != nil {
			return err
		}
		if seen[r.Tasks[i].Name] {
			return Errorf(EInvalid, "task %q declared twice", r.Tasks[i].Name)
		}
		seen[r.Tasks[i].Name] = true
	}
	return nil
}

// TaskGrant answers a registration for each task it declares: whether this
// worker leads the task (runs its ticks) until its lease ends, and the
// scheduled time of the latest run reported, whose tick and earlier ones a
// new leader skips.
type TaskGrant struct {
	Name     string     `json:"name"`
	Leader   bool       `json:"leader"`
	LastTick *time.Time `json:"last_tick,omitempty"`
}

// Task is a scheduled task as the gateway lists it: its schedule, its live
// leader (none when no live worker of the service leads it) and its latest
// run.
type Task struct {
	Service string `json:"service"`
	Name    string `json:"name"`
	Kind    string `json:"kind"`
	Spec    string `json:"spec"`
	// LeaderID is the live worker that runs the task's ticks, "" when none
	// does: the next heartbeat of a worker declaring it takes it.
	LeaderID string `json:"leader_id,omitempty"`
	// LastTick is the scheduled time of the latest run reported;
	// LastRunAt when the report arrived; LastDurationMS how long it ran;
	// LastError its error ("" when it succeeded); LastWorkerID who ran it.
	LastTick       *time.Time `json:"last_tick,omitempty"`
	LastRunAt      *time.Time `json:"last_run_at,omitempty"`
	LastDurationMS *int64     `json:"last_duration_ms,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	LastWorkerID   string     `json:"last_worker_id,omitempty"`
	// Runs and Failures count the reported runs, and those that failed.
	Runs     int64 `json:"runs"`
	Failures int64 `json:"failures"`
}

// TaskRun is a leader's report of one run of a task.
type TaskRun struct {
	Service  string `json:"-"`
	Task     string `json:"-"`
	WorkerID string `json:"worker_id"`
	// Tick is the run's scheduled time.
	Tick       time.Time `json:"tick"`
	DurationMS int64     `json:"duration_ms"`
	// Error is the run's error, "" when it succeeded.
	Error string `json:"error,omitempty"`
}

// Validate checks the names, the tick, the duration and the error's length.
func (r *TaskRun) Validate() error {
	if err := ValidateAPIName(r.Service); err != nil {
		return Errorf(EInvalid, "invalid service name %q: want identifiers joined by dots", r.Service)
	}
	if err := ValidateIdent("task", r.Task); err != nil {
		return err
	}
	if err := ValidateWorkerID(r.WorkerID); err != nil {
		return err
	}
	if r.Tick.IsZero() {
		return Errorf(EInvalid, "tick is required: the run's scheduled time, RFC 3339")
	}
	if r.DurationMS < 0 || r.DurationMS > MaxTaskDuration.Milliseconds() {
		return Errorf(EInvalid, "duration_ms %d: want 0 to %d", r.DurationMS, MaxTaskDuration.Milliseconds())
	}
	if len(r.Error) > MaxTaskErrorLen {
		return Errorf(EInvalid, "error is longer than %d bytes", MaxTaskErrorLen)
	}
	return nil
}

// TaskStore keeps the state of scheduled tasks; the election itself happens
// in WorkerStore.RegisterWorker, in the registration's transaction.
type TaskStore interface {
	// ReportTaskRun records a run of a task led by run.WorkerID. Errors:
	// ENotFound when the service has no such task, EConflict when another
	// worker (or none) leads it.
	ReportTaskRun(ctx context.Context, run *TaskRun) error

	// ListTasks lists every task, by service and name.
	ListTasks(ctx context.Context) ([]Task, error)
}

// ReportTaskRun records a run of a scheduled task by its leader. Needs
// serve on the service (as a worker declaring tasks does). Errors:
// EInvalid, EUnauthorized, EForbidden, ENotFound (no such task), EConflict
// (the worker does not lead the task: it must stop running it),
// EUnavailable.
func (s *Service) ReportTaskRun(ctx context.Context, run *TaskRun) error {
	if err := run.Validate(); err != nil {
		return err
	}
	if err := s.authorize(ctx, ScopeServe, run.Service); err != nil {
		return err
	}
	if s.cfg.Tasks == nil {
		return Errorf(EUnavailable, "this gateway keeps no scheduled tasks")
	}
	return s.bounded(ctx, func(ctx context.Context) error { return s.cfg.Tasks.ReportTaskRun(ctx, run) })
}

// Tasks lists every scheduled task with its leader and latest run. Needs
// read.
func (s *Service) Tasks(ctx context.Context) ([]Task, error) {
	if err := s.authorize(ctx, ScopeRead, ""); err != nil {
		return nil, err
	}
	var tasks []Task
	if s.cfg.Tasks != nil {
		err := s.bounded(ctx, func(ctx context.Context) (err error) {
			tasks, err = s.cfg.Tasks.ListTasks(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	if tasks == nil {
		tasks = []Task{}
	}
	return tasks, nil
}
