// Package gatewayproc runs the gateway as its own process for tests that
// drive it from the outside, as a program in another language would: it
// builds cmd/gateway and starts it on a fresh test database. It is for tests
// only; its caller's TestMain must run pgtest.Main.
package gatewayproc

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

// NewToken is a fresh API key token: lb_ and 43 base64url characters.
func NewToken(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "lb_" + base64.RawURLEncoding.EncodeToString(b)
}

// Start builds cmd/gateway and runs it on a fresh database with
// authentication required and token as its bootstrap admin key, with env
// (NAME=value) added to its environment. It returns the gateway's URL once
// it listens; the gateway is stopped when the test ends. Its log goes to
// t.Log.
func Start(t testing.TB, token string, env ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gateway")
	if err := Build(bin); err != nil {
		t.Fatal(err)
	}
	return StartBinary(t, bin, token, env...)
}

// Build builds cmd/gateway into the file bin.
func Build(bin string) error {
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/lightbus-go/lightbus/cmd/gateway").CombinedOutput(); err != nil {
		return fmt.Errorf("build the gateway: %v\n%s", err, out)
	}
	return nil
}

// StartBinary is Start with the gateway binary bin, already built.
func StartBinary(t testing.TB, bin, token string, env ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+pgtest.NewURL(t),
		"LIGHTBUS_ADDR=127.0.0.1:0",
		"LIGHTBUS_AUTH=required",
		"LIGHTBUS_BOOTSTRAP_TOKEN="+token,
		"LIGHTBUS_RETRY_BASE=50ms",
		"LIGHTBUS_RETRY_MAX=500ms",
		"LIGHTBUS_LOG_FORMAT=text",
	)
	cmd.Env = append(cmd.Env, env...)
	logs, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		listening := regexp.MustCompile(`msg="gateway listening" addr=(\S+)`)
		scanner := bufio.NewScanner(logs)
		for scanner.Scan() {
			if m := listening.FindStringSubmatch(scanner.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
			logLine(t, scanner.Text())
		}
	}()
	select {
	case a := <-addr:
		return "http://" + a
	case <-time.After(60 * time.Second):
		t.Fatal("the gateway did not start listening within 60s")
		return ""
	}
}

// logLine logs a gateway line, and drops it once the test is over.
func logLine(t testing.TB, line string) {
	defer func() { _ = recover() }()
	t.Log(line)
}
