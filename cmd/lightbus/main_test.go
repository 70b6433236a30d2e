package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a bytes.Buffer safe to read while a process writes to it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testBundle is a command line with captured output, working in dir, with
// a private cache directory and environment.
type testBundle struct {
	cli    *cli
	stdout *lockedBuffer
	stderr *lockedBuffer
	env    map[string]string
	cache  string
}

func newTestBundle(t *testing.T, dir string) *testBundle {
	t.Helper()
	tb := &testBundle{
		stdout: &lockedBuffer{},
		stderr: &lockedBuffer{},
		env:    map[string]string{},
		cache:  t.TempDir(),
	}
	tb.cli = newCLI(strings.NewReader(""), tb.stdout, tb.stderr, func(k string) string { return tb.env[k] })
	tb.cli.dir = dir
	tb.cli.cacheDir = func() (string, error) { return tb.cache, nil }
	return tb
}

// execute runs args on a fresh command line sharing the bundle's output,
// cache and environment.
func (tb *testBundle) execute(t *testing.T, args ...string) error {
	t.Helper()
	c := *tb.cli
	return c.execute(t.Context(), args)
}

// writeTree writes files (slash-separated paths relative to dir).
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshot lists every file and directory under dir with its size and
// modification time.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files[rel] = fmt.Sprintf("%s %s %d", fi.Mode(), fi.ModTime(), fi.Size())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestErrorLine(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		err  error
		want string
	}{
		{errors.New("plain"), "plain"},
		{errors.New("lightbus: call auth.x: timeout (504): too slow"), "call auth.x: timeout (504): too slow"},
		{errors.New("updates to go.mod needed; to update it:\n\tgo mod tidy"), "updates to go.mod needed; to update it: go mod tidy"},
	} {
		if got := errorLine(tt.err); got != tt.want {
			t.Errorf("errorLine(%q) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	t.Parallel()

	tb := newTestBundle(t, t.TempDir())
	err := tb.execute(t, "nope")
	if err == nil || !strings.Contains(err.Error(), `unknown command "nope"`) {
		t.Fatalf("err = %v, want unknown command", err)
	}
	if tb.stdout.String() != "" {
		t.Errorf("stdout = %q, want nothing (no usage dump)", tb.stdout.String())
	}
}

func TestBusModuleChoice(t *testing.T) {
	t.Parallel()

	tb := newTestBundle(t, t.TempDir())
	if got := tb.cli.busModule(""); got != "./bus" {
		t.Errorf("default = %q, want ./bus", got)
	}
	tb.env["LIGHTBUS_MODULE"] = "./internal/bus"
	if got := tb.cli.busModule(""); got != "./internal/bus" {
		t.Errorf("from environment = %q, want ./internal/bus", got)
	}
	if got := tb.cli.busModule("example.com/x/bus"); got != "example.com/x/bus" {
		t.Errorf("from flag = %q, want example.com/x/bus", got)
	}
}

// TestLinksNoServerPackage keeps the CLI a client of the gateway: it
// reaches the gateway only through clientgo, and links no database driver
// (the load tool, with its pgx and River baselines, is cmd/lightbus-bench).
func TestLinksNoServerPackage(t *testing.T) {
	t.Parallel()

	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{
			"github.com/jackc/pgx",
			"github.com/riverqueue/river",
			"github.com/lightbus-go/lightbus/gateway",
			"github.com/lightbus-go/lightbus/store",
			"github.com/lightbus-go/lightbus/cmd/lightbus-bench",
			// OpenTelemetry's API only: no SDK, no exporter.
			"go.opentelemetry.io/otel/sdk",
			"go.opentelemetry.io/otel/exporters",
			"google.golang.org/grpc",
		} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("cmd/lightbus links %s", dep)
			}
		}
	}
}
