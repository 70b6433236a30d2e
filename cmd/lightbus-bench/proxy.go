package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
)

// proxyCmd is `lightbus-bench proxy`: a round-robin reverse proxy in front
// of gateway replicas, to measure what each replica adds.
func proxyCmd(stderr io.Writer) *cobra.Command {
	var (
		listen string
		to     string
	)
	cmd := &cobra.Command{
		Use:   "proxy --listen ADDR --to URL,URL,...",
		Short: "A round-robin reverse proxy in front of gateway replicas (for measuring replicas)",
		Long: `proxy forwards every request to the next of the --to base URLs in turn
(round robin, one request at a time, no health checks) and streams responses
as they come (event streams work through it). It runs until interrupted.`,
		Example: `  lightbus-bench proxy --listen 127.0.0.1:18090 --to http://127.0.0.1:18081,http://127.0.0.1:18082`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			targets, err := parseTargets(to)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return fmt.Errorf("--listen: %w", err)
			}
			fmt.Fprintf(stderr, "proxy: listening on %s, round robin over %s\n", ln.Addr(), to)
			return serveProxy(cmd.Context(), ln, newRoundRobinProxy(targets, stderr))
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:18090", "the address to listen on")
	cmd.Flags().StringVar(&to, "to", "", "the replicas' base URLs, comma separated")
	return cmd
}

// parseTargets parses a comma-separated list of http(s) base URLs.
func parseTargets(s string) ([]*url.URL, error) {
	var out []*url.URL
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		u, err := url.Parse(part)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("--to %q: want http(s) base URLs separated by commas", s)
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, errors.New("--to: name at least one replica URL")
	}
	return out, nil
}

// newRoundRobinProxy returns a reverse proxy that sends each request to the
// next of targets in turn. Its transport keeps enough idle connections per
// replica for the tool's concurrency, so that a load test does not measure
// TCP handshakes; it flushes every write, so event streams pass through.
func newRoundRobinProxy(targets []*url.URL, errlog io.Writer) *httputil.ReverseProxy {
	var next atomic.Uint64
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns = 0 // no limit overall
	transport.MaxIdleConnsPerHost = 512
	transport.IdleConnTimeout = 90 * time.Second
	return &httputil.ReverseProxy{
		Director: func(r *http.Request) {
			t := targets[(next.Add(1)-1)%uint64(len(targets))]
			r.URL.Scheme = t.Scheme
			r.URL.Host = t.Host
			r.URL.Path, r.URL.RawPath = joinPath(t, r.URL)
			if _, ok := r.Header["User-Agent"]; !ok {
				// Do not let the transport add Go's own.
				r.Header.Set("User-Agent", "")
			}
		},
		Transport:     transport,
		FlushInterval: -1,
		ErrorLog:      log.New(errlog, "proxy: ", 0),
	}
}

// joinPath puts the request's path under the target's base path.
func joinPath(target, req *url.URL) (path, rawPath string) {
	base := strings.TrimSuffix(target.Path, "/")
	if base == "" {
		return req.Path, req.RawPath
	}
	if req.RawPath == "" {
		return base + req.Path, ""
	}
	return base + req.Path, strings.TrimSuffix(target.EscapedPath(), "/") + req.RawPath
}

// serveProxy serves h on ln until ctx ends, then shuts down within a few
// seconds.
func serveProxy(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return srv.Close()
	}
	return nil
}
