package lightbus

import "context"

// Client is what code that fires events and calls RPCs needs of a [Bus]:
// depend on it, rather than on *Bus, in code you want to test without a
// gateway, and pass a test double such as lightbustest's MockBus in its
// tests. *Bus implements it; so do the typed handles' Fire and Call, which
// take a Client.
type Client interface {
	// Fire fires the event name with params; see [Bus.Fire].
	Fire(ctx context.Context, name string, params any, opts ...CallOption) (FireResult, error)
	// FireBatch fires events in one request, all or none; see [Bus.FireBatch].
	FireBatch(ctx context.Context, events []BatchEvent) ([]FireResult, error)
	// Call calls the RPC name with params and decodes its result into
	// result; see [Bus.Call].
	Call(ctx context.Context, name string, params, result any, opts ...CallOption) error
}

var _ Client = (*Bus)(nil)
