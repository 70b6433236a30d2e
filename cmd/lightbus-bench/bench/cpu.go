package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// CPUTarget is a process whose CPU time a run reads from /proc around each
// measured load, with its descendants (a Postgres postmaster's backends).
type CPUTarget struct {
	Name string
	PID  int
}

// ParseCPUTarget reads a --cpu flag's value: name=pid.
func ParseCPUTarget(s string) (CPUTarget, error) {
	name, pid, ok := strings.Cut(s, "=")
	n, err := strconv.Atoi(pid)
	if !ok || name == "" || err != nil || n <= 0 {
		return CPUTarget{}, fmt.Errorf("--cpu %q: want name=pid, e.g. postgres=1234", s)
	}
	return CPUTarget{Name: name, PID: n}, nil
}

// clockTicks is Linux's USER_HZ, the unit of /proc's CPU times (fixed at
// 100 on every architecture Go supports on Linux).
const clockTicks = 100

// selfName is the load tool's own entry in the CPU figures: the requests it
// sends and, for the scenarios with a peer, the listener and RPC worker it
// serves.
const selfName = "load tool"

// procTimes is one process's CPU ticks from /proc/PID/stat: its own user and
// system time (fields 14, 15) and that of its waited-for children (16, 17).
type procTimes struct {
	ppid      int
	own, dead int64
}

// readProcs reads every process's times and parent.
func readProcs() map[int]procTimes {
	out := map[int]procTimes{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		b, err := os.ReadFile(d + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		// The command name (field 2) is in parentheses and may hold spaces.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:])) // f[0] is field 3
		if len(f) < 15 {
			continue
		}
		num := func(field int) int64 { n, _ := strconv.ParseInt(f[field-3], 10, 64); return n }
		out[pid] = procTimes{ppid: int(num(4)), own: num(14) + num(15), dead: num(16) + num(17)}
	}
	return out
}

// treeTicks is the CPU ticks of pid and its live descendants, with the
// children each has waited for: a child that exits between two readings
// moves from the live sum into its parent's, so the difference counts it
// once.
func treeTicks(procs map[int]procTimes, pid int) int64 {
	children := map[int][]int{}
	for p, t := range procs {
		children[t.ppid] = append(children[t.ppid], p)
	}
	var total int64
	var walk func(int)
	walk = func(p int) {
		t, ok := procs[p]
		if !ok {
			return
		}
		total += t.own + t.dead
		for _, c := range children[p] {
			walk(c)
		}
	}
	walk(pid)
	return total
}

// cpuMark is the CPU ticks of each target at the start of a measured load.
type cpuMark struct {
	pids  map[string]int
	ticks map[string]int64
}

// cpuMark reads the targets' CPU ticks, and the load tool's own; nil when
// no target is given.
func (b *runner) cpuMark() *cpuMark {
	if len(b.o.CPU) == 0 {
		return nil
	}
	m := &cpuMark{pids: map[string]int{selfName: os.Getpid()}, ticks: map[string]int64{}}
	for _, t := range b.o.CPU {
		m.pids[t.Name] = t.PID
	}
	procs := readProcs()
	for name, pid := range m.pids {
		m.ticks[name] = treeTicks(procs, pid)
	}
	return m
}

// perItem returns each target's CPU time since the mark, in microseconds
// per item (event, call or delivery); nil without a mark or items.
func (m *cpuMark) perItem(items int) map[string]float64 {
	if m == nil || items <= 0 {
		return nil
	}
	procs := readProcs()
	out := map[string]float64{}
	for name, pid := range m.pids {
		ticks := treeTicks(procs, pid) - m.ticks[name]
		out[name] = float64(ticks) * 1e6 / clockTicks / float64(items)
	}
	return out
}

// cpuNames returns the names of m sorted, the load tool last.
func cpuNames(m map[string]float64) []string {
	var names []string
	for n := range m {
		if n != selfName {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if _, ok := m[selfName]; ok {
		names = append(names, selfName)
	}
	return names
}
