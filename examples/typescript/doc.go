// Package typescript holds the test that runs the TypeScript example
// (src/main.ts) against a real gateway: the types generated from
// openapi.yaml by openapi-typescript must be current, compile under strict
// tsc, and the Node worker and client must complete their scenario.
//
// Install the Node packages first (npm ci in this directory); without them
// the test is skipped, unless LIGHTBUS_REQUIRE_NODE is set (as CI does).
package typescript
