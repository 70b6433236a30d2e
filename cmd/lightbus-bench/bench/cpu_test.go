package bench

import (
	"bufio"
	"os/exec"
	"testing"
	"time"
)

func TestParseCPUTarget(t *testing.T) {
	if got, err := ParseCPUTarget("postgres=1234"); err != nil || got != (CPUTarget{Name: "postgres", PID: 1234}) {
		t.Errorf("ParseCPUTarget(postgres=1234) = %+v, %v", got, err)
	}
	for _, bad := range []string{"", "postgres", "=12", "postgres=", "postgres=x", "postgres=-1", "postgres=0"} {
		if _, err := ParseCPUTarget(bad); err == nil {
			t.Errorf("ParseCPUTarget(%q) accepted", bad)
		}
	}
}

// TestCPUCountsDescendants: a target's CPU time includes that of its
// descendants, live and exited, as a Postgres postmaster's includes its
// backends'. The target only waits; a child spins for a second, in a
// process still running at the reading or in one that exited before it.
func TestCPUCountsDescendants(t *testing.T) {
	// About half a second of CPU in a shell loop, then a line on stdout.
	const spin = `i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; echo spun`
	for name, script := range map[string]string{
		"live":   "sh -c '" + spin + "; sleep 30' & sleep 30",
		"exited": "sh -c '" + spin + "'; sleep 30",
	} {
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", script)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			b := &runner{o: Options{CPU: []CPUTarget{{Name: "tree", PID: cmd.Process.Pid}}}}
			mark := b.cpuMark()
			line, err := bufio.NewReader(out).ReadString('\n')
			if err != nil || line != "spun\n" {
				t.Fatalf("the child said %q, %v", line, err)
			}
			time.Sleep(100 * time.Millisecond) // the exited child reaped
			got := mark.perItem(1)
			if got["tree"] < 100_000 {
				t.Errorf("CPU of the tree = %.0f µs, want its child's loop (about half a second)", got["tree"])
			}
			if _, ok := got[selfName]; !ok {
				t.Errorf("no %q entry in %v", selfName, got)
			}
		})
	}
}

func TestCPUWithoutMark(t *testing.T) {
	if (*cpuMark)(nil).perItem(1) != nil {
		t.Error("perItem without a mark is not nil")
	}
	b := &runner{o: Options{CPU: []CPUTarget{{Name: "self", PID: 1}}}}
	if b.cpuMark().perItem(0) != nil {
		t.Error("perItem of no items is not nil")
	}
}
