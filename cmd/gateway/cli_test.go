package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// lightbusBinary builds the lightbus command once for the tests that run it
// against a real gateway.
var lightbusBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "lightbus-cli")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "lightbus")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/lightbus-go/lightbus/cmd/lightbus").CombinedOutput()
	if err != nil {
		return "", &buildError{err, string(out)}
	}
	return bin, nil
})

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return "build lightbus: " + e.err.Error() + "\n" + e.out }

// runCLI runs the lightbus command with args against gw, with token as its
// key, and returns its standard output and error.
func runCLI(t *testing.T, gw *testGateway, token string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	bin, err := lightbusBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Env = append(os.Environ(), "LIGHTBUS_URL="+gw.URL, "LIGHTBUS_TOKEN="+token)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// The CLI's shell completion asks the gateway for listener groups, and
// version prints the gateway's beside its own.
func TestCLIAgainstGateway(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, withAuth)
	reader := createKey(t, gw, "reader", "read")
	body := `{"service":"billing","base_url":"http://127.0.0.1:9","lease_ttl_ms":60000,"listeners":[` +
		`{"name":"charge","events":["shop.*"],"path":"/c"},{"name":"refund","events":["shop.*"],"path":"/r"}]}`
	if resp := gw.do(t, "PUT", "/v1/workers/w1", body, bearer(testBootstrapToken), nil); resp.StatusCode != 200 {
		t.Fatalf("register: %d", resp.StatusCode)
	}

	out, _, err := runCLI(t, gw, reader, "__complete", "dead", "list", "billing.")
	if err != nil || out != "billing.charge\nbilling.refund\n:4\n" {
		t.Errorf("__complete dead list billing.: %q, %v", out, err)
	}
	out, _, err = runCLI(t, gw, "", "__complete", "dead", "list", "")
	if err != nil || out != ":4\n" {
		t.Errorf("__complete without a key: %q, %v", out, err)
	}

	out, stderr, err := runCLI(t, gw, reader, "version")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 3 || !strings.HasPrefix(lines[2], "gateway ") || !strings.HasSuffix(lines[2], runtime.Version()) {
		t.Errorf("version: %q %q, %v", out, stderr, err)
	}
}
