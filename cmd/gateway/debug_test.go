package main

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
)

func TestServeDebug(t *testing.T) {
	t.Parallel()
	addr, stop, err := serveDebug("127.0.0.1:0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine profile") {
		t.Errorf("pprof goroutine profile: %d %.200s", resp.StatusCode, body)
	}
}

func TestDebugOffByDefault(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	if gw.app.cfg.DebugAddr != "" {
		t.Fatalf("test config enables the debug server at %q", gw.app.cfg.DebugAddr)
	}
	resp := gw.do(t, http.MethodGet, "/debug/pprof/", "", nil, nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/ on the API address: %d, want 404", resp.StatusCode)
	}
}

func TestDebugVarsOptIn(t *testing.T) {
	t.Parallel()

	off := startGateway(t, nil)
	expectProblem(t, off.do(t, "GET", "/debug/vars", "", nil, nil), 404, "not_found")

	on := startGateway(t, func(c *Config) { c.DebugVars = true })
	var vars struct {
		Goroutines int            `json:"goroutines"`
		Memstats   map[string]any `json:"memstats"`
	}
	if resp := on.do(t, "GET", "/debug/vars", "", nil, &vars); resp.StatusCode != 200 || vars.Goroutines <= 0 || vars.Memstats == nil {
		t.Fatalf("debug vars: %d %+v", resp.StatusCode, vars)
	}
	var status map[string]string
	if resp := on.do(t, "GET", "/healthz", "", nil, &status); resp.StatusCode != 200 {
		t.Fatalf("healthz behind the debug mux: %d", resp.StatusCode)
	}
}
