// Package lightbustest helps test services built on the Go client (package
// lightbus): a mock bus for unit tests of code that fires events and calls
// RPCs, and helpers that run a worker's listeners and RPC handlers with
// correctly signed requests, in process.
//
// # Mock bus
//
// Code that fires and calls through a [lightbus.Client] (which *lightbus.Bus
// implements, and the typed handles' Fire and Call take) can be given a
// [MockBus] in its tests. Every fire and call must be mocked first; anything
// else returns an error and fails the test when it ends:
//
//	func TestSignup(t *testing.T) {
//		mock := lightbustest.NewMockBus(t)
//		mock.OnCall("auth.create_user").Return(authbus.CreateUserResult{Username: "sally", Created: true})
//		mock.OnFire("customers.signed_up")
//
//		if err := signup(ctx, mock, "Sally"); err != nil {
//			t.Fatal(err)
//		}
//		mock.AssertCalled(t, "auth.create_user", 1)
//		mock.AssertFired(t, "customers.signed_up", map[string]any{"name": "Sally"})
//	}
//
// Errors given to [Mock.ReturnError] reach the caller as the gateway would
// return them, so a test of the error path checks the same things as
// production code does (errors.Is with a declared lightbus.NewError value,
// lightbus.IsCode).
//
// # Listeners and handlers
//
// [Deliver] runs a listener group of a *lightbus.Bus on one event, and
// [Invoke] one of its RPC handlers, through the worker's own HTTP handler
// (signature check included) with the request the gateway would send,
// signed with the key the worker holds. No gateway is involved: give the
// bus's handlers a MockBus for what they fire and call.
//
//	status := lightbustest.Deliver(t, bus, "create_user", "customers.new_customer",
//		map[string]string{"name": "Sally", "email": "sally@example.com"})
//	if status != http.StatusNoContent { ... }
package lightbustest
