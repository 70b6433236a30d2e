package lightbus

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"testing"
)

// Middleware runs in order, first outermost, around fires, calls, RPC
// handlers and listeners, and the handler side sees the request's details
// in ctx.
func TestMiddleware(t *testing.T) {
	t.Parallel()

	var mu sync.Mutex
	var trail []string
	note := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		trail = append(trail, s)
	}
	fireMW := func(tag string) FireMiddleware {
		return func(next FireFunc) FireFunc {
			return func(ctx context.Context, req FireRequest) (FireResult, error) {
				note(tag + " fire " + req.API + "." + req.Event)
				return next(ctx, req)
			}
		}
	}
	callMW := func(tag string) CallMiddleware {
		return func(next CallFunc) CallFunc {
			return func(ctx context.Context, req CallRequest) (json.RawMessage, error) {
				note(tag + " call " + req.API + "." + req.Method)
				return next(ctx, req)
			}
		}
	}
	rpcMW := func(tag string) RPCMiddleware {
		return func(next HandlerFunc) HandlerFunc {
			return func(ctx context.Context, params json.RawMessage) (any, error) {
				info, ok := RPCFromContext(ctx)
				if ok {
					note(tag + " rpc " + info.API + "." + info.Method)
				}
				return next(ctx, params)
			}
		}
	}
	var delivered DeliveryInfo
	listenerMW := func(tag string) ListenerMiddleware {
		return func(next ListenerFunc) ListenerFunc {
			return func(ctx context.Context, ev EventMessage) error {
				info, _ := DeliveryFromContext(ctx)
				mu.Lock()
				delivered = info
				mu.Unlock()
				note(tag + " listener " + info.Listener)
				return next(ctx, ev)
			}
		}
	}
	gw := newFakeGateway(t)
	bus := newTestBus(t, gw.URL(), WithService("auth"),
		WithFireMiddleware(fireMW("a"), fireMW("b")), WithCallMiddleware(callMW("a"), callMW("b")),
		WithRPCMiddleware(rpcMW("a"), rpcMW("b")), WithListenerMiddleware(listenerMW("a")))
	bus.Handle("auth.check", func(ctx context.Context, _ json.RawMessage) (any, error) {
		_, ok := RPCFromContext(ctx)
		note("handler")
		return ok, nil
	})
	bus.Listen("customers.new_customer", "create_user", func(ctx context.Context, ev EventMessage) error {
		note("listener")
		return nil
	})
	bus.Go(func(ctx context.Context) error { <-ctx.Done(); return nil })
	stop, _, _ := runTestWorker(t, bus)
	gw.waitRegistered(t, bus.WorkerID())

	var ok bool
	if err := bus.Call(t.Context(), "auth.check", nil, &ok); err != nil || !ok {
		t.Fatalf("Call = %v, %v", ok, err)
	}
	if _, err := bus.Fire(t.Context(), "auth.user_registered", nil); err != nil {
		t.Fatal(err)
	}
	rec, _ := delivery{listener: "create_user", ceType: "customers.new_customer", body: `{}`, key: gw.key}.send(t, bus)
	if rec.Code != http.StatusNoContent {
		t.Fatalf("delivery answered %d", rec.Code)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want := []string{"a call auth.check", "b call auth.check", "a rpc auth.check", "b rpc auth.check", "handler",
		"a fire auth.user_registered", "b fire auth.user_registered", "a listener create_user", "listener"}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(trail, want) {
		t.Errorf("trail:\n%q\nwant\n%q", trail, want)
	}
	if delivered.API != "customers" || delivered.Event != "new_customer" || delivered.Attempt != 3 || delivered.Service != "auth" || delivered.EventID == "" {
		t.Errorf("DeliveryFromContext = %+v", delivered)
	}
}
