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
// The bus package of an "auth" service:
//
//	package bus
//
//	var Bus = lightbus.MustCreate(lightbus.WithService("auth"))
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
//	func init() {
//		CheckPassword.Handle(Bus, func(ctx context.Context, p CheckPasswordParams) (bool, error) {
//			return p.Username == "admin" && p.Password == "secret", nil
//		})
//		UserRegistered.Declare(Bus)
//	}
//
// Any code of the service, or of another service with its own Bus, uses it:
//
//	ok, err := bus.CheckPassword.Call(ctx, bus.Bus, bus.CheckPasswordParams{Username: "admin", Password: "secret"})
//	_, err = bus.UserRegistered.Fire(ctx, bus.Bus, bus.UserRegisteredParams{Username: "sally", Email: "sally@example.com"})
//
// and a "customers" service listens, calling an RPC for each event:
//
//	Bus.OnStart(func(ctx context.Context) error {
//		Bus.Listen("customers.new_customer", "create_user", func(ctx context.Context, ev lightbus.EventMessage) error {
//			return Bus.Call(ctx, "auth.create_user", ev.Params, nil)
//		})
//		return nil
//	})
//
// The untyped methods take qualified names ("auth.check_password"); the typed
// handles [NewRPC] and [NewEvent] add Go types and declare JSON Schemas of
// them to the gateway.
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
// A listener group's retries are set with [WithPolicy] and where a new group
// starts with [StartFrom]. Deliveries that use all their attempts are dead:
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
