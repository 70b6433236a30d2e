package fault

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lightbus-go/lightbus/internal/testwait"
)

// gatewayProc is a gateway process; restart runs it again at the same
// address with the same environment.
type gatewayProc struct {
	t    *testing.T
	URL  string
	env  []string
	log  string
	name string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // the process's exit status once exited is closed
}

// baseEnv is the configuration every gateway in the suite starts from:
// small retries and polling so that faults heal within seconds.
func baseEnv(dbURL string) map[string]string {
	return map[string]string{
		"DATABASE_URL":                 dbURL,
		"LIGHTBUS_AUTH":                "off", // the suite is about faults; the auth tests are in cmd/gateway
		"LIGHTBUS_LOG_LEVEL":           "info",
		"LIGHTBUS_DB_MAX_CONNS":        "10",
		"LIGHTBUS_DB_CONNECT_TIMEOUT":  "5s", // ten scenarios start at once on two cores
		"LIGHTBUS_SHUTDOWN_TIMEOUT":    "5s",
		"LIGHTBUS_RPC_TIMEOUT":         "5s",
		"LIGHTBUS_DELIVERY_TIMEOUT":    "2s",
		"LIGHTBUS_DELIVERY_WORKERS":    "10",
		"LIGHTBUS_RETRY_BASE":          "50ms",
		"LIGHTBUS_RETRY_MAX":           "500ms",
		"LIGHTBUS_NO_ENDPOINT_SNOOZE":  "100ms",
		"LIGHTBUS_FETCH_COOLDOWN":      "10ms",
		"LIGHTBUS_FETCH_POLL_INTERVAL": "100ms",
		"LIGHTBUS_RESCUE_AFTER":        "8s",
		"LIGHTBUS_GROUP_MAX_IN_FLIGHT": "4",
	}
}

// startGateway starts the gateway binary with env and waits until it is
// ready. It is killed at cleanup if still running.
func startGateway(t *testing.T, name string, env map[string]string) *gatewayProc {
	t.Helper()
	port := freePort(t)
	g := &gatewayProc{t: t, URL: fmt.Sprintf("http://127.0.0.1:%d", port), name: name,
		log: filepath.Join(t.TempDir(), name+".log")}
	env["LIGHTBUS_ADDR"] = fmt.Sprintf("127.0.0.1:%d", port)
	for k, v := range env {
		g.env = append(g.env, k+"="+v)
	}
	t.Cleanup(func() {
		g.signal(syscall.SIGKILL)
		g.wait(10 * time.Second)
		if data, err := os.ReadFile(g.log); err == nil && bytes.Contains(data, []byte("WARNING: DATA RACE")) {
			t.Errorf("%s reported a data race (log %s)", name, g.log)
		}
		if t.Failed() || os.Getenv("LIGHTBUS_FAULT_LOGS") != "" {
			n := 40
			if os.Getenv("LIGHTBUS_FAULT_LOGS") != "" {
				n = 0
			}
			t.Logf("%s log (last lines):\n%s", name, lastLines(g.log, n))
		}
	})
	g.start()
	return g
}

// start runs the process and waits for /readyz.
func (g *gatewayProc) start() {
	g.t.Helper()
	logFile, err := os.OpenFile(g.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		g.t.Fatal(err)
	}
	cmd := exec.Command(gatewayBin)
	cmd.Env = append(os.Environ(), g.env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		g.t.Fatal(err)
	}
	exited := make(chan struct{})
	g.mu.Lock()
	g.cmd, g.exited, g.err = cmd, exited, nil
	g.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logFile.Close()
		g.mu.Lock()
		g.err = err
		g.mu.Unlock()
		close(exited)
	}()
	const timeout = 60 * time.Second
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			g.t.Fatalf("%s exited during start: %v", g.name, g.exitErr())
		default:
		}
		if resp, err := http.Get(g.URL + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			g.t.Fatalf("timed out after %s waiting for %s ready\n%s", timeout, g.name, databaseReport(g.env))
		}
	}
}

// databaseReport describes the cluster behind a gateway's DATABASE_URL (in
// env): its connections by database and state, and, for the shared
// cluster, the end of its server log.
func databaseReport(env []string) string {
	var dbURL string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "DATABASE_URL="); ok {
			dbURL = v
		}
	}
	var b strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, withDatabase(dbURL, "postgres"))
	if err != nil {
		fmt.Fprintf(&b, "connections: cannot connect to %s: %v\n", dbURL, err)
	} else {
		defer conn.Close(context.Background())
		rows, err := conn.Query(ctx, `SELECT coalesce(datname, ''), coalesce(state, ''), coalesce(wait_event_type || ':' || wait_event, ''), backend_type, count(*)
			FROM pg_stat_activity GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC`)
		if err == nil {
			b.WriteString("connections (database, state, wait, type, count):\n")
			for rows.Next() {
				var db, state, wait, kind string
				var n int
				if rows.Scan(&db, &state, &wait, &kind, &n) == nil {
					fmt.Fprintf(&b, "  %s %s %s %s %d\n", db, state, wait, kind, n)
				}
			}
			err = rows.Err()
		}
		if err != nil {
			fmt.Fprintf(&b, "connections: %v\n", err)
		}
	}
	if hostPort(dbURL) == hostPort(adminURL) {
		fmt.Fprintf(&b, "shared cluster log (last lines):\n%s", lastLines(sharedLog, 60))
	}
	return b.String()
}

// lastLines returns the last n lines of the file at path (all for n = 0).
func lastLines(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if n > 0 && len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (g *gatewayProc) exitErr() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// pid returns the process id.
func (g *gatewayProc) pid() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cmd.Process.Pid
}

func (g *gatewayProc) signal(sig syscall.Signal) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd != nil && g.cmd.Process != nil {
		_ = g.cmd.Process.Signal(sig)
	}
}

// wait waits for the process to exit and reports whether it did in time.
func (g *gatewayProc) wait(timeout time.Duration) bool {
	g.mu.Lock()
	exited := g.exited
	g.mu.Unlock()
	if exited == nil {
		return true
	}
	select {
	case <-exited:
		return true
	case <-time.After(timeout):
		return false
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (g *gatewayProc) kill() {
	g.t.Helper()
	g.signal(syscall.SIGKILL)
	if !g.wait(10 * time.Second) {
		g.t.Fatalf("%s did not die", g.name)
	}
}

// procStatus returns a field of /proc/PID/status in kB or as a count.
func procStatus(pid int, field string) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.Atoi(f[0])
				return n
			}
		}
	}
	return -1
}

// openFDs counts /proc/PID/fd.
func openFDs(pid int) int {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(entries)
}

// poll checks the suite's conditions, which mostly ask busy gateways, no
// more often than every 50 ms.
var poll = testwait.Poller{Interval: 50 * time.Millisecond}

// httpClient is the load generator's client: a request never waits more than
// its timeout, which is how the suite notices a hanging gateway.
var httpClient = &http.Client{Timeout: 10 * time.Second}

// doJSON sends a JSON request and decodes a JSON answer into out.
func doJSON(ctx context.Context, method, url string, body any, header map[string]string, out any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if out != nil && resp.StatusCode < 300 && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, data, err
		}
	}
	return resp.StatusCode, data, nil
}

// problemCode returns the code of a problem document.
func problemCode(body []byte) string {
	var p struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(body, &p)
	return p.Code
}

// delivery is one request a listener received.
type delivery struct {
	group   string
	eventID string
	attempt int
	at      time.Time
}

// listener is an in-process listener service: one HTTP server serving
// several listener groups at /events/{group}, recording every delivery. It
// can be taken down (the port stops accepting) and brought back on the same
// port.
type listener struct {
	t       *testing.T
	service string
	groups  []string
	addr    string
	delay   map[string]time.Duration // per group answer delay

	mu         sync.Mutex
	srv        *http.Server
	deliveries []delivery
	aborted    int // requests the gateway gave up on before the answer
}

// newListener starts a listener service with the given groups, each
// subscribed to every event of API "load".
func newListener(t *testing.T, service string, groups ...string) *listener {
	t.Helper()
	l := &listener{t: t, service: service, groups: groups, addr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		delay: map[string]time.Duration{}}
	l.up()
	t.Cleanup(l.down)
	return l
}

func (l *listener) setDelay(group string, d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.delay[group] = d
}

func (l *listener) handle(w http.ResponseWriter, r *http.Request) {
	group := strings.TrimPrefix(r.URL.Path, "/events/")
	_, _ = io.Copy(io.Discard, r.Body)
	attempt, _ := strconv.Atoi(r.Header.Get("Lightbus-Attempt"))
	l.mu.Lock()
	d := l.delay[group]
	l.mu.Unlock()
	if d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			l.mu.Lock()
			l.aborted++
			l.mu.Unlock()
			return
		}
	}
	l.mu.Lock()
	l.deliveries = append(l.deliveries, delivery{group: l.service + "." + group, eventID: r.Header.Get("Ce-Id"),
		attempt: attempt, at: time.Now()})
	l.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// abortedCount returns how many requests the gateway abandoned mid-answer.
func (l *listener) abortedCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.aborted
}

// up starts serving on the listener's address.
func (l *listener) up() {
	l.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port may linger briefly after down
		if ln, err = net.Listen("tcp", l.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		l.t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(l.handle)}
	l.mu.Lock()
	l.srv = srv
	l.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// down stops accepting connections and drops the open ones.
func (l *listener) down() {
	l.mu.Lock()
	srv := l.srv
	l.srv = nil
	l.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// snapshot returns the deliveries received so far.
func (l *listener) snapshot() []delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.deliveries)
}

// fullGroups returns the groups as "service.listener".
func (l *listener) fullGroups() []string {
	var out []string
	for _, g := range l.groups {
		out = append(out, l.service+"."+g)
	}
	return out
}

// register registers the listener service through gw with a long lease and
// keeps heartbeating (through any of gws, in turn) until the test ends.
func (l *listener) register(gws ...*gatewayProc) {
	l.t.Helper()
	var decl []map[string]any
	for _, g := range l.groups {
		decl = append(decl, map[string]any{"name": g, "events": []string{"load.*"}, "path": "/events/" + g})
	}
	reg := map[string]any{"service": l.service, "base_url": "http://" + l.addr, "lease_ttl_ms": 60000, "listeners": decl}
	keepRegistered(l.t, "the listener's registration", l.service+"-1", reg, gws...)
}

// keepRegistered registers worker id, described by reg (with a lease of a
// minute), through gws[0], waiting up to 30 s (a busy database may be slow),
// and renews its lease every 2 s through each of gws in turn until the test
// ends. what names the registration in a failure.
func keepRegistered(t *testing.T, what, id string, reg any, gws ...*gatewayProc) {
	t.Helper()
	put := func(gw *gatewayProc) error { return putWorker(gw.URL, id, reg) }
	poll.For(t, 30*time.Second, what, func() bool { return put(gws[0]) == nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Second):
			}
			_ = put(gws[i%len(gws)]) // a failed heartbeat is retried next time
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// putWorker registers worker id, described by reg, with the gateway at base,
// or renews its lease.
func putWorker(base, id string, reg any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	status, body, err := doJSON(ctx, http.MethodPut, base+"/v1/workers/"+id, reg, nil, nil)
	if err == nil && status != http.StatusOK {
		err = fmt.Errorf("register: %d %s", status, body)
	}
	return err
}

// summary prints the scenario's last line.
func summary(t *testing.T, scenario string, format string, args ...any) {
	t.Helper()
	report(t, fmt.Sprintf("RESULT %s: %s", scenario, fmt.Sprintf(format, args...)))
}

// reportEnv names a file to which the suite appends every AUDIT and RESULT
// line, so that a CI run can show them whether the suite passed or not.
const reportEnv = "LIGHTBUS_FAULT_REPORT"

var reportMu sync.Mutex

// report logs line to the test, prints it on stdout (go test -v shows it)
// and appends it to the file named by $LIGHTBUS_FAULT_REPORT, if set.
func report(t *testing.T, line string) {
	t.Helper()
	t.Log(line)
	fmt.Println(line)
	path := os.Getenv(reportEnv)
	if path == "" {
		return
	}
	reportMu.Lock()
	defer reportMu.Unlock()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err == nil {
		_, err = fmt.Fprintln(f, line)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		t.Errorf("%s: %v", reportEnv, err)
	}
}
