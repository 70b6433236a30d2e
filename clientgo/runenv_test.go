package lightbus

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestProcessName(t *testing.T) {
	t.Parallel()

	host, _ := os.Hostname()
	pid := strconv.Itoa(os.Getpid())
	for template, want := range map[string]string{
		"plain":                    "^plain$",
		"w-{pid}":                  "^w-" + pid + "$",
		"{hostname}.{pid}":         "^" + regexp.QuoteMeta(cleanWorkerID(host)) + `\.` + pid + "$",
		"orders-{random4}":         "^orders-[0-9a-f]{4}$",
		"{friendly}":               "^[a-z]+-[a-z]+$",
		"{random4}{random4}_{pid}": "^[0-9a-f]{8}_" + pid + "$",
	} {
		got, err := ProcessName(template)
		if err != nil || !regexp.MustCompile(want).MatchString(got) {
			t.Errorf("ProcessName(%q) = %q, %v; want %s", template, got, err, want)
		}
	}
	for template, want := range map[string]string{
		"w-{uid}":                "unknown placeholder {uid}",
		"w-{pid":                 "unclosed {",
		"":                       "want a worker id",
		"has space-{pid}":        "want a worker id",
		strings.Repeat("x", 129): "want a worker id",
	} {
		if _, err := ProcessName(template); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ProcessName(%q) = %v, want an error containing %q", template, err, want)
		}
	}
}

// The environment beats the code; a bad value is an error naming the
// variable; an unset variable leaves the code's setting.
func TestApplyEnv(t *testing.T) {
	t.Parallel()

	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	bus := newTestBus(t, "http://code.test:1", WithService("code"), WithToken("lb_code"), WithWorkerID("code-id"))
	if err := bus.applyEnv(env(nil)); err != nil || bus.URL() != "http://code.test:1" || bus.Service() != "code" || bus.WorkerID() != "code-id" || bus.features != nil {
		t.Fatalf("empty environment changed the bus: %v", err)
	}
	err := bus.applyEnv(env(map[string]string{
		EnvURL: "http://env.test:2/", EnvToken: "lb_env", EnvServiceName: "env.svc",
		EnvProcessName: "env-{pid}", EnvLogLevel: "debug", EnvLogFormat: "json", EnvSkip: "events, tasks",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if bus.URL() != "http://env.test:2" || bus.authorization[0] != "Bearer lb_env" || bus.Service() != "env.svc" ||
		bus.WorkerID() != "env-"+strconv.Itoa(os.Getpid()) || !bus.log.Enabled(context.Background(), -4) {
		t.Errorf("environment not applied: %s %v %s %s", bus.URL(), bus.authorization, bus.Service(), bus.WorkerID())
	}
	if !bus.runs(FeatureRPCs) || bus.runs(FeatureEvents) || bus.runs(FeatureTasks) {
		t.Errorf("features after skip events,tasks: %v", bus.features)
	}

	for name, bad := range map[string]map[string]string{
		EnvURL:         {EnvURL: "ftp://x"},
		EnvServiceName: {EnvServiceName: "no-dashes"},
		EnvProcessName: {EnvProcessName: "{nope}"},
		EnvLogLevel:    {EnvLogLevel: "loud"},
		EnvLogFormat:   {EnvLogFormat: "xml"},
		EnvOnly:        {EnvOnly: "rpcs,cron"},
		EnvSkip:        {EnvOnly: "rpcs", EnvSkip: "events"},
	} {
		if err := newTestBus(t, "http://code.test:1").applyEnv(env(bad)); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("applyEnv(%v) = %v, want an error naming %s", bad, err, name)
		}
	}
}

// A worker that skips events registers no listener group, one that skips
// RPCs no API, and neither serves what it skips.
func TestFeaturesFilterRegistration(t *testing.T) {
	t.Parallel()

	setup := func(t *testing.T, only string) *Bus {
		bus := newTestBus(t, "http://127.0.0.1:1", WithService("auth"))
		bus.Handle("auth.check", func(context.Context, json.RawMessage) (any, error) { return true, nil })
		bus.Listen("customers.new_customer", "create_user", func(context.Context, EventMessage) error { return nil })
		if err := bus.applyEnv(func(k string) string {
			if k == EnvOnly {
				return only
			}
			return ""
		}); err != nil {
			t.Fatal(err)
		}
		grantKey(bus, "create_user", testKey)
		return bus
	}
	for only, want := range map[string][2]int{"": {1, 1}, "rpcs": {1, 0}, "events": {0, 1}, "tasks": {0, 0}} {
		bus := setup(t, only)
		body := bus.registrationBody("http://w.test")
		if len(body.APIs) != want[0] || len(body.Listeners) != want[1] {
			t.Errorf("only %q: registers %d APIs and %d listeners, want %d and %d", only, len(body.APIs), len(body.Listeners), want[0], want[1])
		}
		rec, _ := delivery{listener: "create_user", ceType: "customers.new_customer", body: `{"name":"x","email":"y"}`, key: testKey}.send(t, bus)
		if served := rec.Code == 204; served != (want[1] == 1) {
			t.Errorf("only %q: delivery answered %d", only, rec.Code)
		}
	}
}
