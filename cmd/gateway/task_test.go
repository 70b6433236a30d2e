package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/internal/testwait"
)

// taskWorkerEnv, when set, makes the test binary a worker process of
// service "jobs" (see taskWorkerMain) that appends a line for every task
// run to the file it names.
const taskWorkerEnv = "LIGHTBUS_TEST_TASK_RUNS"

// taskInterval is how often the worker processes' tasks tick.
const taskInterval = 200 * time.Millisecond

// taskWorkerMain runs the test binary as a worker of service "jobs" at
// $LIGHTBUS_URL as $LIGHTBUS_WORKER_ID, with three tasks every
// taskInterval: "beat" (once per service), "local" (PerProcess) and
// "flaky" (once per service, always failing). Each run appends
// "worker-id task tick" (its scheduled time) to the file $LIGHTBUS_TEST_TASK_RUNS names, in one
// write, so that lines from several processes do not interleave.
func taskWorkerMain() int {
	runs, err := os.OpenFile(os.Getenv(taskWorkerEnv), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	bus, err := lightbus.Create(
		lightbus.WithService("jobs"),
		lightbus.WithWorkerAddr("127.0.0.1:0"),
		lightbus.WithLeaseTTL(1500*time.Millisecond),
		lightbus.WithShutdownTimeout(2*time.Second),
		lightbus.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	record := func(task string) lightbus.TaskFunc {
		return func(ctx context.Context) error {
			tick, ok := lightbus.TaskTick(ctx)
			if !ok {
				return errors.New("no tick in the run's context")
			}
			_, err := fmt.Fprintf(runs, "%s %s %s\n", bus.WorkerID(), task, tick.UTC().Format(time.RFC3339Nano))
			return err
		}
	}
	bus.Every(taskInterval, record("beat"), lightbus.TaskName("beat"), lightbus.RunAtStart())
	bus.Every(taskInterval, record("local"), lightbus.TaskName("local"), lightbus.PerProcess())
	beat := record("flaky")
	bus.Every(taskInterval, func(ctx context.Context) error {
		if err := beat(ctx); err != nil {
			return err
		}
		return errors.New("flaky failed on purpose")
	}, lightbus.TaskName("flaky"))
	lightbus.Main(bus)
	return 0
}

// checkOneLeaderAtATime fails t unless the runs of a singleton task, in the
// order they were written, have ticks that only move forward, each at least
// half an interval after the one before: no tick ran twice, and no two
// workers ran the task side by side (their rhythms would interleave). A
// worker may follow another (a takeover), never run beside it.
func checkOneLeaderAtATime(t *testing.T, runs []taskRun) {
	t.Helper()
	for i := 1; i < len(runs); i++ {
		prev, r := runs[i-1], runs[i]
		if gap := r.at.Sub(prev.at); gap < taskInterval/2 {
			t.Fatalf("runs %d and %d of the task: tick %s by %s, then tick %s by %s (%s later): two runs of one tick, or two leaders at once",
				i-1, i, prev.at, prev.worker, r.at, r.worker, gap)
		}
	}
}

// taskRun is one line of the runs file.
type taskRun struct {
	worker, task string
	at           time.Time
}

func readTaskRuns(t *testing.T, path string) []taskRun {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var runs []taskRun
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			continue // a line being written
		}
		at, err := time.Parse(time.RFC3339Nano, fields[2])
		if err != nil {
			t.Fatalf("runs file line %q: %v", sc.Text(), err)
		}
		runs = append(runs, taskRun{worker: fields[0], task: fields[1], at: at})
	}
	return runs
}

// startTaskWorker starts a worker process of service "jobs" as id.
func startTaskWorker(t *testing.T, gw, id, runs string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), taskWorkerEnv+"="+runs, "LIGHTBUS_URL="+gw, "LIGHTBUS_WORKER_ID="+id)
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// The singleton task runs in one of two worker processes; when that one is
// killed the other takes over within a lease, and no tick runs twice. A
// PerProcess task runs in both; a failing task's error is listed and it
// runs again at its next tick.
func TestScheduledTaskOncePerService(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	runsPath := filepath.Join(t.TempDir(), "runs")
	procs := map[string]*exec.Cmd{
		"jobs-a": startTaskWorker(t, gw.URL, "jobs-a", runsPath),
		"jobs-b": startTaskWorker(t, gw.URL, "jobs-b", runsPath),
	}
	bus := newBus(t, gw.URL)
	ctx := context.Background()

	byTask := func(runs []taskRun, task string) []taskRun {
		return slices.DeleteFunc(slices.Clone(runs), func(r taskRun) bool { return r.task != task })
	}
	workersOf := func(runs []taskRun) map[string]int {
		n := map[string]int{}
		for _, r := range runs {
			n[r.worker]++
		}
		return n
	}

	// Both processes run "local"; "beat" runs, in one of them.
	testwait.For(t, 30*time.Second, "both workers to run the per-process task and one to run beat 10 times", func() bool {
		runs := readTaskRuns(t, runsPath)
		return len(workersOf(byTask(runs, "local"))) == 2 && len(byTask(runs, "beat")) >= 10
	})
	// One leader at a time. A busy machine may stall the leader past its
	// lease, and then the other worker takes over, as it should: what must
	// never happen is two workers running beat side by side.
	checkOneLeaderAtATime(t, byTask(readTaskRuns(t, runsPath), "beat"))
	other := func(leader string) string {
		if leader == "jobs-a" {
			return "jobs-b"
		}
		return "jobs-a"
	}

	// The failing task's error is listed, and it keeps running.
	var flaky lightbus.Task
	testwait.For(t, 30*time.Second, "flaky to fail twice", func() bool {
		tasks, err := bus.Tasks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			if task.Name == "flaky" {
				flaky = task
			}
		}
		return flaky.Failures >= 2
	})
	if flaky.Service != "jobs" || flaky.Kind != "every" || flaky.Spec != taskInterval.String() || flaky.LastError != "flaky failed on purpose" ||
		flaky.LeaderID == "" || flaky.LastTick == nil || flaky.Runs != flaky.Failures {
		t.Fatalf("flaky as listed: %+v", flaky)
	}

	// lightbus workers shows the tasks, flaky's error with them.
	out, stderr, err := runCLI(t, buildLightbus(t), gw, "", "workers")
	if err != nil || !strings.Contains(out, "flaky failed on purpose") || !strings.Contains(out, "every 200ms") || !strings.Contains(out, "LAST ERROR") {
		t.Fatalf("lightbus workers: %q %q, %v", out, stderr, err)
	}

	// Kill the leader of beat: the other takes over within a lease. A
	// leader killed between a run and its report would see that tick run
	// again (at least once per tick), so the leader is frozen first, and
	// killed once the gateway has the report of its latest run.
	var leader string
	testwait.For(t, 30*time.Second, "the leader frozen after reporting its latest run", func() bool {
		beats := byTask(readTaskRuns(t, runsPath), "beat")
		leader = beats[len(beats)-1].worker
		if err := procs[leader].Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // a report in flight lands
		beats = byTask(readTaskRuns(t, runsPath), "beat")
		last := beats[len(beats)-1]
		tasks, err := bus.Tasks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			if task.Name == "beat" && last.worker == leader && task.LeaderID == leader && task.LastTick != nil && task.LastTick.Equal(last.at) {
				return true
			}
		}
		_ = procs[leader].Process.Signal(syscall.SIGCONT)
		return false
	})
	lastOld := byTask(readTaskRuns(t, runsPath), "beat")
	lastOldTick := lastOld[len(lastOld)-1].at
	if err := procs[leader].Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = procs[leader].Wait()
	killed := time.Now()
	newRuns := func() int {
		n := 0
		for _, r := range byTask(readTaskRuns(t, runsPath), "beat") {
			if r.at.After(lastOldTick) {
				n++
			}
		}
		return n
	}
	testwait.For(t, 30*time.Second, "the other worker to take beat over", func() bool { return newRuns() >= 5 })
	t.Logf("beat moved from %s to %s within %s of the kill (lease 1.5s)", leader, other(leader), time.Since(killed).Round(time.Millisecond))

	// One leader at a time throughout, and the killed leader ran nothing
	// after its last reported tick.
	runs := byTask(readTaskRuns(t, runsPath), "beat")
	checkOneLeaderAtATime(t, runs)
	for _, r := range runs {
		if r.at.After(lastOldTick) && r.worker == leader {
			t.Fatalf("%s ran tick %s of beat after it was killed", leader, r.at)
		}
	}
	tasks, err := bus.Tasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if task.Name == "beat" && (task.LeaderID != other(leader) || task.LastWorkerID != other(leader)) {
			t.Fatalf("beat as listed: %+v, want led and last run by %s", task, other(leader))
		}
	}
}
