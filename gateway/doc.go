// Package gateway is the domain of the Lightbus gateway: events, RPCs,
// workers and listener groups, the errors they can produce, the store
// interfaces the gateway consumes, the HTTP server, and the River job args and
// workers that deliver events.
//
// The package knows nothing of Postgres: store/postgres implements the
// interfaces declared here, and cmd/gateway wires the two together.
package gateway
