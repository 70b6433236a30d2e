package main

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// proxyURLs returns the base URLs of the given test servers, each with
// base appended.
func proxyURLs(t *testing.T, base string, servers ...*httptest.Server) []*url.URL {
	t.Helper()
	var out []*url.URL
	for _, s := range servers {
		u, err := url.Parse(s.URL + base)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, u)
	}
	return out
}

func TestProxyRoundRobin(t *testing.T) {
	t.Parallel()
	backend := func(name string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Backend", name)
			_, _ = io.WriteString(w, name+" "+r.Method+" "+r.URL.RequestURI()+" "+string(body))
		}))
		t.Cleanup(s.Close)
		return s
	}
	a, b := backend("a"), backend("b")
	front := httptest.NewServer(newRoundRobinProxy(proxyURLs(t, "", a, b), io.Discard))
	t.Cleanup(front.Close)

	var got []string
	for i := range 6 {
		resp, err := http.Post(front.URL+"/v1/events/x?n=1", "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := resp.Header.Get("X-Backend") + " POST /v1/events/x?n=1 {}"; string(body) != want {
			t.Errorf("request %d: body %q, want %q", i, body, want)
		}
		got = append(got, resp.Header.Get("X-Backend"))
	}
	if want := "a b a b a b"; strings.Join(got, " ") != want {
		t.Errorf("backends %q, want %q", strings.Join(got, " "), want)
	}
}

func TestProxyBasePath(t *testing.T) {
	t.Parallel()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.URL.Path)
	}))
	t.Cleanup(s.Close)
	front := httptest.NewServer(newRoundRobinProxy(proxyURLs(t, "/gw/", s), io.Discard))
	t.Cleanup(front.Close)
	resp, err := http.Get(front.URL + "/v1/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "/gw/v1/healthz" {
		t.Errorf("path %q, want /gw/v1/healthz", body)
	}
}

// A streamed response reaches the client line by line, before the backend
// has finished it (as an event stream must), whatever its content type.
// (httputil flushes responses of unknown length at once even without
// FlushInterval -1; this guards the behaviour, not the setting.)
func TestProxyStreams(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		_, _ = io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		_, _ = io.WriteString(w, "second\n")
	}))
	t.Cleanup(s.Close)
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	front := httptest.NewServer(newRoundRobinProxy(proxyURLs(t, "", s), io.Discard))
	t.Cleanup(front.Close)

	resp, err := http.Get(front.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	// Blocks (and the test times out) if the proxy buffers the first line.
	line, err := r.ReadString('\n')
	if err != nil || line != "first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	close(release)
	rest, _ := io.ReadAll(r)
	if !bytes.Equal(rest, []byte("second\n")) {
		t.Errorf("rest %q, want second", rest)
	}
}

func TestProxyOptionErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"proxy"}, "at least one"},
		{[]string{"proxy", "--to", "ftp://x"}, "--to"},
		{[]string{"proxy", "--to", "127.0.0.1:1"}, "--to"},
		{[]string{"proxy", "--to", "http://127.0.0.1:1", "--listen", "nonsense"}, "--listen"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(t.Context(), tc.args, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error mentioning %q", tc.args, err, tc.want)
		}
	}
}
