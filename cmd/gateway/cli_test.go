package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// buildLightbus builds the lightbus command for a test that runs it
// against a real gateway.
func buildLightbus(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "lightbus")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/lightbus-go/lightbus/cmd/lightbus").CombinedOutput(); err != nil {
		t.Fatalf("build lightbus: %v\n%s", err, out)
	}
	return bin
}

// runCLI runs the lightbus command bin with args against gw, with token as its
// key, and returns its standard output and error.
func runCLI(t *testing.T, bin string, gw *testGateway, token string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
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
	bin := buildLightbus(t)
	gw := startGateway(t, withAuth)
	reader := createKey(t, gw, "reader", "read")
	body := `{"service":"billing","base_url":"http://127.0.0.1:9","lease_ttl_ms":60000,"listeners":[` +
		`{"name":"charge","events":["shop.*"],"path":"/c"},{"name":"refund","events":["shop.*"],"path":"/r"}]}`
	if resp := gw.do(t, "PUT", "/v1/workers/w1", body, bearer(testBootstrapToken), nil); resp.StatusCode != 200 {
		t.Fatalf("register: %d", resp.StatusCode)
	}

	out, _, err := runCLI(t, bin, gw, reader, "__complete", "dead", "list", "billing.")
	if err != nil || out != "billing.charge\nbilling.refund\n:4\n" {
		t.Errorf("__complete dead list billing.: %q, %v", out, err)
	}
	out, _, err = runCLI(t, bin, gw, "", "__complete", "dead", "list", "")
	if err != nil || out != ":4\n" {
		t.Errorf("__complete without a key: %q, %v", out, err)
	}

	out, stderr, err := runCLI(t, bin, gw, reader, "version")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || len(lines) != 3 || !strings.HasPrefix(lines[2], "gateway ") || !strings.HasSuffix(lines[2], runtime.Version()) {
		t.Errorf("version: %q %q, %v", out, stderr, err)
	}
}
