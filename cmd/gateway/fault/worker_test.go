package fault

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// runsEnv names the file to which worker processes append a line for
// every handler run: "worker-id call-id request-id".
const runsEnv = "LIGHTBUS_FAULT_RUNS"

// rpcParams are the parameters of the worker's RPCs. Call identifies the
// call for the count of handler runs; a sleep call sleeps SleepMS, on
// worker On only when On is set (other workers answer at once), and prints
// HANDLING first when Announce is set.
type rpcParams struct {
	Call     string `json:"call"`
	SleepMS  int    `json:"sleep_ms"`
	On       string `json:"on"`
	Announce bool   `json:"announce"`
}

// workerMain runs the test binary as an RPC worker process (roleEnv=worker):
// it serves API "work" (RPCs echo and sleep), registers with the gateway at
// LIGHTBUS_URL as LIGHTBUS_WORKER_ID, heartbeats every third of its lease,
// prints READY when registered and HANDLING when an announced sleep call
// arrives, and records each handler run in $LIGHTBUS_FAULT_RUNS before
// running it (a write that returned survives the process's SIGKILL).
func workerMain() int {
	gw, id := os.Getenv("LIGHTBUS_URL"), os.Getenv("LIGHTBUS_WORKER_ID")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var runs *os.File
	if path := os.Getenv(runsEnv); path != "" {
		if runs, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	var out sync.Mutex
	say := func(s string) {
		out.Lock()
		defer out.Unlock()
		fmt.Println(s)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /lightbus/rpc/work/{method}", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p rpcParams
		_ = json.Unmarshal(body, &p)
		if runs != nil {
			// One write of one line: appends from several processes do not
			// interleave.
			if _, err := fmt.Fprintf(runs, "%s %s %s\n", id, p.Call, r.Header.Get("Lightbus-Request-Id")); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		if r.PathValue("method") == "sleep" && (p.On == "" || p.On == id) {
			if p.Announce {
				say("HANDLING")
			}
			time.Sleep(time.Duration(p.SleepMS) * time.Millisecond)
		}
		w.Header().Set("Lightbus-Worker-Id", id)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"result": %s}`, body)
	})
	go func() { _ = http.Serve(ln, mux) }()

	const lease = 1500 * time.Millisecond
	reg := map[string]any{
		"service": "work", "base_url": "http://" + ln.Addr().String(), "lease_ttl_ms": lease.Milliseconds(),
		"apis": []map[string]any{{"name": "work", "rpcs": []map[string]any{{"name": "echo"}, {"name": "sleep"}}}},
	}
	put := func() error { return putWorker(gw, id, reg) }
	if err := put(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	say("READY")
	for {
		time.Sleep(lease / 3)
		_ = put()
	}
}

// workerProc is a running worker helper process.
type workerProc struct {
	cmd   *exec.Cmd
	lines chan string
}

// startWorker starts a worker process registered with gw as id, recording
// its handler runs in the file runs, and waits until it is registered.
func startWorker(t *testing.T, gw, id, runs string) *workerProc {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), roleEnv+"=worker", "LIGHTBUS_URL="+gw, "LIGHTBUS_WORKER_ID="+id, runsEnv+"="+runs)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &workerProc{cmd: cmd, lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			w.lines <- strings.TrimSpace(sc.Text())
		}
		close(w.lines)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	w.expect(t, "READY", 20*time.Second)
	return w
}

// expect waits for a line from the worker.
func (w *workerProc) expect(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	w.await(t, want, nil, timeout)
}

// call makes an RPC and returns its status, problem code and duration.
func call(base, method string, params any, timeout string) (int, string, time.Duration, error) {
	start := time.Now()
	var header map[string]string
	if timeout != "" {
		header = map[string]string{"Lightbus-Timeout": timeout}
	}
	status, body, err := doJSON(context.Background(), http.MethodPost, base+"/v1/rpc/work/"+method, params, header, nil)
	return status, problemCode(body), time.Since(start), err
}

// await waits until the worker prints want, and reports true, or until an
// answer arrives on answered first (the call went elsewhere; nil: never),
// and reports false.
func (w *workerProc) await(t *testing.T, want string, answered <-chan callOutcome, timeout time.Duration) bool {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-w.lines:
			if !ok {
				t.Fatalf("worker exited before printing %s", want)
			}
			if line == want {
				return true
			}
		case <-answered:
			return false
		case <-deadline:
			t.Fatalf("worker did not print %s within %s", want, timeout)
		}
	}
}

// callOutcome is how one RPC of a callLog ended.
type callOutcome struct {
	id     string // the call's "call" parameter
	status int
	code   string
	err    error
	at     time.Time
}

// callLog makes sleep calls, each with an id of its own, and records their
// outcomes, to be matched with the handler runs the workers recorded.
type callLog struct {
	mu    sync.Mutex
	seq   int
	calls []callOutcome
}

func newCallLog() *callLog { return &callLog{} }

// call calls work.sleep with p (its Call set to a new id) and the timeout.
func (c *callLog) call(base string, p rpcParams, timeout string) callOutcome {
	c.mu.Lock()
	c.seq++
	p.Call = fmt.Sprintf("c%d", c.seq)
	c.mu.Unlock()
	status, code, _, err := call(base, "sleep", p, timeout)
	o := callOutcome{id: p.Call, status: status, code: code, err: err, at: time.Now()}
	c.mu.Lock()
	c.calls = append(c.calls, o)
	c.mu.Unlock()
	return o
}

// check reads the handler runs recorded in the file runs and fails t when
// a call got no answer, when a call answered 200 did not run exactly once,
// or when any call (or request id) ran more than once. It returns the
// counts for the scenario's RESULT line.
func (c *callLog) check(t *testing.T, runs string) string {
	t.Helper()
	data, err := os.ReadFile(runs)
	if err != nil {
		t.Fatal(err)
	}
	byCall, byRequest := map[string]int{}, map[string]int{}
	handlerRuns := 0
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[1] == "" {
			continue // a call of another part of the scenario
		}
		handlerRuns++
		byCall[f[1]]++
		byRequest[f[2]]++
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ok, ranTwice, failedRan := 0, 0, 0
	failed := map[string]int{}
	for _, o := range c.calls {
		ran := byCall[o.id]
		switch {
		case o.err != nil:
			t.Errorf("call %s got no answer: %v", o.id, o.err)
			failed["no answer"]++
		case o.status == http.StatusOK:
			ok++
			if ran != 1 {
				t.Errorf("call %s was answered 200, but its handler ran %d times", o.id, ran)
			}
		default:
			failed[fmt.Sprintf("%d %s", o.status, o.code)]++
			if ran > 0 {
				failedRan++
			}
		}
		if ran > 1 {
			ranTwice++
			t.Errorf("call %s: its handler ran %d times (%d %s), want at most once", o.id, ran, o.status, o.code)
		}
	}
	for id, n := range byRequest {
		if n > 1 {
			t.Errorf("request %s: a handler ran %d times for it", id, n)
		}
	}
	return fmt.Sprintf("calls=%d succeeded=%d failed=%v handler_runs=%d ran_more_than_once=%d failed_after_the_handler_ran=%d",
		len(c.calls), ok, failed, handlerRuns, ranTwice, failedRan)
}
