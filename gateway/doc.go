// Package gateway is the domain of the Lightbus gateway: events,
// deliveries, listener groups, workers, RPC calls and API schemas, the one
// error type they produce (Error, with a code), the store interfaces the
// gateway consumes, and the Service that holds the rules: fire, fire batch,
// call, register, inspect, redrive, replay and schemas.
//
// The package knows nothing of HTTP routing, Postgres or River: the HTTP
// layer (gateway/httpapi) decodes requests and calls the Service once;
// store/postgres implements the store interfaces; gateway/dispatch runs the
// River jobs and forwards RPCs; cmd/gateway wires them together.
package gateway
