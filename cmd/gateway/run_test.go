//go:build linux

package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/internal/testwait"
)

// lockedBuffer is a bytes.Buffer safe for a process to write while a test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lightbusRun is a `lightbus run` process.
type lightbusRun struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{} // closed when it has exited
	err    error         // what Wait returned, once done
}

// runEnv is the environment of the lightbus run processes of a test: the
// worker binaries are cached in cache, the Go build cache is the usual one.
func runEnv(t *testing.T, cache string, env ...string) []string {
	t.Helper()
	gocache, err := exec.Command("go", "env", "GOCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOCACHE: %v", err)
	}
	return append(append(os.Environ(), "XDG_CACHE_HOME="+cache, "GOCACHE="+strings.TrimSpace(string(gocache))), env...)
}

// startRun starts `lightbus run args...` of the bus package in dir with env;
// the process is killed, if still running, when the test ends.
func startRun(t *testing.T, bin, dir string, env []string, args ...string) *lightbusRun {
	t.Helper()
	r := &lightbusRun{stderr: &lockedBuffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(bin, append([]string{"run"}, args...)...)
	r.cmd.Dir = dir
	r.cmd.Env = env
	r.cmd.Stdout = r.stderr
	r.cmd.Stderr = r.stderr
	r.cmd.WaitDelay = 5 * time.Second // an orphaned worker may hold the output open
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		_ = r.cmd.Process.Kill()
		<-r.done
		t.Logf("lightbus run %s:\n%s", strings.Join(args, " "), r.stderr.String())
	})
	return r
}

// wait waits for the process to exit and returns what Wait returned.
func (r *lightbusRun) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(60 * time.Second):
		t.Fatalf("lightbus run did not exit; output:\n%s", r.stderr.String())
		return nil
	}
}

// waitWorker waits until the gateway lists a worker of service and returns
// it.
func waitWorker(t *testing.T, client *lightbus.Bus, service string) lightbus.Worker {
	t.Helper()
	var found lightbus.Worker
	// Generous: the first run builds the worker.
	testwait.For(t, 3*time.Minute, "a worker of "+service+" to register", func() bool {
		workers, err := client.Workers(context.Background())
		if err != nil {
			return false
		}
		for _, w := range workers {
			if w.Service == service {
				found = w
				return true
			}
		}
		return false
	})
	return found
}

// listed reports whether the gateway lists the worker id.
func listed(t *testing.T, client *lightbus.Bus, id string) bool {
	t.Helper()
	workers, err := client.Workers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range workers {
		if w.ID == id {
			return true
		}
	}
	return false
}

// procStat returns the state and parent pid of process pid from
// /proc/pid/stat; ok is false when there is no such process.
func procStat(pid int) (state byte, ppid int, ok bool) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	rest := string(data[bytes.LastIndexByte(data, ')')+2:])
	fields := strings.Fields(rest)
	if len(fields) < 2 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(fields[1])
	return fields[0][0], ppid, true
}

// childOf returns the pid of the one child of process parent, which is
// killed, if still running, when the test ends.
func childOf(t *testing.T, parent int) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := procStat(pid); ok && ppid == parent {
			t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
			return pid
		}
	}
	t.Fatalf("process %d has no child", parent)
	return 0
}

// exited reports whether process pid is gone (or a zombie).
func exited(pid int) bool {
	state, _, ok := procStat(pid)
	return !ok || state == 'Z'
}

// A worker started by lightbus run takes its settings from run's flags over
// the environment over the code, and dies with run, even when run is killed
// with SIGKILL, deregistering; a worker killed by a signal makes lightbus
// run say so and exit 128+N.
func TestLightbusRunWorkerLifetime(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	bin := buildLightbus(t)
	client := newBus(t, gw.URL)
	// What the environment says, which the flags override.
	env := runEnv(t, t.TempDir(), "LIGHTBUS_URL="+gw.URL, "LIGHTBUS_SERVICE_NAME=fromenv", "LIGHTBUS_ONLY=rpcs",
		"LIGHTBUS_PROCESS_NAME=fromenv", "LIGHTBUS_LOG_FORMAT=text")
	dir := filepath.Join("..", "..", "examples", "customers")

	// Unknown flags and bad values are errors, before anything is built.
	for _, args := range [][]string{{"--bogus"}, {"--only", "rpcs,cron"}, {"--only", "rpcs", "--skip", "events"}, {"--process-name", "{uid}"}, {"--log-level", "loud"}} {
		r := startRun(t, bin, dir, env, args...)
		if err := r.wait(t); err == nil || !strings.HasPrefix(r.stderr.String(), "lightbus: ") || strings.Contains(r.stderr.String(), "building") {
			t.Errorf("lightbus run %s: %v\n%s", strings.Join(args, " "), err, r.stderr.String())
		}
	}

	// The code names the service "customers"; the flags rename it, name
	// the process, skip RPCs (its API) and log JSON.
	run := startRun(t, bin, dir, env, "--service-name", "shop", "--process-name", "cust-{pid}-{random4}", "--skip", "rpcs", "--log-format", "json")
	w := waitWorker(t, client, "shop")
	worker := childOf(t, run.cmd.Process.Pid)
	if want := regexp.MustCompile("^cust-" + strconv.Itoa(worker) + "-[0-9a-f]{4}$"); !want.MatchString(w.ID) {
		t.Errorf("worker id %q, want %s", w.ID, want)
	}
	if len(w.APIs) != 0 || !slices.Equal(w.Listeners, []string{"create_user"}) {
		t.Errorf("worker with --skip rpcs registered APIs %v and listeners %v, want none and [create_user]", w.APIs, w.Listeners)
	}
	// The worker logs its registration once the gateway has answered it,
	// which may be just after the gateway lists it.
	testwait.For(t, 10*time.Second, "the worker's JSON log line of its registration", func() bool {
		return strings.Contains(run.stderr.String(), `"msg":"lightbus: worker registered"`)
	})

	// lightbus run killed: the worker stops and deregisters.
	if err := run.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = run.wait(t)
	testwait.For(t, 30*time.Second, "the worker process to exit after lightbus run was killed", func() bool { return exited(worker) })
	if listed(t, client, w.ID) {
		t.Errorf("worker %s still registered after it exited", w.ID)
	}

	// The environment beats the code: LIGHTBUS_ONLY=rpcs registers the
	// API, not the listener. The worker killed: lightbus run reports the
	// signal and exits 137.
	run = startRun(t, bin, dir, env, "--service-name", "customers")
	w = waitWorker(t, client, "customers")
	if w.ID != "fromenv" || !slices.Equal(w.APIs, []string{"customers"}) || len(w.Listeners) != 0 {
		t.Errorf("worker %s with LIGHTBUS_ONLY=rpcs registered APIs %v and listeners %v, want [customers] and none", w.ID, w.APIs, w.Listeners)
	}
	worker = childOf(t, run.cmd.Process.Pid)
	if err := syscall.Kill(worker, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := run.wait(t)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 128+int(syscall.SIGKILL) {
		t.Errorf("lightbus run exited with %v, want exit status 137", err)
	}
	if got := run.stderr.String(); !strings.Contains(got, "lightbus: worker killed by signal 9 (killed)\n") {
		t.Errorf("lightbus run output does not name the signal:\n%s", got)
	}
}
