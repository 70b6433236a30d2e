// Package dispatch sends the gateway's traffic out to workers and runs its
// background jobs: the River jobs that deliver events to listeners
// (Deliverer), replay a listener group's events (Replayer) and prune old
// events (Pruner), and the RPC forwarder (Forwarder).
//
// It depends on the domain (package gateway) and River; the stores it needs
// are the small interfaces declared here, implemented by store/postgres.
package dispatch
