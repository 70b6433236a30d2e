package typescript_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/lightbus-go/lightbus/internal/gatewayproc"
	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestTypeScriptExample regenerates the TypeScript types from openapi.yaml
// and compares them with the committed ones, compiles the example with
// strict tsc, and runs it against a gateway that requires API keys.
func TestTypeScriptExample(t *testing.T) {
	t.Parallel()

	if _, err := os.Stat("node_modules/.bin/tsc"); err != nil {
		if os.Getenv("LIGHTBUS_REQUIRE_NODE") != "" {
			t.Fatalf("the Node packages are not installed (npm ci in examples/typescript): %v", err)
		}
		t.Skip("the Node packages are not installed: run npm ci in examples/typescript")
	}
	dir := t.TempDir()

	types := filepath.Join(dir, "lightbus.d.ts")
	run(t, nil, "node_modules/.bin/openapi-typescript", "../../openapi.yaml", "-o", types)
	want, err := os.ReadFile(types)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("src/lightbus.d.ts")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("src/lightbus.d.ts is not what openapi.yaml generates: run npm run generate in examples/typescript")
	}

	// Into ./dist (ignored by git), where Node finds ./node_modules.
	run(t, nil, "node_modules/.bin/tsc", "-p", ".")

	token := gatewayproc.NewToken(t)
	url := gatewayproc.Start(t, token)
	run(t, []string{"LIGHTBUS_URL=" + url, "LIGHTBUS_TOKEN=" + token}, "node", "dist/main.js")
}

// run runs name with args, env added to its environment, and fails the
// test when it fails.
func run(t *testing.T, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	t.Logf("%s: %s", name, out)
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
}
