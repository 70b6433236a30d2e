package postgres_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/webhook"
)

// taskRegistration is a worker of service "jobs" declaring the tasks.
func taskRegistration(id string, tasks ...string) *gateway.Registration {
	reg := registration(id, "jobs", nil)
	for _, name := range tasks {
		reg.Tasks = append(reg.Tasks, gateway.TaskDeclaration{Name: name, Kind: gateway.TaskEvery, Spec: "1s"})
	}
	return reg
}

// leads reports whether res grants the worker task.
func leads(t *testing.T, res *gateway.RegistrationResult, task string) bool {
	t.Helper()
	for _, g := range res.Tasks {
		if g.Name == task {
			return g.Leader
		}
	}
	t.Fatalf("no grant for task %s in %+v", task, res.Tasks)
	return false
}

func TestTaskElection(t *testing.T) {
	t.Parallel()

	t.Run("OneLeaderAmongConcurrentWorkers", func(t *testing.T) {
		t.Parallel()
		ctx, bundle := setup(t)
		const n = 8
		results := make([]*gateway.RegistrationResult, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				results[i], errs[i] = bundle.db.RegisterWorker(ctx, taskRegistration(fmt.Sprintf("w%d", i), "sweep", "report"), webhook.NewSecret, 7)
			})
		}
		wg.Wait()
		for _, task := range []string{"sweep", "report"} {
			leaders := 0
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("RegisterWorker w%d: %v", i, errs[i])
				}
				if leads(t, results[i], task) {
					leaders++
				}
			}
			if leaders != 1 {
				t.Fatalf("task %s: %d workers were told they lead it, want 1", task, leaders)
			}
		}
		// Heartbeats change nothing while the leader lives.
		for round := range 3 {
			leaders := 0
			for i := range n {
				if leads(t, register(ctx, t, bundle.db, taskRegistration(fmt.Sprintf("w%d", i), "sweep", "report")), "sweep") {
					leaders++
				}
			}
			if leaders != 1 {
				t.Fatalf("heartbeat round %d: %d leaders of sweep, want 1", round, leaders)
			}
		}
	})

	t.Run("ExpiredLeaderIsReplaced", func(t *testing.T) {
		t.Parallel()
		ctx, bundle := setup(t)
		if !leads(t, register(ctx, t, bundle.db, taskRegistration("a", "sweep")), "sweep") {
			t.Fatal("the first worker does not lead the task")
		}
		if leads(t, register(ctx, t, bundle.db, taskRegistration("b", "sweep")), "sweep") {
			t.Fatal("a second worker leads the task while the first is live")
		}
		tick := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		if err := bundle.db.ReportTaskRun(ctx, &gateway.TaskRun{Service: "jobs", Task: "sweep", WorkerID: "a", Tick: tick, DurationMS: 3}); err != nil {
			t.Fatalf("ReportTaskRun by the leader: %v", err)
		}
		if _, err := bundle.pool.Exec(ctx, `UPDATE lightbus_worker SET expires_at = now() - interval '1 second' WHERE id = 'a'`); err != nil {
			t.Fatal(err)
		}
		res := register(ctx, t, bundle.db, taskRegistration("b", "sweep"))
		if !leads(t, res, "sweep") {
			t.Fatal("the live worker did not take the task of an expired leader")
		}
		if g := res.Tasks[0]; g.LastTick == nil || !g.LastTick.Equal(tick) {
			t.Fatalf("the new leader's grant has last_tick %v, want %v", g.LastTick, tick)
		}
		// The old leader comes back: it is not the leader any more, and
		// its reports are refused.
		if leads(t, register(ctx, t, bundle.db, taskRegistration("a", "sweep")), "sweep") {
			t.Fatal("the expired leader got its task back while another leads it")
		}
		err := bundle.db.ReportTaskRun(ctx, &gateway.TaskRun{Service: "jobs", Task: "sweep", WorkerID: "a", Tick: tick.Add(time.Second)})
		if gateway.ErrorCode(err) != gateway.EConflict {
			t.Fatalf("ReportTaskRun by a former leader: %v, want conflict", err)
		}
	})

	t.Run("DeregisterReleases", func(t *testing.T) {
		t.Parallel()
		ctx, bundle := setup(t)
		register(ctx, t, bundle.db, taskRegistration("a", "sweep"))
		register(ctx, t, bundle.db, taskRegistration("b", "sweep"))
		if err := bundle.db.DeregisterWorker(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		tasks, err := bundle.db.ListTasks(ctx)
		if err != nil || len(tasks) != 1 || tasks[0].LeaderID != "" {
			t.Fatalf("ListTasks after the leader deregistered = %+v, %v; want the task without a leader", tasks, err)
		}
		if !leads(t, register(ctx, t, bundle.db, taskRegistration("b", "sweep")), "sweep") {
			t.Fatal("the next heartbeat did not take the released task")
		}
	})

	t.Run("LeaderThatStopsDeclaringIsReplaced", func(t *testing.T) {
		t.Parallel()
		ctx, bundle := setup(t)
		register(ctx, t, bundle.db, taskRegistration("a", "sweep"))
		register(ctx, t, bundle.db, taskRegistration("a")) // a new version without the task
		if !leads(t, register(ctx, t, bundle.db, taskRegistration("b", "sweep")), "sweep") {
			t.Fatal("a worker declaring the task did not take it from one that no longer does")
		}
	})

	t.Run("OtherServiceNeverLeads", func(t *testing.T) {
		t.Parallel()
		ctx, bundle := setup(t)
		reg := taskRegistration("a", "sweep")
		register(ctx, t, bundle.db, reg)
		other := taskRegistration("o", "sweep")
		other.Service = "other"
		if !leads(t, register(ctx, t, bundle.db, other), "sweep") {
			t.Fatal("a task of another service with the same name has no leader")
		}
		if !leads(t, register(ctx, t, bundle.db, reg), "sweep") {
			t.Fatal("the leader lost its task to a worker of another service")
		}
	})
}

func TestTaskRuns(t *testing.T) {
	t.Parallel()
	ctx, bundle := setup(t)
	register(ctx, t, bundle.db, taskRegistration("a", "sweep"))
	register(ctx, t, bundle.db, taskRegistration("b", "sweep"))

	tick := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, run := range []gateway.TaskRun{
		{Tick: tick, DurationMS: 5},
		{Tick: tick.Add(time.Minute), DurationMS: 7, Error: "disk full"},
	} {
		run.Service, run.Task, run.WorkerID = "jobs", "sweep", "a"
		if err := bundle.db.ReportTaskRun(ctx, &run); err != nil {
			t.Fatalf("ReportTaskRun(%v): %v", run.Tick, err)
		}
	}
	if err := bundle.db.ReportTaskRun(ctx, &gateway.TaskRun{Service: "jobs", Task: "sweep", WorkerID: "b", Tick: tick}); gateway.ErrorCode(err) != gateway.EConflict {
		t.Fatalf("ReportTaskRun by a worker that does not lead: %v, want conflict", err)
	}
	if err := bundle.db.ReportTaskRun(ctx, &gateway.TaskRun{Service: "jobs", Task: "nope", WorkerID: "a", Tick: tick}); gateway.ErrorCode(err) != gateway.ENotFound {
		t.Fatalf("ReportTaskRun of an unknown task: %v, want not_found", err)
	}
	tasks, err := bundle.db.ListTasks(ctx)
	if err != nil || len(tasks) != 1 {
		t.Fatalf("ListTasks = %+v, %v", tasks, err)
	}
	got := tasks[0]
	if got.Service != "jobs" || got.Name != "sweep" || got.Kind != gateway.TaskEvery || got.Spec != "1s" || got.LeaderID != "a" ||
		got.LastTick == nil || !got.LastTick.Equal(tick.Add(time.Minute)) || got.LastError != "disk full" ||
		got.LastDurationMS == nil || *got.LastDurationMS != 7 || got.LastWorkerID != "a" || got.Runs != 2 || got.Failures != 1 || got.LastRunAt == nil {
		t.Fatalf("ListTasks = %+v", got)
	}
}
