package main

import (
	"encoding/json"
	"runtime"
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	t.Parallel()

	tb, _ := gatewayBundle(t)
	if err := tb.execute(t, "version"); err != nil {
		t.Fatal(err)
	}
	want := "         VERSION  REVISION  GO\n" +
		"client   (devel)  -         " + runtime.Version() + "\n" +
		"gateway  v1.4.0   9f2c1e4b  go1.26.8\n"
	if got := tb.stdout.String(); got != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", got, want)
	}

	tb, _ = gatewayBundle(t)
	if err := tb.execute(t, "version", "--json"); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Client  map[string]string `json:"client"`
		Gateway map[string]string `json:"gateway"`
	}
	if err := json.Unmarshal([]byte(tb.stdout.String()), &out); err != nil || out.Client["go"] != runtime.Version() ||
		out.Gateway["version"] != "v1.4.0" || out.Gateway["revision"] != "9f2c1e4b" {
		t.Errorf("--json: %s (%v)", tb.stdout.String(), err)
	}
}

// With no gateway, version prints the client's and fails.
func TestVersionNoGateway(t *testing.T) {
	t.Parallel()

	for _, jsonOut := range []bool{false, true} {
		tb := newTestBundle(t, t.TempDir())
		tb.env["LIGHTBUS_URL"] = "http://127.0.0.1:1"
		args := []string{"version"}
		if jsonOut {
			args = append(args, "--json")
		}
		err := tb.execute(t, args...)
		if err == nil || !strings.Contains(errorLine(err), "127.0.0.1:1") {
			t.Errorf("%q: error %v, want one naming the gateway", args, err)
		}
		out := tb.stdout.String()
		if !strings.Contains(out, runtime.Version()) || strings.Contains(out, "gateway  ") {
			t.Errorf("%q printed:\n%s", args, out)
		}
		if jsonOut && !strings.Contains(out, `"gateway": null`) {
			t.Errorf("--json without a gateway:\n%s", out)
		}
	}
}
