package httpapi

import (
	"net/http"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
)

// Recorder is told what fires and RPC calls came to, for metrics
// (gateway/metrics implements it). API, event and method names are those
// the gateway validated, "" when they were not valid: never raw request
// input. An outcome is "accepted" or "replayed" for a fire, "ok" for a call,
// else the code of the error answered. It is called on every fire and call:
// it must be quick and must not block.
type Recorder interface {
	// EventFired counts one fired event (each event of a batch).
	EventFired(api, event, outcome string)
	// FireDone observes how long a fire request took to answer; api is ""
	// for a batch or a fire whose names were not valid.
	FireDone(api string, took time.Duration)
	// CallDone counts an RPC call and observes how long it took to answer.
	CallDone(api, method, outcome string, took time.Duration)
}

// nopRecorder is the Recorder of a Handler configured without one.
type nopRecorder struct{}

func (nopRecorder) EventFired(string, string, string)              {}
func (nopRecorder) FireDone(string, time.Duration)                 {}
func (nopRecorder) CallDone(string, string, string, time.Duration) {}

// Fire and call outcomes besides the error codes.
const (
	outcomeAccepted = "accepted"
	outcomeReplayed = "replayed"
	outcomeOK       = "ok"
)

// fireOutcome is the outcome of a fire that answered res or err.
func fireOutcome(res *gateway.FireResult, err error) string {
	switch {
	case err != nil:
		return errorCode(err)
	case res.Repeat:
		return outcomeReplayed
	}
	return outcomeAccepted
}

// nameLabels returns an API name and the name of one of its events or
// RPCs (kind "event" or "rpc") as metric labels: "" unless both are valid.
func nameLabels(api, kind, name string) (string, string) {
	if gateway.ValidateAPIName(api) != nil || gateway.ValidateIdent(kind, name) != nil {
		return "", ""
	}
	return api, name
}

// metrics serves the gateway's metrics (Config.Metrics); they need read.
func (h *Handler) metrics(w http.ResponseWriter, r *http.Request) error {
	if h.cfg.Metrics == nil {
		return gateway.Errorf(gateway.ENotFound, "metrics are not enabled")
	}
	if err := h.svc.AuthorizeMetrics(r.Context()); err != nil {
		return err
	}
	h.cfg.Metrics.ServeHTTP(w, r)
	return nil
}
