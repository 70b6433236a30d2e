package lightbus

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/propagation"
)

// Bus is a service's connection to the bus: the client that fires events and
// calls RPCs through the gateway, and the worker runtime that serves the
// service's RPCs and listeners. Create one per service, in its bus package,
// and share it: a Bus is safe for concurrent use.
type Bus struct {
	gateway         string   // base URL without trailing slash
	authorization   []string // the Authorization header's value; nil without a token
	hc              *http.Client
	log             *slog.Logger
	service         string
	callTimeout     time.Duration
	workerAddr      string
	workerURL       string
	workerID        string
	leaseTTL        time.Duration
	shutdownTimeout time.Duration
	validate        bool
	fireAttempts    int
	retryBase       time.Duration
	retryMax        time.Duration
	propagator      propagation.TextMapPropagator // nil: see [Bus.traceContext]
	features        map[string]bool               // the features run (FeatureRPCs, ...); nil: all
	fireMW          []FireMiddleware
	callMW          []CallMiddleware
	rpcMW           []RPCMiddleware
	listenerMW      []ListenerMiddleware

	slots chan struct{} // one token per running handler
	mux   *http.ServeMux
	// instanceID names this process to the gateway: a PUT with a new
	// instance is a registration, which gets a new RPC secret.
	instanceID string

	mu         sync.RWMutex
	apis       map[string]*apiState    // by API name
	rpcs       map[string]HandlerFunc  // by "api.method"
	listeners  map[string]*listenerSet // by listener name
	onStart    []func(context.Context) error
	onStop     []func(context.Context) error
	tasks      map[string]*task // scheduled tasks, by name (task.go)
	background []*bgTask        // background tasks (Bus.Go), in the order added
	runner     *taskRunner      // the running worker's tasks; nil when not running
	// rpcKey verifies the gateway's RPC requests; from the latest
	// registration answer. rpcKeyReady is closed when the first arrives.
	rpcKey      []byte
	rpcKeyReady chan struct{}
}

// apiState is what this worker declares about one API.
type apiState struct {
	events map[string]eventDecl
	rpcs   map[string]rpcDecl
}

// Create returns a Bus configured from the environment ($LIGHTBUS_URL,
// $LIGHTBUS_TOKEN, $LIGHTBUS_SERVICE_NAME, $LIGHTBUS_WORKER_ADDR,
// $LIGHTBUS_WORKER_URL, $LIGHTBUS_WORKER_ID) and opts, which take
// precedence. It makes no request:
// the gateway need not be up yet. It fails only on a bad setting.
func Create(opts ...Option) (*Bus, error) {
	c := config{
		url:             os.Getenv(EnvURL),
		token:           os.Getenv(EnvToken),
		service:         os.Getenv(EnvServiceName),
		workerAddr:      os.Getenv(EnvWorkerAddr),
		workerURL:       os.Getenv(EnvWorkerURL),
		workerID:        os.Getenv(EnvWorkerID),
		leaseTTL:        DefaultLeaseTTL,
		maxConcurrency:  DefaultMaxConcurrency,
		shutdownTimeout: DefaultShutdownTimeout,
		fireAttempts:    4,
		retryBase:       200 * time.Millisecond,
		retryMax:        5 * time.Second,
	}
	for _, opt := range opts {
		opt(&c)
	}
	if c.url == "" {
		c.url = DefaultURL
	}
	if c.workerAddr == "" {
		c.workerAddr = DefaultWorkerAddr
	}
	if c.httpClient == nil {
		c.httpClient = &http.Client{}
	}
	if c.logger == nil {
		c.logger = slog.Default()
	}
	if err := checkBaseURL(c.url); err != nil {
		return nil, fmt.Errorf("lightbus: gateway URL: %w", err)
	}
	if c.workerURL != "" {
		if err := checkBaseURL(c.workerURL); err != nil {
			return nil, fmt.Errorf("lightbus: worker URL: %w", err)
		}
	}
	if strings.ContainsAny(c.token, " \t\r\n") {
		return nil, errors.New("lightbus: the token must not contain spaces or line breaks")
	}
	if c.service != "" && !isAPIName(c.service) {
		return nil, fmt.Errorf("lightbus: invalid service name %q: want identifiers joined by dots", c.service)
	}
	if c.workerID == "" {
		c.workerID = defaultWorkerID(c.service)
	} else if id, err := ProcessName(c.workerID); err != nil {
		return nil, fmt.Errorf("lightbus: invalid worker id: %w", err)
	} else {
		c.workerID = id
	}
	if c.leaseTTL < 500*time.Millisecond || c.leaseTTL > 10*time.Minute {
		return nil, fmt.Errorf("lightbus: lease TTL %s out of range: want 500ms to 10m", c.leaseTTL)
	}
	if c.maxConcurrency < 1 {
		return nil, fmt.Errorf("lightbus: max concurrency %d: want at least 1", c.maxConcurrency)
	}
	if c.callTimeout < 0 || c.shutdownTimeout <= 0 {
		return nil, errors.New("lightbus: timeouts must be positive")
	}
	b := &Bus{
		gateway:         strings.TrimRight(c.url, "/"),
		authorization:   bearer(c.token),
		hc:              c.httpClient,
		log:             c.logger,
		service:         c.service,
		callTimeout:     c.callTimeout,
		workerAddr:      c.workerAddr,
		workerURL:       strings.TrimRight(c.workerURL, "/"),
		workerID:        c.workerID,
		propagator:      c.propagator,
		fireMW:          c.fireMW,
		callMW:          c.callMW,
		rpcMW:           c.rpcMW,
		listenerMW:      c.listenerMW,
		leaseTTL:        c.leaseTTL,
		shutdownTimeout: c.shutdownTimeout,
		validate:        !c.noValidation,
		fireAttempts:    max(1, c.fireAttempts),
		retryBase:       c.retryBase,
		retryMax:        c.retryMax,
		slots:           make(chan struct{}, c.maxConcurrency),
		apis:            map[string]*apiState{},
		rpcs:            map[string]HandlerFunc{},
		listeners:       map[string]*listenerSet{},
		instanceID:      randomHex(16),
		rpcKeyReady:     make(chan struct{}),
	}
	b.mux = http.NewServeMux()
	b.mux.HandleFunc("POST /lightbus/rpc/{api}/{method}", b.serveRPC)
	b.mux.HandleFunc("POST /lightbus/events/{listener}", b.serveDelivery)
	return b, nil
}

// bearer returns the Authorization header's value for token, nil for none.
func bearer(token string) []string {
	if token == "" {
		return nil
	}
	return []string{"Bearer " + token}
}

// MustCreate is like [Create] but panics on a bad setting; it suits the
// package-level variable of a bus package:
//
//	var Bus = lightbus.MustCreate(lightbus.WithService("auth"))
func MustCreate(opts ...Option) *Bus {
	b, err := Create(opts...)
	if err != nil {
		panic(err)
	}
	return b
}

// Service returns the name of the service this Bus belongs to ("" if none).
func (b *Bus) Service() string { return b.service }

// WorkerID returns the id the worker registers under.
func (b *Bus) WorkerID() string { return b.workerID }

// Logger returns the Bus's logger, for handlers that log alongside it.
func (b *Bus) Logger() *slog.Logger { return b.log }

// URL returns the gateway's base URL.
func (b *Bus) URL() string { return b.gateway }

func checkBaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: want an absolute http or https URL without query", s)
	}
	return nil
}

// defaultWorkerID returns service-hostname-pid-random, reduced to the
// characters a worker id may hold.
func defaultWorkerID(service string) string {
	host, _ := os.Hostname()
	if service == "" {
		service = "worker"
	}
	id := fmt.Sprintf("%s-%s-%d-%s", service, host, os.Getpid(), randomHex(4))
	clean := []byte(id)
	for i, c := range clean {
		if !isWorkerIDByte(c) {
			clean[i] = '-'
		}
	}
	if len(clean) > 128 {
		clean = append(clean[:119:119], clean[len(clean)-9:]...)
	}
	return string(clean)
}

func randomHex(n int) string {
	p := make([]byte, n)
	_, _ = rand.Read(p) // crypto/rand.Read never fails
	return hex.EncodeToString(p)
}

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var p [16]byte
	_, _ = rand.Read(p[:])
	p[6] = p[6]&0x0f | 0x40
	p[8] = p[8]&0x3f | 0x80
	h := hex.EncodeToString(p[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// maxResponseBytes bounds what is read of any answer.
const maxResponseBytes = 64 << 20

// errBadResponse marks a 2xx answer that does not decode: retrying will not
// help.
var errBadResponse = errors.New("unexpected response from the gateway")

// do sends one request to the gateway. A 2xx answer is decoded into out
// (unless out is nil); any other answer is returned as an *Error; a failure
// to send or read as a *TransportError (or the context's error).
func (b *Bus) do(ctx context.Context, method, path string, query url.Values, body []byte, header http.Header, out any) error {
	u := b.gateway + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json, application/problem+json")
	req.Header.Set("User-Agent", "lightbus-go")
	if b.authorization != nil {
		req.Header["Authorization"] = b.authorization
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return transportError(method, path, err)
	}
	defer resp.Body.Close()
	data, err := readLimited(resp)
	if errors.Is(err, errBadResponse) {
		return fmt.Errorf("reading the answer to %s %s: %w", method, path, err)
	} else if err != nil {
		return transportError(method, path, fmt.Errorf("reading the answer: %w", err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return problemFromResponse(resp, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%w: %s %s answered %d with %s: %v", errBadResponse, method, path, resp.StatusCode, snippet(data), err)
	}
	return nil
}

func readLimited(resp *http.Response) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxResponseBytes {
		return nil, fmt.Errorf("%w: answer over %d bytes", errBadResponse, maxResponseBytes)
	}
	return data, nil
}

// problemDoc is the wire form of a problem document.
type problemDoc struct {
	Type      string      `json:"type"`
	Title     string      `json:"title"`
	Status    int         `json:"status"`
	Detail    string      `json:"detail,omitempty"`
	Code      string      `json:"code"`
	ErrorType string      `json:"error_type,omitempty"`
	Message   string      `json:"message,omitempty"`
	Errors    []Violation `json:"errors,omitempty"`
}

// problemFromResponse turns a non-2xx answer into an *Error.
func problemFromResponse(resp *http.Response, data []byte) *Error {
	e := &Error{Status: resp.StatusCode}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if secs, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && secs >= 0 {
			e.retryAfter = time.Duration(secs) * time.Second
		}
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	var p problemDoc
	if (ct == "application/problem+json" || ct == "application/json") && json.Unmarshal(data, &p) == nil {
		if p.Code == "" {
			p.Code = strings.TrimPrefix(p.Type, problemTypePrefix)
			if p.Code == p.Type {
				p.Code = ""
			}
		}
		if p.Code != "" || ct == "application/problem+json" {
			e.Code, e.Title, e.Detail = p.Code, p.Title, p.Detail
			e.ErrorType, e.Message, e.Violations = p.ErrorType, p.Message, p.Errors
			return e
		}
	}
	e.Title = http.StatusText(resp.StatusCode)
	if ct == "" {
		ct = "no content type"
	}
	e.Detail = fmt.Sprintf("%s answer that is not a problem document (%s): %s", e.Title, ct, snippet(data))
	return e
}

// snippet quotes the start of a body for an error message.
func snippet(data []byte) string {
	const n = 200
	s := strings.TrimSpace(string(data))
	if len(s) > n {
		s = s[:n] + "..."
	}
	return strconv.Quote(s)
}
