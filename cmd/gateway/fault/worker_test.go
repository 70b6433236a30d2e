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

// workerMain runs the test binary as an RPC worker process (roleEnv=worker):
// it serves API "work" (RPCs echo and sleep), registers with the gateway at
// LIGHTBUS_URL as LIGHTBUS_WORKER_ID, heartbeats every third of its lease,
// prints READY when registered and HANDLING when a sleep call arrives.
func workerMain() int {
	gw, id := os.Getenv("LIGHTBUS_URL"), os.Getenv("LIGHTBUS_WORKER_ID")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
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
		if r.PathValue("method") == "sleep" {
			say("HANDLING")
			var p struct {
				SleepMS int `json:"sleep_ms"`
			}
			_ = json.Unmarshal(body, &p)
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

// startWorker starts a worker process registered with gw as id and waits
// until it is registered.
func startWorker(t *testing.T, gw, id string) *workerProc {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), roleEnv+"=worker", "LIGHTBUS_URL="+gw, "LIGHTBUS_WORKER_ID="+id)
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
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-w.lines:
			if !ok {
				t.Fatalf("worker exited before printing %s", want)
			}
			if line == want {
				return
			}
		case <-deadline:
			t.Fatalf("worker did not print %s within %s", want, timeout)
		}
	}
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
