package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/gateway/dispatch"
	"github.com/lightbus-go/lightbus/store/postgres"
	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

// sseMessage is one Server-Sent Events message: its fields, or a comment.
type sseMessage struct {
	ID, Event, Data, Comment string
}

// sseClient reads one stream's messages as they come.
type sseClient struct {
	resp *http.Response
	msgs chan sseMessage
}

// openStream opens GET path with header and reads its messages in the
// background; a non-200 answer is returned unread.
func openStream(t *testing.T, ctx context.Context, base, path string, header map[string]string) (*sseClient, *http.Response) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		return nil, resp
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	c := &sseClient{resp: resp, msgs: make(chan sseMessage, 1000)}
	go func() {
		defer close(c.msgs)
		sc := bufio.NewScanner(resp.Body)
		var m sseMessage
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				c.msgs <- m
				m = sseMessage{}
			case strings.HasPrefix(line, ":"):
				m.Comment = strings.TrimSpace(line[1:])
			case strings.HasPrefix(line, "id: "):
				m.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				m.Event = line[7:]
			case strings.HasPrefix(line, "data: "):
				m.Data = line[6:]
			}
		}
	}()
	t.Cleanup(func() { resp.Body.Close() })
	return c, resp
}

// next returns the next message that is not a heartbeat or position
// alone, failing after a generous deadline.
func (c *sseClient) nextEvent(t *testing.T) (sseMessage, gateway.Event) {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				t.Fatal("the stream ended")
			}
			if m.Data == "" {
				continue
			}
			var ev gateway.Event
			if err := json.Unmarshal([]byte(m.Data), &ev); err != nil {
				t.Fatalf("data %q: %v", m.Data, err)
			}
			return m, ev
		case <-deadline:
			t.Fatal("no event within 30 s")
		}
	}
}

// first returns the stream's first message: its position.
func (c *sseClient) first(t *testing.T) sseMessage {
	t.Helper()
	select {
	case m := <-c.msgs:
		if m.ID == "" || m.Data != "" {
			t.Fatalf("first message %+v, want the position alone", m)
		}
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("no first message within 30 s")
	}
	return sseMessage{}
}

// streamServer serves the HTTP API with streams that poll often.
func streamServer(t *testing.T, mutate func(*gateway.StreamConfig)) (*testServer, *Handler) {
	t.Helper()
	store, err := postgres.New(pgtest.New(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := gateway.StreamConfig{Store: store, PollInterval: 20 * time.Millisecond, MaxStreams: 3, Retention: 72 * time.Hour}
	if mutate != nil {
		mutate(&sc)
	}
	h := New(Config{
		Service: gateway.NewService(gateway.ServiceConfig{
			Events: store, Workers: store, Listeners: store, Replays: store, Schemas: store,
			SchemaCache: gateway.NewSchemaCache(gateway.SchemaCacheConfig{Store: store}),
			Forwarder:   dispatch.NewForwarder(dispatch.ForwarderConfig{Store: store}),
			Streams:     sc,
		}),
		StreamHeartbeat: 100 * time.Millisecond,
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testServer{URL: srv.URL}, h
}

func TestStreamHTTP(t *testing.T) {
	t.Parallel()

	t.Run("FollowAndResume", func(t *testing.T) {
		t.Parallel()
		gw, _ := streamServer(t, nil)
		ctx, cancel := context.WithCancel(t.Context())
		c, _ := openStream(t, ctx, gw.URL, "/v1/events/stream?api=shop", nil)
		c.first(t)
		var fired []string
		for i := range 5 {
			var res gateway.FireResult
			gw.do(t, "POST", "/v1/events/shop/order_placed", fmt.Sprintf(`{"n":%d}`, i), nil, &res)
			gw.do(t, "POST", "/v1/events/other/order_placed", `{}`, nil, nil) // filtered out
			fired = append(fired, res.ID)
		}
		var last string
		for i := range 3 {
			m, ev := c.nextEvent(t)
			if ev.ID != fired[i] || m.Event != "lightbus.event" || ev.API != "shop" || string(ev.Params) != fmt.Sprintf(`{"n":%d}`, i) {
				t.Fatalf("message %d: %+v %+v, want event %s", i, m, ev, fired[i])
			}
			last = m.ID
		}
		cancel() // the client goes after three events

		// Resuming from the third: the fourth and fifth, once each.
		for _, resume := range []struct {
			path   string
			header map[string]string
		}{
			{"/v1/events/stream?api=shop", map[string]string{"Last-Event-ID": last}},
			{"/v1/events/stream?api=shop&after=" + url.QueryEscape(last), nil},
			// The header is newer than the query (a browser's reconnect).
			{"/v1/events/stream?api=shop&after=garbage", map[string]string{"Last-Event-ID": last}},
		} {
			ctx, cancel := context.WithCancel(t.Context())
			c, resp := openStream(t, ctx, gw.URL, resume.path, resume.header)
			if c == nil {
				t.Fatalf("%s: %d", resume.path, resp.StatusCode)
			}
			if m := c.first(t); m.ID != last {
				t.Errorf("resumed at %s, want %s", m.ID, last)
			}
			for i := 3; i < 5; i++ {
				if _, ev := c.nextEvent(t); ev.ID != fired[i] {
					t.Fatalf("%s: resumed with %s, want %s", resume.path, ev.ID, fired[i])
				}
			}
			select {
			case m := <-c.msgs:
				for m.Data == "" && m.Comment == "" {
					m = <-c.msgs // a position alone
				}
				if m.Data != "" {
					t.Fatalf("%s: after the fifth event: %+v", resume.path, m)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("no heartbeat")
			}
			cancel()
		}
	})

	t.Run("Filters", func(t *testing.T) {
		t.Parallel()
		gw, _ := streamServer(t, nil)
		c, _ := openStream(t, t.Context(), gw.URL, "/v1/events/stream?api=shop.*&event=*_placed&where=total%3E=10&where=address.city=London", nil)
		c.first(t)
		want := ""
		for _, f := range []struct{ path, body string }{
			{"/v1/events/shop/order_placed", `{"total":50,"address":{"city":"London"}}`},          // api
			{"/v1/events/shop.eu/order_taken", `{"total":50,"address":{"city":"London"}}`},        // event
			{"/v1/events/shop.eu/order_placed", `{"total":5,"address":{"city":"London"}}`},        // total
			{"/v1/events/shop.eu/order_placed", `{"total":"50","address":{"city":"London"}}`},     // a string
			{"/v1/events/shop.eu/order_placed", `{"total":50,"address":{"city":["London"]}}`},     // in an array
			{"/v1/events/shop.eu/order_placed", `{"total":50,"address":{"city":"London","n":1}}`}, // matches
		} {
			var res gateway.FireResult
			gw.do(t, "POST", f.path, f.body, nil, &res)
			want = res.ID
		}
		if _, ev := c.nextEvent(t); ev.ID != want {
			t.Fatalf("streamed %+v, want only the last event %s", ev, want)
		}
	})

	t.Run("Refusals", func(t *testing.T) {
		t.Parallel()
		gw, _ := streamServer(t, func(c *gateway.StreamConfig) { c.MaxResume = time.Hour; c.MaxStreams = 2 })
		old := gateway.StreamCursor{XID: 5, ID: uuid.New(), Time: time.Now().Add(-2 * time.Hour)}.String()
		tooOld := gateway.StreamCursor{XID: 5, ID: uuid.New(), Time: time.Now().Add(-100 * time.Hour)}.String()
		for _, tc := range []struct {
			path, lastID string
			status       int
			code         string
		}{
			{"/v1/events/stream", old, 410, "gone"},
			{"/v1/events/stream?after=" + old, "", 410, "gone"},
			{"/v1/events/stream", tooOld, 410, "gone"},
			{"/v1/events/stream", "not-a-cursor", 400, "invalid"},
			{"/v1/events/stream?after=AQ", "", 400, "invalid"},
			{"/v1/events/stream?where=a%3E", "", 400, "invalid"},
			{"/v1/events/stream?api=a%25b", "", 400, "invalid"},
			{"/v1/events/stream?since=yesterday", "", 400, "invalid"},
		} {
			h := map[string]string{}
			if tc.lastID != "" {
				h["Last-Event-ID"] = tc.lastID
			}
			_, resp := openStream(t, t.Context(), gw.URL, tc.path, h)
			p := expectProblem(t, resp, tc.status, tc.code)
			if p.Detail == "" {
				t.Errorf("%s: no detail", tc.path)
			}
		}
		// The third stream of a server allowing two.
		for range 2 {
			c, _ := openStream(t, t.Context(), gw.URL, "/v1/events/stream", nil)
			c.first(t)
		}
		_, resp := openStream(t, t.Context(), gw.URL, "/v1/events/stream", nil)
		expectProblem(t, resp, 503, "unavailable")
		if resp.Header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	})

	t.Run("HeartbeatAndShutdown", func(t *testing.T) {
		t.Parallel()
		gw, h := streamServer(t, nil)
		c, _ := openStream(t, t.Context(), gw.URL, "/v1/events/stream", nil)
		c.first(t)
		for m := range c.msgs {
			if m.Comment == "ping" {
				break
			}
		}
		h.CloseStreams()
		deadline := time.After(30 * time.Second)
		for {
			select {
			case _, ok := <-c.msgs:
				if !ok {
					return // ended
				}
			case <-deadline:
				t.Fatal("the stream did not end on CloseStreams")
			}
		}
	})
}

func TestListEventsHTTPFilters(t *testing.T) {
	t.Parallel()
	gw := setup(t, nil)
	ids := map[string]string{}
	for _, f := range []struct{ name, path, body string }{
		{"a", "/v1/events/auth/user_registered", `{"user":{"name":"sally","age":31},"tags":["x","y"],"plan":"pro"}`},
		{"b", "/v1/events/auth.admin/user_deleted", `{"user":{"name":"bob","age":17},"tags":["y"],"plan":null}`},
		{"c", "/v1/events/shop/user_registered", `{"user":{"name":"ann","age":"40"},"n":1.5e3}`},
		{"d", "/v1/events/authx/login", `{"user":{"name":"a_b%c"}}`},
	} {
		var res gateway.FireResult
		gw.do(t, "POST", f.path, f.body, nil, &res)
		ids[res.ID] = f.name
	}
	for _, tc := range []struct {
		query string
		want  string // the names of the events listed, newest first
	}{
		{"", "dcba"},
		{"api=auth", "a"},
		{"api=auth.*", "b"},
		{"api=auth*", "dba"},
		{"api=*", "dcba"},
		{"event=user_*", "cba"},
		{"api=*&event=*_registered", "ca"},
		{"event=user%5F*", "cba"}, // '_' is a name character, not a wildcard
		{"where=user.name=sally", "a"},
		{"where=user.name=%22sally%22", "a"},
		{"where=user.name=a_b%25c", "d"}, // LIKE characters are plain values
		{"where=user.name=a__%25c", ""},
		{"where=user.name!=sally", "dcb"},
		{"where=plan=null", "b"},
		{"where=plan!=null", "dca"},
		{"where=tags.0=y", "b"},
		{"where=tags=%5B%22y%22%5D", "b"}, // equality, not containment: ["x","y"] is not ["y"]
		{"where=user.age%3E=18", "a"},     // the string "40" is not a number
		{"where=user.age%3C18", "b"},
		{"where=user.age%3E17&where=user.age%3C=31", "a"},
		{"where=n%3E1000", "c"},
		{"where=n=1500", "c"}, // numbers are equal by value: 1.5e3 is 1500
		{"api=auth*&where=user.age%3E0", "ba"},
	} {
		var page eventPage
		resp := gw.do(t, "GET", "/v1/events?"+tc.query, "", nil, &page)
		got := ""
		for _, ev := range page.Events {
			got += ids[ev.ID]
		}
		if resp.StatusCode != 200 || got != tc.want {
			t.Errorf("GET /v1/events?%s: %d %q, want %q", tc.query, resp.StatusCode, got, tc.want)
		}
	}
}

// hostileWheres are where conditions a client may send; each is a 400 or
// a listing, never a 5xx.
var hostileWheres = []string{
	"", "=", "a", "a=", "=1", "a==1", "a=!1", "a!1", "a<>1", "a>", "a>x", "a>1e999999", "a>NaN", "a>Infinity", "a>0x10",
	"a>1.5", "a>-0", "a>=1e308", "a.=1", ".a=1", "a..b=1", "a b=1", "a'=1", "a\"=1", "a;drop table x=1", "a=' OR 1=1 --",
	"a=\x00", "a=\xff", "\xff=1", "a=" + strings.Repeat("x", 300), strings.Repeat("a.", 20) + "a=1",
	strings.Repeat("x", 100) + "=1", "a=[[[[1]]]]", "a=" + strings.Repeat("[", 70) + strings.Repeat("]", 70),
	"a={\"b\":1}", "a=1e400", "a.-1=1", "a.99999999999999999999=1", "a>=-1e-400", "a=\"\\ud800\"",
}

func TestListEventsHTTPHostileWhere(t *testing.T) {
	t.Parallel()
	gw := setup(t, nil)
	gw.do(t, "POST", "/v1/events/auth/user_registered", `{"a":[1,{"b":2}],"c":"x"}`, nil, nil)
	// JSON that params keeps and jsonb cannot hold: the conditions read
	// past it.
	for _, params := range []string{`{"a":"\u0000"}`, `{"a":"\ud800"}`} {
		if resp := gw.do(t, "POST", "/v1/events/auth/user_registered", params, nil, nil); resp.StatusCode != 202 {
			t.Fatalf("fire %s: %d", params, resp.StatusCode)
		}
	}
	var page eventPage
	if resp := gw.do(t, "GET", "/v1/events?where=c=x", "", nil, &page); resp.StatusCode != 200 || len(page.Events) != 1 {
		t.Fatalf("where past unreadable parameters: %d, %d events", resp.StatusCode, len(page.Events))
	}
	for _, w := range hostileWheres {
		for _, path := range []string{"/v1/events?where=", "/v1/events?api=auth&where=a%3E0&where="} {
			resp := gw.do(t, "GET", path+url.QueryEscape(w), "", nil, nil)
			if resp.StatusCode >= 500 || (resp.StatusCode != 200 && resp.StatusCode != 400) {
				t.Errorf("where %q: %d", w, resp.StatusCode)
			}
		}
	}
	many := "/v1/events?" + strings.Repeat("where=a%3D1&", gateway.MaxConditions+1)
	expectProblem(t, gw.do(t, "GET", many, "", nil, nil), 400, "invalid")
}
