// Package lightbus is the Go client and worker runtime of Lightbus: services
// fire events and call remote procedures (RPCs) through the Lightbus gateway
// over HTTP/JSON, and serve their own RPCs and event listeners as a worker.
//
// As in Lightbus, a service gets two tools from one [Bus]:
//
//   - a client, created once in the service's bus package and used anywhere
//     (web handlers, jobs, other handlers) to call RPCs ([Bus.Call]) and fire
//     events ([Bus.Fire]);
//   - a worker, started by `lightbus run` (which calls [Main]), that serves the
//     service's RPCs ([Bus.Handle]) and listeners ([Bus.Listen]) as HTTP
//     endpoints, registers them with the gateway, heartbeats, and
//     deregisters on shutdown ([Bus.Run]). A service needs a worker only if it
//     provides RPCs or listens for events.
//
// The bus package of an "auth" service creates its Bus and registers
// everything the service provides and listens to, in one constructor:
//
//	package bus
//
//	type CheckPasswordParams struct {
//		Username string `json:"username"`
//		Password string `json:"password"`
//	}
//
//	type UserRegisteredParams struct {
//		Username string `json:"username"`
//		Email    string `json:"email"`
//	}
//
//	var (
//		CheckPassword  = lightbus.NewRPC[CheckPasswordParams, bool]("auth", "check_password")
//		UserRegistered = lightbus.NewEvent[UserRegisteredParams]("auth", "user_registered")
//	)
//
//	// Bus is the service's bus, configured from the environment.
//	var Bus = New()
//
//	// New creates the auth service's Bus; tests pass options (a private
//	// gateway's URL, say) and get a fresh one.
//	func New(opts ...lightbus.Option) *lightbus.Bus {
//		bus := lightbus.MustCreate(append([]lightbus.Option{lightbus.WithService("auth")}, opts...)...)
//		CheckPassword.Handle(bus, func(ctx context.Context, p CheckPasswordParams) (bool, error) {
//			return p.Username == "admin" && p.Password == "secret", nil
//		})
//		UserRegistered.Declare(bus)
//		return bus
//	}
//
// Any code of the service, or of another service with its own Bus, uses it:
//
//	ok, err := bus.CheckPassword.Call(ctx, bus.Bus, bus.CheckPasswordParams{Username: "admin", Password: "secret"})
//	_, err = bus.UserRegistered.Fire(ctx, bus.Bus, bus.UserRegisteredParams{Username: "sally", Email: "sally@example.com"})
//
// and a "customers" service's constructor registers a listener, which
// calls an RPC for each event:
//
//	func New(opts ...lightbus.Option) *lightbus.Bus {
//		bus := lightbus.MustCreate(append([]lightbus.Option{lightbus.WithService("customers")}, opts...)...)
//		bus.Listen("customers.new_customer", "create_user", func(ctx context.Context, ev lightbus.EventMessage) error {
//			return bus.Call(ctx, "auth.create_user", ev.Params, nil)
//		})
//		return bus
//	}
//
// The untyped methods take qualified names ("auth.check_password"); the typed
// handles [NewRPC] and [NewEvent] add Go types and declare JSON Schemas of
// them to the gateway.
//
// # Registering handlers and listeners
//
// Register RPC handlers, listeners and tasks where the Bus is created: in
// the bus package's constructor, which its package variable calls
// (var Bus = New()). Not in init, and not in a [Bus.OnStart] hook (the
// idiom of Python's Lightbus). Registering only records what the worker
// will serve: nothing reaches the gateway until [Bus.Run], so a process
// that uses the Bus only as a client (a web server firing events) runs no
// listener however many it registered. Registering at creation keeps what
// the service does in one place, readable without starting anything; a bad
// name panics as soon as the package is loaded, in every test; and tests
// get a fresh Bus pointed at their own gateway by calling the constructor
// (lightbustest.Deliver, Invoke and StartGateway need nothing else).
// Python's Lightbus sets up listeners on start because its listen() starts
// consuming at once; here that is what Run does. Keep OnStart for what
// needs the worker to be starting: opening connections its handlers use,
// warming caches.
//
// # Names
//
//   - A service name ([WithService], $LIGHTBUS_SERVICE_NAME) and an API
//     name are one or more identifiers joined by dots ("auth",
//     "support.case"), at most 200 characters. An identifier is an ASCII
//     letter or underscore followed by letters, digits and underscores:
//     [A-Za-z_][A-Za-z0-9_]*. Names are case-sensitive.
//   - An API belongs to the service that first registers it: a worker of
//     another service that provides it is refused (409 conflict).
//   - Event and RPC names are identifiers, unique within their API, and
//     are written qualified: "auth.user_registered", "support.case.open"
//     (the API is everything before the last dot). A listener may also
//     subscribe to "api.*", every event of the API.
//   - A listener name is an identifier. The listener group is (service,
//     listener): unique within the service, and shared by every worker of
//     the service that registers it (each event goes to one of them).
//     [Bus.Listen] calls with the same name add events to one group; one
//     group cannot listen to the same event twice.
//   - A scheduled task name ([TaskName]) is an identifier, unique within the
//     service; without TaskName it is the function's name. A background
//     task ([Bus.Go]) is named only for logs ("task-N" by default).
//   - A worker id ([WithWorkerID], `lightbus run --process-name`) is 1 to
//     128 of [A-Za-z0-9._-], unique across all services: it names one
//     process to the gateway. The default is service-hostname-pid-random;
//     see [ProcessName] for templates such as "{hostname}-{pid}".
//
// Registration calls (Handle, Listen, DeclareEvent, Every, Schedule) panic
// on a bad name, and Handle, Listen, Every and Schedule on a duplicate, the
// way regexp.MustCompile does: it is a programming error, found when the
// bus package loads.
//
// # Schemas
//
// A typed handle carries the JSON Schema (2020-12) of its Go types, generated
// with [SchemaFor]: fields are required unless omitempty, omitzero or
// pointers; `jsonschema:"enum=...,description=..."` tags add keywords. The
// worker declares these schemas when it registers, and the gateway stores them
// (one version per change, see [Bus.Schemas]) and validates every fire and
// call of the API against them, answering 422 [CodeValidation] with
// [Error].Violations. The typed Fire and Call check the parameters against
// the same schema before sending, with the same error, so a bad call is
// caught without a round trip ([WithValidation] turns that off).
// [Bus.PublishSchema] publishes a schema without running a worker.
//
// # Configuration
//
// [Create] reads LIGHTBUS_URL (the gateway, default http://127.0.0.1:8080),
// LIGHTBUS_TOKEN (the API key sent as a bearer token on every request, see
// [WithToken]), LIGHTBUS_SERVICE_NAME, LIGHTBUS_WORKER_ADDR (where the worker
// listens, default 127.0.0.1:0), LIGHTBUS_WORKER_URL (the base URL advertised
// to the gateway) and LIGHTBUS_WORKER_ID; options override them.
//
// # Worker security
//
// The worker runs only requests the gateway signed: each RPC with the
// worker's own secret and each delivery with its listener group's, both
// granted at registration (Standard Webhooks signatures, checked over the
// body, within five minutes of the worker's clock, and for an RPC bound to
// the procedure called). Anything else is answered 401 unauthorized without
// running a handler. Every answer names the worker in a Lightbus-Worker-Id
// header; the gateway takes an RPC answer only from the worker it called.
// Each process registers with a new instance id, which gives it a new RPC
// secret; its heartbeats keep it.
//
// # Errors
//
// Every problem answered by the gateway is an [*Error] with a stable Code
// ([CodeRemoteError], [CodeNoWorker], [CodeTimeout], [CodeValidation], ...);
// use errors.As, [IsCode] or [ErrorCode]. A request that got no answer (a
// refused connection, a timeout) is a [*TransportError], which unwraps to
// the HTTP client's error. errors.Is(err, [ErrUnavailable]) and
// errors.Is(err, [ErrTimeout]) cover both: the transport failure and the
// gateway's own no_worker, unavailable and timeout answers.
//
// A service's domain errors are [*RemoteError] values declared once in its
// bus package with [NewError]; a handler returns or wraps one, and callers
// match it with errors.Is, which sees through the wire by error_type (see
// [RemoteError] and [Error.Is]). Joined with [ErrInvalidParams] the answer
// is 400 invalid, with the same error_type.
//
// # Delivery guarantees
//
// A nil error from Fire means the event is stored: every listener group
// subscribed to it receives it at least once. Listeners may therefore see an
// event more than once; [EventMessage].ID is the same on every attempt, so
// de-duplicate by it. Fire and [Bus.FireBatch] send an Idempotency-Key on
// every retry, so a retried fire stores its event once.
//
// A listener that fails (returns an error or panics) is retried through
// the gateway by default; a group listening with
// OnError([AcknowledgeAndLog]) logs the error and acknowledges the
// delivery instead, which is then never sent again (see [OnError]).
//
// A listener group's retries are set with [WithPolicy] and where a new group
// starts with [StartFrom]. [Ordered] makes an ordered group: its events come
// one at a time in the order their fires committed, and a failing one holds
// back the rest until it succeeds or is dead (one request at a time costs
// throughput: see the gateway's docs/DELIVERY.md, "Ordered groups"). Deliveries that use all their attempts are dead:
// list them with [Bus.DeadLetters], inspect one with [Bus.Delivery], and give
// them fresh attempts with [Bus.Redrive] or [Bus.RedriveAll]. [Bus.Listeners]
// shows each group's backlog and lag, and [Bus.Replay] rewinds a group.
//
// # Traces
//
// Fire, FireBatch and Call send the W3C trace context (traceparent,
// tracestate) of their ctx to the gateway, which passes it on to listeners
// and workers. The worker runtime runs each listener and RPC handler with a
// ctx carrying the trace context that came with the delivery or RPC, so
// trace.SpanContextFromContext(ctx) there is the caller's trace and a fire
// or call made with that ctx continues it. This needs no OpenTelemetry setup:
// the Bus uses W3C Trace Context unless the program set a global propagator
// (otel.SetTextMapPropagator) or passed one to [WithPropagator]. The Bus
// makes no spans of its own and links no OpenTelemetry SDK.
//
// # Testing
//
// Code that fires and calls through a [Client] rather than a *Bus can be
// given a test double; package lightbustest (clientgo/lightbustest) has a
// mock bus, helpers that run a worker's listeners and RPC handlers with
// signed requests in process, and a private gateway per test.
//
// See docs/PROTOCOL.md and docs/DELIVERY.md in the repository for the wire
// contract and the delivery guarantees.
package lightbus
