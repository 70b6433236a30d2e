package httpapi

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/lightbus-go/lightbus/gateway"
)

func TestUIToken(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		header []string
		token  string
		bad    bool
	}{
		{nil, "", false},
		{[]string{"Basic dXNlcjpsYl9hYmM="}, "lb_abc", false}, // user:lb_abc
		{[]string{"basic OmxiX2FiYw=="}, "lb_abc", false},     // :lb_abc, no user name
		{[]string{"Bearer lb_abc"}, "lb_abc", false},
		{[]string{"Basic dXNlcjo="}, "", true}, // user: with no password
		{[]string{"Basic !!!"}, "", true},
		{[]string{"Basic dXNlcjpsYl9hYmM=", "Bearer lb_b"}, "", true},
		{[]string{"lb_abc"}, "", true},
	} {
		r := httptest.NewRequest(http.MethodGet, RiverUIPath+"/", nil)
		for _, v := range tc.header {
			r.Header.Add("Authorization", v)
		}
		token, err := uiToken(r)
		if token != tc.token || (err != nil) != tc.bad || (err != nil && gateway.ErrorCode(err) != gateway.EUnauthorized) {
			t.Errorf("Authorization %q: got %q, %v", tc.header, token, err)
		}
	}
}

// A 401 under the River UI asks a browser for Basic credentials; elsewhere
// for a bearer token.
func TestRiverUIChallenge(t *testing.T) {
	t.Parallel()

	for path, want := range map[string]string{
		RiverUIPath:                basicChallenge,
		RiverUIPath + "/":          basicChallenge,
		RiverUIPath + "/api/jobs":  basicChallenge,
		"/admin/riverside":         authChallenge,
		"/v1/events":               authChallenge,
		"/v1/events" + RiverUIPath: authChallenge,
	} {
		rec := httptest.NewRecorder()
		writeError(rec, httptest.NewRequest(http.MethodGet, path, nil), slog.New(slog.DiscardHandler), gateway.Errorf(gateway.EUnauthorized, "no"))
		if got := rec.Header().Get("WWW-Authenticate"); got != want {
			t.Errorf("%s: WWW-Authenticate %q, want %q", path, got, want)
		}
	}
}

// Without a River UI, its path answers 404 problem+json.
func TestRiverUIDisabled(t *testing.T) {
	t.Parallel()

	h := New(Config{Service: gateway.NewService(gateway.ServiceConfig{})})
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, RiverUIPath+"/", nil))
	if rec.Code != http.StatusNotFound || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("%d %s: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
}

// A request that changes something in the River UI from another origin is
// refused before it reaches the UI; the same request from the gateway's own
// pages reaches it.
func TestRiverUICrossOrigin(t *testing.T) {
	t.Parallel()

	reached := 0
	ui := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++ })
	h := New(Config{Service: gateway.NewService(gateway.ServiceConfig{}), RiverUI: ui})

	r := httptest.NewRequest(http.MethodPost, "http://gw.example"+RiverUIPath+"/api/jobs/delete", nil)
	r.Header.Set("Sec-Fetch-Site", "cross-site")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != http.StatusForbidden || reached != 0 {
		t.Fatalf("cross-site POST: %d, reached the UI %d times", rec.Code, reached)
	}

	r = httptest.NewRequest(http.MethodPost, "http://gw.example"+RiverUIPath+"/api/jobs/delete", nil)
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != http.StatusOK || reached != 1 {
		t.Fatalf("same-origin POST: %d, reached the UI %d times", rec.Code, reached)
	}
}
