// Package testhook lets the test helpers of clientgo/lightbustest reach the
// worker runtime of a *lightbus.Bus without widening its public API: package
// lightbus sets these functions when it is initialised, and lightbustest
// calls them. The bus is passed as any, since this package cannot name
// lightbus's types. Nothing else may use it.
package testhook

import "context"

var (
	// Start runs bus's OnStart hooks, once per bus, as a worker does before
	// it registers.
	Start func(ctx context.Context, bus any) error
	// ListenerKey returns the signing key of bus's listener group listener,
	// granting it a random one when no registration has; ok is false when
	// bus has no such listener group.
	ListenerKey func(bus any, listener string) (key []byte, ok bool)
	// RPCKey returns the key bus's RPCs are signed with, granting a random
	// one when no registration has.
	RPCKey func(bus any) []byte
)
