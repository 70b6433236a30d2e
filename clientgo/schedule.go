package lightbus

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// schedule says when a task's ticks fall.
type schedule interface {
	// next returns the first tick after t.
	next(t time.Time) time.Time
}

// everySchedule ticks every interval, from a start the task picks.
type everySchedule struct{ interval time.Duration }

func (s everySchedule) next(t time.Time) time.Time { return t.Add(s.interval) }

// cronSchedule ticks on a 5-field cron schedule.
type cronSchedule struct{ spec cron.Schedule }

func (s cronSchedule) next(t time.Time) time.Time { return s.spec.Next(t) }

// parseCron parses a standard 5-field cron spec ("0 3 * * *"), with an
// optional CRON_TZ= or TZ= prefix, or a descriptor ("@hourly"). Without a
// prefix the schedule is in loc (UTC when nil). It returns the schedule and
// the spec as declared to the gateway, its time zone spelled out.
func parseCron(spec string, loc *time.Location) (cronSchedule, string, error) {
	spec = strings.TrimSpace(spec)
	hasTZ := strings.HasPrefix(spec, "CRON_TZ=") || strings.HasPrefix(spec, "TZ=")
	if hasTZ && loc != nil {
		return cronSchedule{}, "", fmt.Errorf("cron spec %q names its time zone, and InLocation names another", spec)
	}
	if strings.HasPrefix(spec, "@every") {
		return cronSchedule{}, "", fmt.Errorf("cron spec %q: use Bus.Every for intervals", spec)
	}
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return cronSchedule{}, "", fmt.Errorf("cron spec %q: %w", spec, err)
	}
	if !hasTZ {
		if loc == nil {
			loc = time.UTC
		}
		ss, ok := s.(*cron.SpecSchedule)
		if !ok {
			return cronSchedule{}, "", fmt.Errorf("cron spec %q: not a calendar schedule", spec)
		}
		ss.Location = loc
		spec = "CRON_TZ=" + loc.String() + " " + spec
	}
	return cronSchedule{spec: s}, spec, nil
}
