package lightbus

import (
	"context"
	"encoding/json"
	"time"
)

// FireRequest is an outgoing fire as fire middleware sees it.
type FireRequest struct {
	// API and Event name the event.
	API, Event string
	// Params are the encoded parameters, a JSON object.
	Params json.RawMessage
	// IdempotencyKey is sent on every try of the fire.
	IdempotencyKey string
}

// FireFunc sends a fire to the gateway (retrying as [Bus.Fire] does).
type FireFunc func(ctx context.Context, req FireRequest) (FireResult, error)

// FireMiddleware wraps every [Bus.Fire] (and the typed [Event.Fire]): it
// may read or change the request and ctx (trace context included), time
// it, or fail it without sending. Add it with [WithFireMiddleware].
// [Bus.FireBatch] sends one request for many events and does not pass
// through it.
type FireMiddleware func(next FireFunc) FireFunc

// CallRequest is an outgoing RPC as call middleware sees it.
type CallRequest struct {
	// API and Method name the RPC.
	API, Method string
	// Params are the encoded parameters, a JSON object.
	Params json.RawMessage
	// Timeout is the call's deadline sent as Lightbus-Timeout; zero sends
	// none (the API's default applies).
	Timeout time.Duration
}

// CallFunc sends an RPC to the gateway and returns its raw result.
type CallFunc func(ctx context.Context, req CallRequest) (json.RawMessage, error)

// CallMiddleware wraps every [Bus.Call] (and the typed [RPC.Call]). Add it
// with [WithCallMiddleware].
type CallMiddleware func(next CallFunc) CallFunc

// RPCMiddleware wraps the worker's RPC handlers: it runs after the
// request's signature is checked, with the call's details in ctx
// ([RPCFromContext]) and its trace context (trace.SpanContextFromContext).
// A panic in it is answered like a handler's. Add it with
// [WithRPCMiddleware].
type RPCMiddleware func(next HandlerFunc) HandlerFunc

// ListenerMiddleware wraps the worker's listeners: it runs after the
// delivery's signature is checked, with the delivery's details in ctx
// ([DeliveryFromContext]) and its trace context. Its error is the
// listener's: it goes through the listener group's error policy ([OnError]). Add
// it with [WithListenerMiddleware].
type ListenerMiddleware func(next ListenerFunc) ListenerFunc

// WithFireMiddleware adds fire middleware; the first given is the
// outermost.
func WithFireMiddleware(mw ...FireMiddleware) Option {
	return func(c *config) { c.fireMW = append(c.fireMW, mw...) }
}

// WithCallMiddleware adds call middleware; the first given is the
// outermost.
func WithCallMiddleware(mw ...CallMiddleware) Option {
	return func(c *config) { c.callMW = append(c.callMW, mw...) }
}

// WithRPCMiddleware adds RPC handler middleware; the first given is the
// outermost.
func WithRPCMiddleware(mw ...RPCMiddleware) Option {
	return func(c *config) { c.rpcMW = append(c.rpcMW, mw...) }
}

// WithListenerMiddleware adds listener middleware; the first given is the
// outermost.
func WithListenerMiddleware(mw ...ListenerMiddleware) Option {
	return func(c *config) { c.listenerMW = append(c.listenerMW, mw...) }
}

// chain wraps h in mw, the first outermost.
func chain[F any, M ~func(F) F](h F, mw []M) F {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// DeliveryInfo describes the delivery a listener is handling.
type DeliveryInfo struct {
	// EventID is the event's id, the same on every attempt.
	EventID string
	// API and Event name the event.
	API, Event string
	// Attempt is the delivery attempt's number, from 1.
	Attempt int
	// Service and Listener name the listener group.
	Service, Listener string
	// Time is when the event was fired.
	Time time.Time
}

// RPCInfo describes the RPC a handler is answering.
type RPCInfo struct {
	// API and Method name the RPC.
	API, Method string
	// Deadline is the caller's deadline; zero when none came.
	Deadline time.Time
	// RequestID is the gateway's id of the call.
	RequestID string
}

type deliveryKey struct{}
type rpcKey struct{}

// DeliveryFromContext returns the delivery that the listener (or listener
// middleware) whose ctx this is handles; ok is false outside of one.
func DeliveryFromContext(ctx context.Context) (info DeliveryInfo, ok bool) {
	info, ok = ctx.Value(deliveryKey{}).(DeliveryInfo)
	return info, ok
}

// RPCFromContext returns the RPC that the handler (or RPC middleware)
// whose ctx this is answers; ok is false outside of one.
func RPCFromContext(ctx context.Context) (info RPCInfo, ok bool) {
	info, ok = ctx.Value(rpcKey{}).(RPCInfo)
	return info, ok
}
