package httpapi

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
)

func TestBearerToken(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		header []string
		token  string
		bad    bool
	}{
		{nil, "", false},
		{[]string{"Bearer lb_abc"}, "lb_abc", false},
		{[]string{"bearer lb_abc"}, "lb_abc", false},
		{[]string{"Bearer  lb_abc "}, "lb_abc", false},
		{[]string{"Basic dXNlcjpwYXNz"}, "", true},
		{[]string{"Bearer"}, "", true},
		{[]string{"Bearer "}, "", true},
		{[]string{"lb_abc"}, "", true},
		{[]string{"Bearer lb_a", "Bearer lb_b"}, "", true},
	} {
		r := httptest.NewRequest(http.MethodGet, "/v1/events", nil)
		for _, v := range tc.header {
			r.Header.Add("Authorization", v)
		}
		token, err := bearerToken(r)
		if token != tc.token || (err != nil) != tc.bad || (err != nil && gateway.ErrorCode(err) != gateway.EUnauthorized) {
			t.Errorf("Authorization %q: got %q, %v", tc.header, token, err)
		}
	}
}

func TestLimiter(t *testing.T) {
	t.Parallel()

	if newLimiter(0, 10) != nil {
		t.Error("rate 0 makes a limiter")
	}
	l := newLimiter(2, 3) // 2 a second, bursts of 3
	now := time.Unix(1000, 0)
	for i := range 3 {
		if _, ok := l.allow("a", now); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	wait, ok := l.allow("a", now)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("past the burst: %s, %v; want refused for 500ms", wait, ok)
	}
	if _, ok := l.allow("b", now); !ok {
		t.Error("another key is limited by the first one's requests")
	}
	if _, ok := l.allow("a", now.Add(499*time.Millisecond)); ok {
		t.Error("a token came back before its time")
	}
	if _, ok := l.allow("a", now.Add(500*time.Millisecond)); !ok {
		t.Error("no token after 1/rate")
	}
	// A long pause refills to the burst, no more.
	later := now.Add(time.Hour)
	for i := range 3 {
		if _, ok := l.allow("a", later); !ok {
			t.Fatalf("request %d after a pause refused", i+1)
		}
	}
	if _, ok := l.allow("a", later); ok {
		t.Error("the bucket filled past its burst")
	}
	// Burst 0: a second's worth.
	if l := newLimiter(2.5, 0); l.burst != 3 {
		t.Errorf("default burst for 2.5/s = %v, want 3", l.burst)
	}
}

func TestWriteErrorAuthHeaders(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		err                 error
		status              int
		challenge, retryAft string
	}{
		{gateway.Errorf(gateway.EUnauthorized, "no"), 401, `Bearer realm="lightbus"`, ""},
		{gateway.Errorf(gateway.EForbidden, "no"), 403, "", ""},
		{&gateway.Error{Code: gateway.ERateLimited, RetryAfter: 1200 * time.Millisecond}, 429, "", "2"},
		{&gateway.Error{Code: gateway.ERateLimited, RetryAfter: time.Millisecond}, 429, "", "1"},
	} {
		rec := httptest.NewRecorder()
		writeError(rec, httptest.NewRequest(http.MethodGet, "/v1/x", nil), slog.New(slog.DiscardHandler), tc.err)
		if rec.Code != tc.status || rec.Header().Get("WWW-Authenticate") != tc.challenge || rec.Header().Get("Retry-After") != tc.retryAft {
			t.Errorf("%v: %d, WWW-Authenticate %q, Retry-After %q", tc.err, rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Header().Get("Retry-After"))
		}
	}
}

// Every operation of openapi.yaml needs a bearer token and declares 401,
// 403 and 429, except the open ones (security: []), which are exactly the
// paths the authentication middleware lets through, and those any valid
// key may use (no 403).
func TestOpenAPISecurity(t *testing.T) {
	t.Parallel()

	var spec struct {
		Security []map[string][]string     `yaml:"security"`
		Paths    map[string]map[string]any `yaml:"paths"`
	}
	readSpec(t, &spec)
	if len(spec.Security) != 1 || spec.Security[0]["bearer"] == nil {
		t.Errorf("the spec's security is %v, want bearer for every operation", spec.Security)
	}
	anyKey := map[string]bool{"/v1/version": true}
	var open []string
	for path, item := range spec.Paths {
		for method, v := range item {
			op, ok := v.(map[string]any)
			if !ok || method == "parameters" {
				continue
			}
			if sec, ok := op["security"]; ok {
				if list, _ := sec.([]any); len(list) != 0 {
					t.Errorf("%s %s has its own security %v", method, path, sec)
				}
				open = append(open, path)
				continue
			}
			responses, _ := op["responses"].(map[string]any)
			for _, code := range []string{"401", "403", "429"} {
				if code == "403" && anyKey[path] {
					if responses[code] != nil {
						t.Errorf("%s %s takes any key but declares 403", method, path)
					}
					continue
				}
				if responses[code] == nil {
					t.Errorf("%s %s needs a key but does not declare %s", method, path, code)
				}
			}
		}
	}
	var served []string
	for p := range openPaths {
		served = append(served, p)
	}
	sort.Strings(open)
	sort.Strings(served)
	if strings.Join(open, " ") != strings.Join(served, " ") {
		t.Errorf("open in openapi.yaml: %v; let through by the middleware: %v", open, served)
	}
}
