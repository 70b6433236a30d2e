package main

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/gateway/dispatch"
	"github.com/lightbus-go/lightbus/internal/testwait"
)

// basic returns the headers of a browser sending token as the Basic
// password, asking for a page.
func basic(user, token string) map[string]string {
	return map[string]string{
		"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+token)),
		"Accept":        "text/html",
	}
}

// The River UI answers under /admin/river to admin keys, by bearer token or
// by Basic password, serves its embedded bundle, and its API lists the
// gateway's delivery jobs.
func TestRiverUI(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, func(c *Config) { withAuth(c); c.RiverUI = true })
	reader := createKey(t, gw, "reader", "read")
	admin := bearer(testBootstrapToken)

	// Without a key: a 401 that makes a browser ask for a password.
	for _, path := range []string{"/admin/river", "/admin/river/", "/admin/river/api/jobs"} {
		resp := gw.do(t, "GET", path, "", map[string]string{"Accept": "text/html"}, nil)
		expectProblem(t, resp, http.StatusUnauthorized, gateway.EUnauthorized)
		if got := resp.Header.Get("WWW-Authenticate"); got != `Basic realm="lightbus"` {
			t.Errorf("%s: WWW-Authenticate %q", path, got)
		}
	}
	expectProblem(t, gw.do(t, "GET", "/admin/river/", "", basic("ops", "lb_not-a-real-token-0123456789abcdef"), nil),
		http.StatusUnauthorized, gateway.EUnauthorized)
	// A read key, by Basic password or bearer token: forbidden.
	expectForbidden(t, gw.do(t, "GET", "/admin/river/", "", basic("ops", reader), nil), "admin")
	expectForbidden(t, gw.do(t, "GET", "/admin/river/api/jobs", "", bearer(reader), nil), "admin")

	// An admin key as the Basic password, any user name: the page.
	resp := gw.do(t, "GET", "/admin/river/", "", basic("anyone", testBootstrapToken), nil)
	page, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(page), "<title>River</title>") {
		t.Fatalf("GET /admin/river/: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), page)
	}
	// The page's script is the bundle riverui embeds, served under the
	// prefix: no build of its own.
	script := regexp.MustCompile(`src="(/admin/river/assets/[^"]+\.js)"`).FindSubmatch(page)
	if script == nil {
		t.Fatalf("no script under /admin/river/assets in the page:\n%s", page)
	}
	resp = gw.do(t, "GET", string(script[1]), "", basic("", testBootstrapToken), nil)
	js, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "javascript") || len(js) < 1000 {
		t.Fatalf("GET %s: %d %s, %d bytes", script[1], resp.StatusCode, resp.Header.Get("Content-Type"), len(js))
	}
	// /admin/river sends the browser to the page.
	req, _ := http.NewRequest("GET", gw.URL+"/admin/river", nil)
	req.Header.Set("Authorization", admin["Authorization"])
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	redirect, err := noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	redirect.Body.Close()
	if redirect.StatusCode != http.StatusMovedPermanently || redirect.Header.Get("Location") != "/admin/river/" {
		t.Fatalf("GET /admin/river: %d to %q", redirect.StatusCode, redirect.Header.Get("Location"))
	}

	// A dead delivery, listed by the UI's API as a discarded delivery job.
	h := newListener(t, http.StatusInternalServerError)
	body := fmt.Sprintf(`{"service":"billing","base_url":%q,"lease_ttl_ms":60000,"listeners":[{"name":"charge","events":["shop.*"],"path":"/hook","policy":{"max_attempts":1}}]}`, h.srv.URL)
	if resp := gw.do(t, "PUT", "/v1/workers/w1", body, admin, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("register: %d", resp.StatusCode)
	}
	var fired fireResult
	if resp := gw.do(t, "POST", "/v1/events/shop/order_placed", `{}`, admin, &fired); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("fire: %d", resp.StatusCode)
	}
	var deliveryID int64
	testwait.For(t, 15*time.Second, "the delivery to die", func() bool {
		var detail struct {
			Deliveries []struct {
				ID    int64  `json:"id"`
				State string `json:"state"`
			} `json:"deliveries"`
		}
		gw.do(t, "GET", "/v1/events/"+fired.ID, "", admin, &detail)
		if len(detail.Deliveries) == 1 && detail.Deliveries[0].State == gateway.DeliveryDead {
			deliveryID = detail.Deliveries[0].ID
			return true
		}
		return false
	})
	var jobs struct {
		Data []struct {
			ID    int64  `json:"id"`
			Kind  string `json:"kind"`
			Queue string `json:"queue"`
			State string `json:"state"`
		} `json:"data"`
	}
	resp = gw.do(t, "GET", "/admin/river/api/jobs?state=discarded&kinds="+dispatch.DeliveryKind, "", admin, &jobs)
	if resp.StatusCode != http.StatusOK || len(jobs.Data) != 1 || jobs.Data[0].ID != deliveryID ||
		jobs.Data[0].Queue != dispatch.QueueDelivery || jobs.Data[0].State != "discarded" {
		data, _ := io.ReadAll(resp.Body)
		t.Fatalf("River UI jobs: %d %+v (want delivery %d)\n%s", resp.StatusCode, jobs.Data, deliveryID, data)
	}
}

// LIGHTBUS_RIVER_UI=false (testConfig's): no River UI, even for an admin.
func TestRiverUIDisabled(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, func(c *Config) { withAuth(c); c.RiverUI = false })

	expectProblem(t, gw.do(t, "GET", "/admin/river/", "", basic("ops", testBootstrapToken), nil), http.StatusNotFound, gateway.ENotFound)
}
