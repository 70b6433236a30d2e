package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	authbus "github.com/lightbus-go/lightbus/examples/auth/bus"
	customersbus "github.com/lightbus-go/lightbus/examples/customers/bus"
	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/testwait"
	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

// TestThroughPgBouncer runs the gateway with DATABASE_URL through a real
// PgBouncer in transaction mode (LIGHTBUS_DB_POOLER=transaction), in each
// pgx query exec mode the pooler supports: registration, RPCs, single and
// batch fires, deliveries (each of which calls an RPC and fires an event),
// a replay, deliveries whose first attempt fails and that are retried,
// deliveries that die and are redriven (one by one and in bulk);
// everything arrives and the gateway logs no error.
//
// PgBouncer is LIGHTBUS_PGBOUNCER (the binary's path) or pgbouncer on the
// PATH (Debian: apt-get install pgbouncer). Without one the test skips,
// except under CI=true, where it fails.
func TestThroughPgBouncer(t *testing.T) {
	t.Parallel()
	bin := pgbouncerBinary()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("pgbouncer is not installed (apt-get install pgbouncer, or set LIGHTBUS_PGBOUNCER)")
		}
		t.Skip("pgbouncer is not installed: apt-get install pgbouncer, or set LIGHTBUS_PGBOUNCER to its path")
	}
	direct := pgtest.NewURL(t) // the databases share this server
	bouncer, prepared := startPgBouncer(t, bin, direct)

	for _, mode := range pgtest.ExecModes {
		for _, listen := range []bool{false, true} {
			name := mode
			if listen {
				name += "+listen_url"
				if mode != "exec" {
					continue // LISTEN over a direct connection: once is enough
				}
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel() // each mode has its own database and gateway
				if mode != "exec" && mode != "simple_protocol" && !prepared {
					t.Skipf("%s needs prepared statements through the pooler (PgBouncer 1.21 or later)", mode)
				}
				dbURL := pgtest.NewURL(t)
				pooled, err := throughBouncer(dbURL, bouncer, mode)
				if err != nil {
					t.Fatal(err)
				}
				logs := &logBuffer{t: t}
				cfg := testConfig()
				cfg.DBPooler = poolerTransaction
				if listen {
					cfg.DBListenURL = dbURL
				}
				logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
				gw, stop := launchGateway(t, cfg, pooled, logger)
				defer func() {
					if err := stop(); err != nil {
						t.Errorf("gateway stopped with %v", err)
					}
				}()
				poolerScenario(t, gw)
				poolerRetries(t, gw)
				if errs := logs.errors(); len(errs) > 0 {
					t.Errorf("the gateway logged %d errors through PgBouncer:\n%s", len(errs), strings.Join(errs, "\n"))
				}
			})
		}
	}
}

// poolerScenario drives a gateway with the example services' workers.
func poolerScenario(t *testing.T, gw *testGateway) {
	ctx := context.Background()
	runWorker(t, authbus.New(workerOptions(gw, 2*time.Second)...))
	runWorker(t, customersbus.New(workerOptions(gw, 2*time.Second)...))
	client := newBus(t, gw.URL)
	testwait.For(t, 20*time.Second, "both workers to register", func() bool {
		workers, err := client.Workers(ctx)
		return err == nil && len(workers) == 2
	})
	ok, err := authbus.CheckPassword.Call(ctx, client, authbus.CheckPasswordParams{Username: "admin", Password: "secret"})
	if err != nil || !ok {
		t.Fatalf("auth.check_password = %v, %v; want true", ok, err)
	}

	// Each new_customer's delivery calls auth.create_user, which fires
	// auth.user_registered.
	var fired fireResult
	if resp := gw.do(t, "POST", "/v1/events/customers/new_customer", `{"name":"Sally","email":"sally@example.com"}`, nil, &fired); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("fire: %d", resp.StatusCode)
	}
	var batch []string
	// Enough deliveries at once that their event reads share statements.
	const batchSize = 40
	for i := range batchSize {
		batch = append(batch, fmt.Sprintf(`{"api":"customers","event":"new_customer","params":{"name":"u%d","email":"u%d@example.com"}}`, i, i))
	}
	if resp := gw.do(t, "POST", "/v1/events", "["+strings.Join(batch, ",")+"]", nil, nil); resp.StatusCode != http.StatusAccepted && resp.StatusCode != http.StatusOK {
		t.Fatalf("batch fire: %d", resp.StatusCode)
	}
	registered := func() int {
		page, err := client.Events(ctx, lightbus.EventQuery{API: "auth", Event: "user_registered", Limit: 100})
		if err != nil {
			return -1
		}
		return len(page.Events)
	}
	testwait.For(t, 30*time.Second, "every user registered", func() bool { return registered() == batchSize+1 })
	testwait.For(t, 30*time.Second, "every new_customer delivery completed", func() bool {
		return completedDeliveries(ctx, client) == batchSize+1
	})

	// A replay delivers every event again; the users exist, so no new
	// user_registered.
	if _, err := client.Replay(ctx, "customers", "create_user", "earliest"); err != nil {
		t.Fatalf("replay: %v", err)
	}
	testwait.For(t, 30*time.Second, "the replayed deliveries completed", func() bool {
		return completedDeliveries(ctx, client) == 2*(batchSize+1)
	})
	if n := registered(); n != batchSize+1 {
		t.Errorf("user_registered after the replay = %d, want %d", n, batchSize+1)
	}
}

// poolerRetries drives deliveries that fail through the pooler: a group
// whose listener fails the first attempt at every event (single fires, and
// a batch fire whose delivery batch records its failures), each retried
// and delivered; and a group whose deliveries die (max_attempts 2) while
// its listener fails, then are redriven, one by id and the rest in bulk,
// and delivered. The audit: every event reached its listener with a 2xx,
// and every delivery completed.
func poolerRetries(t *testing.T, gw *testGateway) {
	// Retried: the first request for each event is answered 500.
	var mu sync.Mutex
	seen := map[string]int{}      // requests per event id
	delivered := map[string]int{} // requests answered 204 per event id
	flaky := newHook(t, func(_ int, w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("ce-id")
		mu.Lock()
		seen[id]++
		first := seen[id] == 1
		if !first {
			delivered[id]++
		}
		mu.Unlock()
		if first {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	registerGroup(t, gw, "pooler-flaky", "audit", "flaky", flaky.srv.URL, "", "pooler.flaky")
	var retried []string
	for range 3 {
		retried = append(retried, fireOne(t, gw, "pooler", "flaky"))
	}
	retried = append(retried, fireBatch(t, gw, "pooler", "flaky", 12)...)
	for _, id := range retried {
		waitState(t, gw, id, gateway.DeliveryCompleted)
	}
	mu.Lock()
	for _, id := range retried {
		if seen[id] < 2 || delivered[id] < 1 {
			t.Errorf("event %s: %d requests, %d delivered; want a failed first attempt, then delivered", id, seen[id], delivered[id])
		}
	}
	mu.Unlock()

	// Dead, then redriven.
	doomedHook, healthy := newFailingHook(t, func(w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) })
	registerGroup(t, gw, "pooler-doomed", "audit", "doomed", doomedHook.srv.URL, `{"max_attempts":2}`, "pooler.doomed")
	doomed := []string{fireOne(t, gw, "pooler", "doomed")}
	doomed = append(doomed, fireBatch(t, gw, "pooler", "doomed", 3)...)
	var page deadPage
	testwait.For(t, 20*time.Second, "every audit.doomed delivery to die", func() bool {
		page = deadPage{}
		gw.do(t, "GET", "/v1/listeners/audit/doomed/dead", "", nil, &page)
		return len(page.Deliveries) == len(doomed)
	})
	healthy.Store(true)
	if resp := gw.do(t, "POST", fmt.Sprintf("/v1/deliveries/%d/redrive", page.Deliveries[0].ID), "", nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("redrive delivery %d: %d", page.Deliveries[0].ID, resp.StatusCode)
	}
	var bulk struct{ Redriven int }
	if resp := gw.do(t, "POST", "/v1/listeners/audit/doomed/redrive", "", nil, &bulk); resp.StatusCode != http.StatusOK {
		t.Fatalf("bulk redrive: %d", resp.StatusCode)
	}
	// The one redriven by id may have died again or completed meanwhile:
	// the bulk redrive takes the others at least.
	if bulk.Redriven < len(doomed)-1 {
		t.Errorf("bulk redrive took %d deliveries, want at least %d", bulk.Redriven, len(doomed)-1)
	}

	for _, id := range doomed {
		waitState(t, gw, id, gateway.DeliveryCompleted)
	}
	got := map[string]bool{}
	for _, r := range doomedHook.received() {
		got[r.header.Get("ce-id")] = true
	}
	for _, id := range doomed {
		if !got[id] {
			t.Errorf("event %s never reached audit.doomed", id)
		}
	}
}

// fireBatch fires n api.event events with empty parameters in one batch
// (one transaction) and returns their ids.
func fireBatch(t *testing.T, gw *testGateway, api, event string, n int) []string {
	t.Helper()
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(`{"api":%q,"event":%q,"params":{}}`, api, event)
	}
	var res struct {
		Results []fireResult `json:"results"`
	}
	if resp := gw.do(t, "POST", "/v1/events", "["+strings.Join(items, ",")+"]", nil, &res); resp.StatusCode != http.StatusAccepted || len(res.Results) != n {
		t.Fatalf("batch fire of %d %s.%s: %d, %d results", n, api, event, resp.StatusCode, len(res.Results))
	}
	ids := make([]string, n)
	for i, e := range res.Results {
		ids[i] = e.ID
	}
	return ids
}

// completedDeliveries counts the completed deliveries of customers'
// new_customer events.
func completedDeliveries(ctx context.Context, client *lightbus.Bus) int {
	page, err := client.Events(ctx, lightbus.EventQuery{API: "customers", Event: "new_customer", Limit: 100})
	if err != nil {
		return -1
	}
	n := 0
	for _, e := range page.Events {
		ev, err := client.Event(ctx, e.ID)
		if err != nil {
			return -1
		}
		for _, d := range ev.Deliveries {
			if d.State == "completed" {
				n++
			}
		}
	}
	return n
}

// logBuffer sends log lines to t.Log and keeps those at level ERROR and
// those telling of a statement the pooler or pgx could not take.
type logBuffer struct {
	t    *testing.T
	mu   sync.Mutex
	errs []string
}

func (b *logBuffer) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(p))
	for sc.Scan() {
		if line := sc.Text(); strings.Contains(line, "level=ERROR") || strings.Contains(line, "failed to encode") ||
			strings.Contains(line, "prepared statement") {
			b.mu.Lock()
			b.errs = append(b.errs, sc.Text())
			b.mu.Unlock()
		}
	}
	return testWriter{b.t}.Write(p)
}

func (b *logBuffer) errors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

// pgbouncerBinary returns the path of PgBouncer, "" when there is none.
func pgbouncerBinary() string {
	if p := os.Getenv("LIGHTBUS_PGBOUNCER"); p != "" {
		return p
	}
	if p, err := exec.LookPath("pgbouncer"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/pgbouncer"); err == nil {
		return "/usr/sbin/pgbouncer"
	}
	return ""
}

// startPgBouncer starts PgBouncer in transaction mode in front of the
// server of dbURL, on a free loopback port, stopped at cleanup. It returns
// the pooler's host:port and whether it passes prepared statements
// (1.21 and later, with max_prepared_statements).
func startPgBouncer(t *testing.T, bin, dbURL string) (string, bool) {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v: %s", bin, err, out)
	}
	prepared := false
	if m := regexp.MustCompile(`PgBouncer (\d+)\.(\d+)`).FindStringSubmatch(string(out)); m != nil {
		major, _ := strconv.Atoi(m[1])
		minor, _ := strconv.Atoi(m[2])
		prepared = major > 1 || major == 1 && minor >= 21
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	// PgBouncer refuses to run as root: then it runs as nobody, which must
	// read its configuration and write its log.
	dir, err := os.MkdirTemp("", "lightbus-pgbouncer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	user := u.User.Username()
	if user == "" {
		user = "postgres"
	}
	host, pgPort := u.Hostname(), u.Port()
	if pgPort == "" {
		pgPort = "5432"
	}
	ini := fmt.Sprintf(`[databases]
* = host=%s port=%s user=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = any
pool_mode = transaction
max_client_conn = 500
default_pool_size = 20
ignore_startup_parameters = extra_float_digits
logfile = %s
`, host, pgPort, user, port, filepath.Join(dir, "pgbouncer.log"))
	if prepared {
		ini += "max_prepared_statements = 200\n"
	}
	iniPath := filepath.Join(dir, "pgbouncer.ini")
	if err := os.WriteFile(iniPath, []byte(ini), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{iniPath}
	if os.Geteuid() == 0 {
		args = []string{"-u", "nobody", iniPath}
	}
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pgbouncer: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
			t.Logf("pgbouncer log:\n%s", log)
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	testwait.For(t, 20*time.Second, "pgbouncer to listen on "+addr, func() bool {
		select {
		case <-exited:
			t.Fatalf("pgbouncer exited: %s", stderr.String())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return addr, prepared
}

// throughBouncer returns dbURL reaching its database through the pooler
// at addr, with pgx's default_query_exec_mode set to mode.
func throughBouncer(dbURL, addr, mode string) (string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", err
	}
	u.Host = addr
	return pgtest.WithExecMode(u.String(), mode)
}
