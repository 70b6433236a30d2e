package lightbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/lightbus-go/lightbus/internal/webhook"
)

// Worker is a registered worker process, as the gateway lists it.
type Worker struct {
	// ID is the worker's id.
	ID string `json:"id"`
	// Service is the service the worker belongs to.
	Service string `json:"service"`
	// BaseURL is where the gateway reaches the worker.
	BaseURL string `json:"base_url"`
	// APIs are the names of the APIs the worker provides.
	APIs []string `json:"apis"`
	// Listeners are the names of the listener groups the worker serves.
	Listeners []string `json:"listeners"`
	// RegisteredAt is when the registration was created.
	RegisteredAt time.Time `json:"registered_at"`
	// HeartbeatAt is the worker's latest registration or heartbeat.
	HeartbeatAt time.Time `json:"heartbeat_at"`
	// ExpiresAt is when the lease ends unless the worker heartbeats again.
	ExpiresAt time.Time `json:"expires_at"`
}

// Registration is the gateway's answer to a registration or heartbeat.
type Registration struct {
	// Worker is the registered worker.
	Worker Worker `json:"worker"`
	// Listeners are the listener groups the worker joined.
	Listeners []ListenerGrant `json:"listeners"`
	// RPCSecret is the worker's Standard Webhooks secret ("whsec_..."):
	// the gateway signs the RPC requests it sends the worker with it. A new
	// one comes with each registration of a new process; heartbeats keep it.
	RPCSecret string `json:"rpc_secret"`
	// HeartbeatIntervalMS is how often, in milliseconds, to register again.
	HeartbeatIntervalMS int64 `json:"heartbeat_interval_ms"`
	// SchemaConflicts lists the live workers (this one included) whose
	// declared schema for one of this worker's APIs differs from the API's
	// current schema version: the latest worker to start with a changed
	// schema wins, and the others show up here until they stop.
	SchemaConflicts []SchemaConflict `json:"schema_conflicts,omitempty"`
	// Tasks says, for each scheduled task declared, whether this worker
	// leads it (see [Bus.Every]).
	Tasks []TaskGrant `json:"tasks,omitempty"`
}

// ListenerGrant is a listener group the worker joined, with the secret
// deliveries to it are signed with.
type ListenerGrant struct {
	// Service is the group's service.
	Service string `json:"service"`
	// Name is the group's listener name.
	Name string `json:"name"`
	// Events are the group's subscriptions, "api.event" or "api.*".
	Events []string `json:"events"`
	// Secret is the group's Standard Webhooks signing secret, "whsec_...".
	Secret string `json:"secret"`
}

// apiDecl, listenerDecl and registrationBody are the wire form of
// PUT /v1/workers/{id}.
type apiDecl struct {
	Name   string      `json:"name"`
	Events []eventDecl `json:"events"`
	RPCs   []rpcDecl   `json:"rpcs"`
}

type listenerDecl struct {
	Name   string      `json:"name"`
	Events []string    `json:"events"`
	Path   string      `json:"path"`
	Policy *policyDecl `json:"policy,omitempty"`
	Since  string      `json:"since,omitempty"`
}

type registrationBody struct {
	InstanceID string         `json:"instance_id"`
	Service    string         `json:"service"`
	BaseURL    string         `json:"base_url"`
	LeaseTTLMS int64          `json:"lease_ttl_ms"`
	APIs       []apiDecl      `json:"apis"`
	Listeners  []listenerDecl `json:"listeners"`
	Tasks      []taskDecl     `json:"tasks,omitempty"`
}

// ListenerPath returns the path at which the worker serves the listener
// group name: /lightbus/events/{name}.
func ListenerPath(name string) string { return "/lightbus/events/" + name }

// OnStart adds a hook that [Bus.Run] and [Bus.RunRegistration] run before
// registering, in the order added; the place to call [Bus.Listen] and open
// what handlers need. An error stops the worker before it registers.
func (b *Bus) OnStart(fn func(ctx context.Context) error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onStart = append(b.onStart, fn)
}

// OnStop adds a hook that [Bus.Run] and [Bus.RunRegistration] run after
// deregistering, in reverse order of adding.
func (b *Bus) OnStop(fn func(ctx context.Context) error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.onStop = append(b.onStop, fn)
}

// Handler returns the worker's HTTP endpoints, for a service that serves them
// from its own server instead of [Bus.Run] (client and worker combined in one
// process). The routes are absolute (POST /lightbus/rpc/{api}/{method} and
// POST /lightbus/events/{listener}), so mount it at the root or under
// "POST /lightbus/", then keep the worker registered with [Bus.RunRegistration]:
//
//	mux.Handle("POST /lightbus/", bus.Handler())
//	go bus.RunRegistration(ctx, "http://orders.internal:8000")
func (b *Bus) Handler() http.Handler { return b.mux }

// Register registers the worker with the gateway once (PUT
// /v1/workers/{id}), declaring the APIs and listener groups set up so far,
// with baseURL as the address the gateway reaches the worker at, and keeps
// the signing secrets of its RPCs and listener groups. Sending it again (a
// heartbeat: the same process, so the same instance id) renews the lease
// and re-creates a registration the gateway lost; [Bus.Run] and
// [Bus.RunRegistration] do that on their own. Gateway answers are *Error,
// e.g. CodeConflict when another service owns one of the APIs.
func (b *Bus) Register(ctx context.Context, baseURL string) (*Registration, error) {
	if b.service == "" {
		return nil, errNoService
	}
	body, err := jsonBody(b.registrationBody(baseURL))
	if err != nil {
		return nil, err
	}
	var reg Registration
	sent := time.Now()
	if err := b.do(ctx, http.MethodPut, "/v1/workers/"+url.PathEscape(b.workerID), nil, body, nil, &reg); err != nil {
		return nil, fmt.Errorf("lightbus: register worker %s: %w", b.workerID, err)
	}
	b.applyTaskGrants(reg.Tasks, sent)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.setRPCKey(reg.RPCSecret)
	for _, g := range reg.Listeners {
		ls := b.listeners[g.Name]
		if ls == nil {
			continue
		}
		key, err := webhook.DecodeSecret(g.Secret)
		if err != nil {
			b.log.Error("lightbus: the gateway granted a bad signing secret", "listener", g.Name, "error", err)
			continue
		}
		ls.key = key
	}
	return &reg, nil
}

// Deregister takes the worker out of the gateway's routing (DELETE
// /v1/workers/{id}); deregistering an unknown worker succeeds.
func (b *Bus) Deregister(ctx context.Context) error {
	if err := b.do(ctx, http.MethodDelete, "/v1/workers/"+url.PathEscape(b.workerID), nil, nil, nil, nil); err != nil {
		return fmt.Errorf("lightbus: deregister worker %s: %w", b.workerID, err)
	}
	return nil
}

var errNoService = errors.New("lightbus: a worker needs a service name: use WithService or set " + EnvServiceName)

// registrationBody builds the PUT body from what is declared now.
func (b *Bus) registrationBody(baseURL string) registrationBody {
	b.mu.RLock()
	defer b.mu.RUnlock()
	body := registrationBody{
		InstanceID: b.instanceID,
		Service:    b.service,
		BaseURL:    baseURL,
		LeaseTTLMS: b.leaseTTL.Milliseconds(),
		APIs:       []apiDecl{},
		Listeners:  []listenerDecl{},
		Tasks:      b.taskDecls(),
	}
	for _, name := range slices.Sorted(maps.Keys(b.apis)) {
		if !b.runs(FeatureRPCs) {
			break
		}
		a := b.apis[name]
		d := apiDecl{Name: name, Events: []eventDecl{}, RPCs: []rpcDecl{}}
		for _, e := range slices.Sorted(maps.Keys(a.events)) {
			d.Events = append(d.Events, a.events[e])
		}
		for _, m := range slices.Sorted(maps.Keys(a.rpcs)) {
			d.RPCs = append(d.RPCs, a.rpcs[m])
		}
		body.APIs = append(body.APIs, d)
	}
	for _, name := range slices.Sorted(maps.Keys(b.listeners)) {
		if !b.runs(FeatureEvents) {
			break
		}
		body.Listeners = append(body.Listeners, listenerDecl{
			Name:   name,
			Events: slices.Sorted(maps.Keys(b.listeners[name].handlers)),
			Path:   ListenerPath(name),
			Policy: b.listeners[name].policy,
			Since:  b.listeners[name].since,
		})
	}
	return body
}

// RunRegistration keeps a worker whose endpoints are served elsewhere (see
// [Bus.Handler]) registered at baseURL until ctx is done: it runs the OnStart
// hooks, registers (retrying with backoff while the gateway is unreachable),
// heartbeats at the interval the gateway answers, then deregisters and runs
// the OnStop hooks. Cancel ctx after your server has stopped serving, so that
// in-flight handlers finish before the worker leaves. It returns nil after a
// clean stop, or the error of a hook or of a registration the gateway refused
// (e.g. CodeConflict).
func (b *Bus) RunRegistration(ctx context.Context, baseURL string) error {
	if b.service == "" {
		return errNoService
	}
	if err := checkBaseURL(baseURL); err != nil {
		return fmt.Errorf("lightbus: worker URL: %w", err)
	}
	if err := b.runStart(ctx); err != nil {
		return err
	}
	stopTasks := b.startTasks(ctx)
	background := b.startBackground(ctx)
	regCtx, stopRegistering := context.WithCancel(ctx)
	registered := make(chan error, 1)
	go func() { registered <- b.keepRegistered(regCtx, baseURL) }()
	var err error
	select {
	case err = <-registered:
	case err = <-background.failed:
		stopRegistering()
		<-registered
	}
	stopRegistering()
	stopTasks()
	b.stopBackground(background, b.stopTimeout(ctx))
	b.deregister(ctx)
	return errors.Join(err, b.runStop(ctx))
}

// Run is the worker process: it listens on the worker address, runs the
// OnStart hooks, serves the worker's endpoints, registers with the gateway
// once serving (retrying while the gateway is unreachable) and heartbeats.
// When ctx is done it stops taking requests, waits for in-flight handlers
// (bounded by [WithShutdownTimeout]), deregisters, and runs the OnStop hooks.
// Background tasks ([Bus.Go]) start once serving and are cancelled when
// the worker stops. It returns nil after a clean stop; an error when it
// cannot listen, a hook fails, a background task fails, or the gateway
// refuses the registration (e.g. CodeConflict).
func (b *Bus) Run(ctx context.Context) error {
	if b.service == "" {
		return errNoService
	}
	ln, err := net.Listen("tcp", b.workerAddr)
	if err != nil {
		return fmt.Errorf("lightbus: worker: %w", err)
	}
	baseURL := b.workerURL
	if baseURL == "" {
		baseURL = advertisedURL(ln.Addr())
	}
	if err := b.runStart(ctx); err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{
		Handler:           b.mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	b.log.Info("lightbus: worker serving", "service", b.service, "worker_id", b.workerID, "addr", ln.Addr().String(), "base_url", baseURL)

	background := b.startBackground(ctx)
	regCtx, stopRegistering := context.WithCancel(ctx)
	registered := make(chan error, 1)
	go func() { registered <- b.keepRegistered(regCtx, baseURL) }()
	stopTasks := b.startTasks(ctx)
	registering := true
	select {
	case <-ctx.Done():
	case err = <-served:
		err = fmt.Errorf("lightbus: worker: %w", err)
	case err = <-registered:
		registering = false
	case err = <-background.failed:
	}
	stopTasks()
	stopRegistering()
	if registering {
		<-registered
	}

	if cause := context.Cause(ctx); errors.Is(cause, errParentGone) {
		b.log.Warn("lightbus: worker stopping: lightbus run exited", "worker_id", b.workerID)
	} else {
		b.log.Info("lightbus: worker stopping", "worker_id", b.workerID)
	}
	background.cancel()
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.stopTimeout(ctx))
	if serr := srv.Shutdown(shutdownCtx); serr != nil {
		b.log.Warn("lightbus: in-flight handlers did not finish in time", "error", serr)
		srv.Close()
	}
	cancel()
	b.stopBackground(background, b.stopTimeout(ctx))
	b.deregister(ctx)
	return errors.Join(err, b.runStop(ctx))
}

// keepRegistered registers and heartbeats until ctx is done, retrying
// failures with backoff. It returns nil when ctx is done, or the error of a
// first registration the gateway refused with a 4xx answer.
func (b *Bus) keepRegistered(ctx context.Context, baseURL string) error {
	interval := b.leaseTTL / 3
	var last *Registration
	failures := 0
	for {
		wait := interval
		reg, err := b.Register(ctx, baseURL)
		switch {
		case err == nil:
			if reg.HeartbeatIntervalMS > 0 {
				interval = time.Duration(reg.HeartbeatIntervalMS) * time.Millisecond
				wait = interval
			}
			switch {
			case last == nil:
				b.log.Info("lightbus: worker registered", "worker_id", b.workerID, "base_url", baseURL, "apis", reg.Worker.APIs, "listeners", reg.Worker.Listeners)
			case !reg.Worker.RegisteredAt.Equal(last.Worker.RegisteredAt):
				b.log.Info("lightbus: worker registered again: the gateway had lost the registration", "worker_id", b.workerID)
			case failures > 0:
				b.log.Info("lightbus: worker heartbeat restored", "worker_id", b.workerID)
			default:
				b.log.Debug("lightbus: worker heartbeat", "worker_id", b.workerID, "expires_at", reg.Worker.ExpiresAt)
			}
			if len(reg.SchemaConflicts) > 0 && (last == nil || !slices.Equal(reg.SchemaConflicts, last.SchemaConflicts)) {
				for _, c := range reg.SchemaConflicts {
					b.log.Warn("lightbus: schema_conflict: a live worker declares another schema than the API's current version",
						"api", c.API, "conflicting_worker_id", c.WorkerID, "service", c.Service, "worker_id", b.workerID)
				}
			}
			last, failures = reg, 0
		case ctx.Err() != nil:
			return nil
		case last == nil && refused(err):
			return err
		default:
			failures++
			wait = min(b.backoff(failures), interval)
			b.log.Warn("lightbus: worker registration failed, retrying", "worker_id", b.workerID, "attempt", failures, "retry_in", wait, "error", err)
		}
		if !sleep(ctx, wait) {
			return nil
		}
	}
}

// refused reports whether err is a 4xx answer: sending the same request
// again will not help.
func refused(err error) bool {
	var lerr *Error
	return errors.As(err, &lerr) && lerr.Status >= 400 && lerr.Status < 500 && lerr.Status != http.StatusTooManyRequests
}

// deregister deregisters, bounded by the shutdown timeout, and logs failure.
func (b *Bus) deregister(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.stopTimeout(ctx))
	defer cancel()
	if err := b.Deregister(ctx); err != nil {
		b.log.Warn("lightbus: could not deregister; the lease will expire", "worker_id", b.workerID, "error", err)
		return
	}
	b.log.Info("lightbus: worker deregistered", "worker_id", b.workerID)
}

// runStart runs the OnStart hooks in order.
func (b *Bus) runStart(ctx context.Context) error {
	b.mu.RLock()
	hooks := slices.Clone(b.onStart)
	b.mu.RUnlock()
	for _, fn := range hooks {
		if err := fn(ctx); err != nil {
			return fmt.Errorf("lightbus: on start: %w", err)
		}
	}
	return nil
}

// runStop runs the OnStop hooks in reverse order, each bounded by the
// shutdown timeout, and joins their errors.
func (b *Bus) runStop(ctx context.Context) error {
	b.mu.RLock()
	hooks := slices.Clone(b.onStop)
	b.mu.RUnlock()
	var errs []error
	for _, fn := range slices.Backward(hooks) {
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.stopTimeout(ctx))
		if err := fn(hctx); err != nil {
			errs = append(errs, fmt.Errorf("lightbus: on stop: %w", err))
		}
		cancel()
	}
	return errors.Join(errs...)
}

// advertisedURL is the base URL for a listening address; an unspecified
// host (0.0.0.0, ::) is advertised as loopback.
func advertisedURL(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func jsonBody(v any) ([]byte, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("lightbus: encoding: %w", err)
	}
	return data, nil
}
