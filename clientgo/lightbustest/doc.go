// Package lightbustest helps test services built on the Go client (package
// lightbus): a mock bus for unit tests of code that fires events and calls
// RPCs; helpers that run a worker's listeners and RPC handlers with
// correctly signed requests, in process; and a private gateway for
// integration tests of a service.
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
//
// # A private gateway
//
// [StartGateway] runs the real gateway for one test, on a database of its
// own, and [Gateway.Run] runs a service's worker against it, returning once
// the worker is live:
//
//	func TestMain(m *testing.M) { lightbustest.Main(m) }
//
//	func TestSignupEndToEnd(t *testing.T) {
//		gw := lightbustest.StartGateway(t)
//		gw.Run(t, authbus.New(gw.Options()...))
//		ok, err := authbus.CheckPassword.Call(ctx, gw.Client(t), authbus.CheckPasswordParams{...})
//	}
//
// The gateway is the gateway binary, started as a process: lightbustest
// builds cmd/gateway once per test process (or runs the binary named by
// $LIGHTBUS_GATEWAY_BIN), and gets each gateway a fresh database from the
// provisioner the project's own tests use (store/postgres/pgtest:
// $TEST_DATABASE_URL, else a private server from local PostgreSQL binaries,
// else Docker; with none the tests fail, they never skip). Running it as a
// process keeps the gateway's wiring in cmd/gateway and this package free of
// River and the HTTP server; it does link pgx, for the databases, into the
// test binaries that import it (never into a service's own binary, which
// imports only package lightbus).
//
// Use a private gateway, never a shared one (a development gateway, or one
// a team shares): a gateway routes each RPC to any live worker that
// provides the API and delivers each event to every listener group
// subscribed to it, so on a shared gateway a test's calls can be answered
// by, and its events delivered to, other live workers (a colleague's, a
// previous run's that has not deregistered yet, a service in staging),
// and those workers' fires reach the test's listeners. The tests then pass
// or fail for reasons outside them, and they act on other people's
// services.
package lightbustest
