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
	beats := workersOf(byTask(readTaskRuns(t, runsPath), "beat"))
	if len(beats) != 1 {
		t.Fatalf("beat ran in %v: want one worker only", beats)
	}
	var leader string
	for id := range beats {
		leader = id
	}
	other := "jobs-a"
	if leader == other {
		other = "jobs-b"
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
	testwait.For(t, 30*time.Second, "the leader frozen after reporting its latest run", func() bool {
		if err := procs[leader].Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // a report in flight lands
		beats := byTask(readTaskRuns(t, runsPath), "beat")
		last := beats[len(beats)-1].at
		tasks, err := bus.Tasks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			if task.Name == "beat" && task.LastTick != nil && task.LastTick.Equal(last) {
				return true
			}
		}
		_ = procs[leader].Process.Signal(syscall.SIGCONT)
		return false
	})
	if err := procs[leader].Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = procs[leader].Wait()
	killed := time.Now()
	testwait.For(t, 30*time.Second, "the other worker to take beat over", func() bool {
		return workersOf(byTask(readTaskRuns(t, runsPath), "beat"))[other] >= 5
	})
	t.Logf("beat moved from %s to %s within %s of the kill (lease 1.5s)", leader, other, time.Since(killed).Round(time.Millisecond))

	// One leader at a time: every tick of the killed leader comes before
	// every tick of the new one, in the file and in time, and no tick ran
	// twice.
	runs := byTask(readTaskRuns(t, runsPath), "beat")
	seenOther := false
	ticks := map[time.Time]string{}
	var lastOld time.Time
	for i, r := range runs {
		if by, dup := ticks[r.at]; dup {
			t.Fatalf("tick %s of beat ran twice: by %s and by %s", r.at, by, r.worker)
		}
		ticks[r.at] = r.worker
		switch {
		case r.worker == leader && seenOther:
			t.Fatalf("run %d of beat by %s after %s had taken over: two leaders at once", i, r.worker, other)
		case r.worker == leader:
			lastOld = r.at
		case !r.at.After(lastOld):
			t.Fatalf("%s ran tick %s of beat, not after %s's last tick %s", other, r.at, leader, lastOld)
		default:
			seenOther = true
		}
	}
	tasks, err := bus.Tasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		if task.Name == "beat" && (task.LeaderID != other || task.LastWorkerID != other) {
			t.Fatalf("beat as listed: %+v, want led and last run by %s", task, other)
		}
	}
}
