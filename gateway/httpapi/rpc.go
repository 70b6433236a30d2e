package httpapi

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/attribute"

	"github.com/lightbus-go/lightbus/gateway"
)

func (h *Handler) callRPC(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	r, span := h.serverSpan(r, "rpc")
	api, method := chi.URLParam(r, "api"), chi.URLParam(r, "method")
	result, err := h.call(w, r, api, method)
	outcome := outcomeOK
	if err != nil {
		outcome = errorCode(err)
	}
	api, method = nameLabels(api, "rpc", method)
	h.rec.CallDone(api, method, outcome, time.Since(start))
	if span.IsRecording() {
		span.SetAttributes(attribute.String("rpc.system", "lightbus"), attribute.String("rpc.service", api), attribute.String("rpc.method", method))
	}
	endSpan(span, http.StatusOK, err)
	if err != nil {
		return err
	}
	writeResult(w, result)
	return nil
}

// call reads the request of callRPC and makes the call.
func (h *Handler) call(w http.ResponseWriter, r *http.Request, api, method string) (json.RawMessage, error) {
	timeout, err := parseTimeout(r.Header.Get("Lightbus-Timeout"))
	if err != nil {
		return nil, err
	}
	body, err := readBody(w, r, h.cfg.MaxBodyBytes, "the body")
	if err != nil {
		return nil, err
	}
	return h.svc.Call(r.Context(), &gateway.Call{API: api, Method: method, Params: body, Timeout: timeout})
}

// writeResult answers an RPC with {"result": result}. The result is valid
// JSON already (the forwarder decoded it), so it is written as it is, with
// its length, rather than scanned again by an encoder.
func writeResult(w http.ResponseWriter, result json.RawMessage) {
	const head, tail = `{"result":`, "}\n"
	hd := w.Header()
	hd["Content-Type"] = []string{"application/json"}
	hd["Content-Length"] = []string{strconv.Itoa(len(head) + len(result) + len(tail))}
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, head)
	_, _ = w.Write(result)
	_, _ = io.WriteString(w, tail)
}

// parseTimeout reads a Lightbus-Timeout header: a Go duration ("2s",
// "500ms") or a number of seconds.
func parseTimeout(h string) (time.Duration, error) {
	if h == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(h)
	if err != nil {
		secs, ferr := strconv.ParseFloat(h, 64)
		if ferr != nil {
			return 0, gateway.Errorf(gateway.EInvalid, "Lightbus-Timeout %q: want a duration such as 2s or 500ms", h)
		}
		// NaN, infinities and seconds beyond a Duration do not convert.
		ns := secs * float64(time.Second)
		if !(ns >= 1 && ns < math.MaxInt64) {
			return 0, gateway.Errorf(gateway.EInvalid, "Lightbus-Timeout %q: want a positive number of seconds that fits a duration (under 292 years)", h)
		}
		d = time.Duration(ns)
	}
	if d <= 0 {
		return 0, gateway.Errorf(gateway.EInvalid, "Lightbus-Timeout %q must be positive", h)
	}
	return d, nil
}
