package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/lightbus-go/lightbus/internal/webhook"
)

// Lease bounds for worker registrations.
const (
	MinLeaseTTL     = 500 * time.Millisecond
	MaxLeaseTTL     = 10 * time.Minute
	DefaultLeaseTTL = 15 * time.Second
)

// Bounds on what one registration may declare, so that registering stays
// one short transaction.
const (
	// MaxBaseURLLen is the longest base_url, and MaxListenerPathLen the
	// longest listener path, in bytes.
	MaxBaseURLLen      = 2048
	MaxListenerPathLen = 2048
	// MaxRegistrationAPIs is the most APIs one worker may provide.
	MaxRegistrationAPIs = 100
	// MaxAPIMembers is the most events, and the most RPCs, one API may
	// declare (in a registration or a schema document).
	MaxAPIMembers = 1000
	// MaxRegistrationListeners is the most listener groups one worker may
	// serve, and MaxListenerEvents the most events one group may subscribe
	// to.
	MaxRegistrationListeners = 100
	MaxListenerEvents        = 100
	// MaxRPCTimeout is the longest timeout_ms an RPC may declare; the
	// gateway caps every call at its configured maximum anyway.
	MaxRPCTimeout = 24 * time.Hour
)

// Registration is what a worker declares when it registers or heartbeats.
type Registration struct {
	WorkerID   string                `json:"-"`
	Service    string                `json:"service"`
	BaseURL    string                `json:"base_url"`
	LeaseTTLMS int                   `json:"lease_ttl_ms"`
	APIs       []APIDeclaration      `json:"apis"`
	Listeners  []ListenerDeclaration `json:"listeners"`
	// Tasks are the scheduled tasks the worker runs once per service: the
	// answer says which of them it leads.
	Tasks []TaskDeclaration `json:"tasks,omitempty"`
	// InstanceID identifies the worker process: a random id it picks when
	// it starts and sends on every PUT. A PUT whose instance differs from
	// the stored one (or that creates the worker) is a registration and
	// rotates the worker's RPC secret; one with the stored instance, or
	// with none, is a heartbeat.
	InstanceID string `json:"instance_id,omitempty"`
}

// APIDeclaration is an API a worker provides.
type APIDeclaration struct {
	Name   string             `json:"name"`
	Events []EventDeclaration `json:"events"`
	RPCs   []RPCDeclaration   `json:"rpcs"`
}

// EventDeclaration is an event an API declares, with the JSON Schema of its
// parameters when the worker knows it.
type EventDeclaration struct {
	Name         string          `json:"name"`
	ParamsSchema json.RawMessage `json:"params_schema,omitempty"`
}

// RPCDeclaration is a procedure an API declares, with the JSON Schemas of
// its parameters and result when the worker knows them. TimeoutMS, when
// positive, is the default deadline for calls to it.
type RPCDeclaration struct {
	Name         string          `json:"name"`
	ParamsSchema json.RawMessage `json:"params_schema,omitempty"`
	ResultSchema json.RawMessage `json:"result_schema,omitempty"`
	TimeoutMS    int             `json:"timeout_ms,omitempty"`
}

// ListenerDeclaration is a listener group a worker serves: the group is
// (the worker's service, Name), subscribed to Events ("api.event" or
// "api.*"); deliveries go to the worker's base URL followed by Path. Policy,
// when set, is the group's delivery policy; the latest registration's policy
// wins, and a registration without one puts the group on the defaults.
type ListenerDeclaration struct {
	Name   string          `json:"name"`
	Events []string        `json:"events"`
	Path   string          `json:"path"`
	Policy *DeliveryPolicy `json:"policy,omitempty"`
	// Since is where a new group starts: "now" (default), "earliest", an
	// RFC 3339 time or an event id. It is ignored for an existing group.
	Since string `json:"since,omitempty"`
}

// LeaseTTL returns the registration's lease, defaulted.
func (r *Registration) LeaseTTL() time.Duration {
	if r.LeaseTTLMS == 0 {
		return DefaultLeaseTTL
	}
	return time.Duration(r.LeaseTTLMS) * time.Millisecond
}

// Validate checks every name, the base URL, paths and the lease.
func (r *Registration) Validate() error {
	if err := ValidateWorkerID(r.WorkerID); err != nil {
		return err
	}
	if r.InstanceID != "" && !workerIDRE.MatchString(r.InstanceID) {
		return Errorf(EInvalid, "invalid instance_id %q: want 1 to 128 of A-Z a-z 0-9 . _ -", r.InstanceID)
	}
	if err := ValidateAPIName(r.Service); err != nil {
		return Errorf(EInvalid, "invalid service name %q: want identifiers joined by dots", r.Service)
	}
	if len(r.BaseURL) > MaxBaseURLLen {
		return Errorf(EInvalid, "base_url is longer than %d bytes", MaxBaseURLLen)
	}
	u, err := url.Parse(r.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return Errorf(EInvalid, "invalid base_url %q: want an absolute http or https URL without query", r.BaseURL)
	}
	// Bounded in milliseconds before LeaseTTL converts: a huge value would
	// overflow the conversion into range.
	if ms := r.LeaseTTLMS; ms != 0 && (ms < int(MinLeaseTTL.Milliseconds()) || ms > int(MaxLeaseTTL.Milliseconds())) {
		return Errorf(EInvalid, "lease_ttl_ms %d out of range: want %d to %d", r.LeaseTTLMS, MinLeaseTTL.Milliseconds(), MaxLeaseTTL.Milliseconds())
	}
	if len(r.APIs) > MaxRegistrationAPIs {
		return Errorf(EInvalid, "the registration declares %d APIs: at most %d", len(r.APIs), MaxRegistrationAPIs)
	}
	if len(r.Listeners) > MaxRegistrationListeners {
		return Errorf(EInvalid, "the registration declares %d listeners: at most %d", len(r.Listeners), MaxRegistrationListeners)
	}
	seenAPI := map[string]bool{}
	for _, a := range r.APIs {
		if err := ValidateAPIName(a.Name); err != nil {
			return err
		}
		if seenAPI[a.Name] {
			return Errorf(EInvalid, "API %q declared twice", a.Name)
		}
		seenAPI[a.Name] = true
		if len(a.Events) > MaxAPIMembers || len(a.RPCs) > MaxAPIMembers {
			return Errorf(EInvalid, "API %q declares %d events and %d RPCs: at most %d of each", a.Name, len(a.Events), len(a.RPCs), MaxAPIMembers)
		}
		for _, e := range a.Events {
			if err := ValidateIdent("event", e.Name); err != nil {
				return err
			}
		}
		for _, m := range a.RPCs {
			if err := ValidateIdent("rpc", m.Name); err != nil {
				return err
			}
			if m.TimeoutMS < 0 || m.TimeoutMS > int(MaxRPCTimeout.Milliseconds()) {
				return Errorf(EInvalid, "rpc %s.%s: timeout_ms %d: want 0 to %d", a.Name, m.Name, m.TimeoutMS, MaxRPCTimeout.Milliseconds())
			}
		}
		if d := a.SchemaDocument(); d != nil {
			if err := d.Check(); err != nil {
				return err
			}
		}
	}
	if err := r.validateTasks(); err != nil {
		return err
	}
	seenListener := map[string]bool{}
	for _, l := range r.Listeners {
		if err := ValidateIdent("listener", l.Name); err != nil {
			return err
		}
		if seenListener[l.Name] {
			return Errorf(EInvalid, "listener %q declared twice", l.Name)
		}
		seenListener[l.Name] = true
		if len(l.Events) == 0 || len(l.Events) > MaxListenerEvents {
			return Errorf(EInvalid, "listener %q subscribes to %d events: want 1 to %d", l.Name, len(l.Events), MaxListenerEvents)
		}
		for _, e := range l.Events {
			if _, _, err := SplitQualified("event", e); err != nil {
				return err
			}
		}
		if len(l.Path) > MaxListenerPathLen {
			return Errorf(EInvalid, "listener %q: path is longer than %d bytes", l.Name, MaxListenerPathLen)
		}
		// Deliveries go to base_url followed by the path: together they
		// must make a URL (no control characters, valid escapes).
		if _, err := url.Parse(r.BaseURL + l.Path); err != nil || !strings.HasPrefix(l.Path, "/") || strings.ContainsAny(l.Path, "?#") {
			return Errorf(EInvalid, "listener %q: path %q must start with /, have no query and make a URL after base_url", l.Name, l.Path)
		}
		if _, err := ParseSince(l.Since); err != nil {
			return Errorf(EInvalid, "listener %q: %s", l.Name, ErrorMessage(err))
		}
		if err := l.Policy.Validate(); err != nil {
			err.Message = "listener " + strconv.Quote(l.Name) + ": " + err.Message
			return err
		}
	}
	return nil
}

// Worker is a registered worker process as listed by the gateway.
type Worker struct {
	ID           string    `json:"id"`
	Service      string    `json:"service"`
	BaseURL      string    `json:"base_url"`
	APIs         []string  `json:"apis"`
	Listeners    []string  `json:"listeners"`
	RegisteredAt time.Time `json:"registered_at"`
	HeartbeatAt  time.Time `json:"heartbeat_at"`
	ExpiresAt    time.Time `json:"expires_at"`
}

// ListenerGrant is a listener group as granted at registration, with the
// secret the worker uses to verify delivery signatures.
type ListenerGrant struct {
	Service string   `json:"service"`
	Name    string   `json:"name"`
	Events  []string `json:"events"`
	Secret  string   `json:"secret"`
	// Policy is the group's stored policy; zero fields are gateway defaults
	// (max_attempts is always resolved).
	Policy DeliveryPolicy `json:"policy"`
}

// RegistrationResult answers a registration. SchemaConflicts lists the live
// workers (this one included) whose declared schema for one of the
// registered APIs differs from the API's current version.
type RegistrationResult struct {
	Worker    Worker          `json:"worker"`
	Listeners []ListenerGrant `json:"listeners"`
	// RPCSecret is the worker's current Standard Webhooks secret: the
	// gateway signs the RPC requests it sends the worker with it (and,
	// for a while after a rotation, with the previous one too).
	RPCSecret           string           `json:"rpc_secret"`
	HeartbeatIntervalMS int64            `json:"heartbeat_interval_ms"`
	SchemaConflicts     []SchemaConflict `json:"schema_conflicts,omitempty"`
	// Tasks answers each declared task: whether this worker leads it.
	Tasks []TaskGrant `json:"tasks,omitempty"`
	// Published names the APIs whose schema got a new version.
	Published []string `json:"-"`
}

// WorkerStore keeps worker registrations and listener groups.
type WorkerStore interface {
	// RegisterWorker creates or renews the worker's registration and lease,
	// records the APIs it provides and the listener groups it serves
	// (creating missing groups with newSecret and maxAttempts), and returns
	// the stored worker and its groups. For each API whose declaration
	// carries schemas (APIDeclaration.SchemaDocument), it records the
	// worker's schema and, when the worker's declaration changed since its
	// previous registration (or it is new), publishes it as the API's next
	// schema version unless the current one has the same hash; the result
	// lists the live workers that disagree with the current versions.
	// The first service to register an API owns it: returns an EConflict
	// error when an API is owned by another service, whether or not a
	// worker of that service is live. The worker's RPC secret is issued
	// with newSecret when the worker is created, and replaced (the
	// previous one kept for an overlap) when reg.InstanceID differs from
	// the stored instance; a heartbeat keeps it.
	//
	// The registration also records the scheduled tasks the worker
	// declares and grants it each one that has no live leader: a leader
	// is live while its worker's lease runs, it belongs to the service and
	// it still declares the task. One leader per (service, task), decided
	// in the database; res.Tasks says which tasks this worker leads.
	RegisterWorker(ctx context.Context, reg *Registration, newSecret func() string, maxAttempts int) (*RegistrationResult, error)

	// ReleaseAPI removes an API's owner, so that any service can register
	// it. Errors: ENotFound when the API has no owner, EConflict while a
	// live worker of the owner provides it.
	ReleaseAPI(ctx context.Context, api string) error

	// DeregisterWorker removes a worker and releases the tasks it leads;
	// removing an unknown worker is not an error.
	DeregisterWorker(ctx context.Context, id string) error

	// ListWorkers lists live workers.
	ListWorkers(ctx context.Context) ([]Worker, error)
}

// Register creates or renews a worker's registration and lease, after
// checking it (Registration.Validate) and compiling the schemas it
// declares, so that a broken schema is refused (EInvalid) instead of
// becoming an API's current version. The answer tells the worker to
// heartbeat every third of its lease. Needs serve on every API it
// provides and listen on the API of every event its listener groups
// subscribe to (authorizeRegistration). Errors: EInvalid, EUnauthorized,
// EForbidden (a missing scope, or a base URL the worker network policy
// refuses), EConflict (an API owned by another service), EUnavailable.
func (s *Service) Register(ctx context.Context, reg *Registration) (*RegistrationResult, error) {
	if err := reg.Validate(); err != nil {
		return nil, err
	}
	if err := s.authorizeRegistration(ctx, reg); err != nil {
		return nil, err
	}
	if err := s.cfg.WorkerNetworks.CheckBaseURL(reg.BaseURL); err != nil {
		return nil, err
	}
	if err := s.compileDeclared(reg); err != nil {
		return nil, err
	}
	var res *RegistrationResult
	err := s.bounded(ctx, func(ctx context.Context) (err error) {
		res, err = s.cfg.Workers.RegisterWorker(ctx, reg, webhook.NewSecret, s.cfg.MaxAttempts)
		return err
	})
	if err != nil {
		return nil, err
	}
	res.HeartbeatIntervalMS = reg.LeaseTTL().Milliseconds() / 3
	s.afterRegistration(ctx, reg, res)
	return res, nil
}

// afterRegistration forgets the cached current schema of each API the
// worker declares one for: the registration may have published a version,
// or made a live worker declare an older one again (the current version
// follows the live workers; see SchemaStore). It then warns about workers
// that disagree on a schema.
func (s *Service) afterRegistration(ctx context.Context, reg *Registration, res *RegistrationResult) {
	if s.cfg.SchemaCache != nil {
		for _, a := range reg.APIs {
			if a.SchemaDocument() != nil {
				s.cfg.SchemaCache.Invalidate(a.Name)
			}
		}
	}
	for _, api := range res.Published {
		s.logger.InfoContext(ctx, "new schema version", slog.String("api", api), slog.String("worker_id", reg.WorkerID))
	}
	for _, c := range res.SchemaConflicts {
		s.logger.WarnContext(ctx, "schema_conflict: a live worker declares another schema than the API's current version",
			slog.String("api", c.API), slog.String("worker_id", c.WorkerID), slog.String("service", c.Service),
			slog.String("hash", c.Hash), slog.String("registering_worker_id", reg.WorkerID))
	}
}

// Deregister removes a worker; removing an unknown worker is not an error.
// Needs a serve or listen scope (any pattern) or admin.
func (s *Service) Deregister(ctx context.Context, id string) error {
	if err := ValidateWorkerID(id); err != nil {
		return err
	}
	if err := s.authorizeWorker(ctx); err != nil {
		return err
	}
	return s.bounded(ctx, func(ctx context.Context) error { return s.cfg.Workers.DeregisterWorker(ctx, id) })
}

// ReleaseAPI removes the owner of api, so that another service can
// register workers providing it. Needs admin. Errors: EInvalid,
// EUnauthorized, EForbidden, ENotFound (no owner), EConflict (a live worker
// of the owner still provides it: stop it first, or its next heartbeat
// would claim the API again), EUnavailable.
func (s *Service) ReleaseAPI(ctx context.Context, api string) error {
	if err := s.authorize(ctx, ScopeAdmin, ""); err != nil {
		return err
	}
	if err := ValidateAPIName(api); err != nil {
		return err
	}
	return s.bounded(ctx, func(ctx context.Context) error { return s.cfg.Workers.ReleaseAPI(ctx, api) })
}

// Workers lists the live workers. Needs read.
func (s *Service) Workers(ctx context.Context) ([]Worker, error) {
	if err := s.authorize(ctx, ScopeRead, ""); err != nil {
		return nil, err
	}
	var workers []Worker
	err := s.bounded(ctx, func(ctx context.Context) (err error) {
		workers, err = s.cfg.Workers.ListWorkers(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	if workers == nil {
		workers = []Worker{}
	}
	return workers, nil
}
