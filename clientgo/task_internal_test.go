package lightbus

import (
	"context"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/London on any machine
)

func expireSessions(context.Context) error { return nil }

type sweeper struct{}

func (sweeper) Sweep(context.Context) error { return nil }

func TestTaskNames(t *testing.T) {
	t.Parallel()

	if got := funcName(expireSessions); got != "expireSessions" {
		t.Errorf("funcName(expireSessions) = %q", got)
	}
	if got := funcName(sweeper{}.Sweep); got != "Sweep" {
		t.Errorf("funcName(method value) = %q", got)
	}
	if got := funcName(func(context.Context) error { return nil }); got != "" {
		t.Errorf("funcName(literal) = %q, want none", got)
	}
	b := MustCreate(WithService("jobs"))
	b.Every(time.Minute, expireSessions)
	b.Schedule("0 3 * * *", func(context.Context) error { return nil }, TaskName("nightly"))
	b.Every(time.Second, expireSessions, TaskName("local"), PerProcess())
	b.mu.RLock()
	decls := b.taskDecls()
	b.mu.RUnlock()
	if len(decls) != 2 {
		t.Fatalf("declared %+v: want the two tasks that are not per process", decls)
	}
	for name, declare := range map[string]func(){
		"literal without a name": func() { b.Every(time.Minute, func(context.Context) error { return nil }) },
		"a name twice":           func() { b.Every(time.Minute, expireSessions) },
		"a bad name":             func() { b.Every(time.Minute, expireSessions, TaskName("a-b")) },
		"a zero interval":        func() { b.Every(0, expireSessions, TaskName("zero")) },
		"a bad cron spec":        func() { b.Schedule("61 * * * *", expireSessions, TaskName("bad")) },
		"two time zones":         func() { b.Schedule("TZ=UTC 0 3 * * *", expireSessions, TaskName("tz"), InLocation(time.UTC)) },
		"@every in Schedule":     func() { b.Schedule("@every 1m", expireSessions, TaskName("ev")) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			declare()
		}()
	}
}

func TestCronSchedule(t *testing.T) {
	t.Parallel()

	london, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2030, 7, 1, 12, 0, 0, 0, time.UTC) // British summer time: UTC+1
	for _, tc := range []struct {
		spec     string
		loc      *time.Location
		want     time.Time
		declared string
	}{
		{"0 3 * * *", nil, time.Date(2030, 7, 2, 3, 0, 0, 0, time.UTC), "CRON_TZ=UTC 0 3 * * *"},
		{"0 3 * * *", london, time.Date(2030, 7, 2, 2, 0, 0, 0, time.UTC), "CRON_TZ=Europe/London 0 3 * * *"},
		{"CRON_TZ=Europe/London 0 3 * * *", nil, time.Date(2030, 7, 2, 2, 0, 0, 0, time.UTC), "CRON_TZ=Europe/London 0 3 * * *"},
		{"*/15 * * * *", nil, time.Date(2030, 7, 1, 12, 15, 0, 0, time.UTC), "CRON_TZ=UTC */15 * * * *"},
		{"@hourly", nil, time.Date(2030, 7, 1, 13, 0, 0, 0, time.UTC), "CRON_TZ=UTC @hourly"},
	} {
		s, declared, err := parseCron(tc.spec, tc.loc)
		if err != nil {
			t.Errorf("parseCron(%q): %v", tc.spec, err)
			continue
		}
		if got := s.next(from); !got.Equal(tc.want) || declared != tc.declared {
			t.Errorf("parseCron(%q, %v): next %s, declared %q; want %s, %q", tc.spec, tc.loc, got, declared, tc.want, tc.declared)
		}
	}
}

func TestEveryTicks(t *testing.T) {
	t.Parallel()

	tk := &task{kind: taskEvery, interval: time.Second, sched: everySchedule{time.Second}}
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	// The next tick is an interval after the last, whatever the run took.
	if got := tk.after(t0, t0.Add(300*time.Millisecond)); !got.Equal(t0.Add(time.Second)) {
		t.Errorf("after a 300ms run: next tick %s", got)
	}
	// Woken late, missed ticks are skipped, not caught up, keeping the cadence.
	if got := tk.after(t0, t0.Add(3500*time.Millisecond)); !got.Equal(t0.Add(4 * time.Second)) {
		t.Errorf("woken 3.5s late: next tick %s, want %s", got, t0.Add(4*time.Second))
	}
	// A new leader continues the previous leader's cadence after its last
	// tick; an overdue tick runs at once; with no run yet, its own.
	own := t0.Add(10 * time.Second)
	if got := tk.onGain(own, t0, t0.Add(200*time.Millisecond)); !got.Equal(t0.Add(time.Second)) {
		t.Errorf("taking over 200ms after a run: next tick %s", got)
	}
	now := t0.Add(5 * time.Second)
	if got := tk.onGain(own, t0, now); !got.Equal(now) {
		t.Errorf("taking over an overdue task: next tick %s, want now", got)
	}
	if got := tk.onGain(own, time.Time{}, now); !got.Equal(own) {
		t.Errorf("taking over a task that never ran: next tick %s, want its own %s", got, own)
	}
	tk.runAtStart = true
	if got := tk.onGain(own, time.Time{}, now); !got.Equal(now) {
		t.Errorf("RunAtStart, never ran: next tick %s, want now", got)
	}
}

func TestTruncateUTF8(t *testing.T) {
	t.Parallel()
	s := strings.Repeat("é", 3000) // 6000 bytes
	got := truncateUTF8(s, maxTaskErrorLen)
	if len(got) > maxTaskErrorLen || !strings.HasPrefix(s, got) || len(got) < maxTaskErrorLen-1 {
		t.Fatalf("truncateUTF8: %d bytes", len(got))
	}
}
