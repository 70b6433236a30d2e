package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"

	"github.com/lightbus-go/lightbus/gateway"
)

// statusByCode maps each error code to its HTTP status. It is the only place
// where codes become statuses.
var statusByCode = map[string]int{
	gateway.EInvalid:      http.StatusBadRequest,
	gateway.EUnauthorized: http.StatusUnauthorized,
	gateway.EForbidden:    http.StatusForbidden,
	gateway.ENotFound:     http.StatusNotFound,
	gateway.EUnknownAPI:   http.StatusNotFound,
	gateway.EConflict:     http.StatusConflict,
	gateway.ETooLarge:     http.StatusRequestEntityTooLarge,
	gateway.EValidation:   http.StatusUnprocessableEntity,
	gateway.ERemote:       http.StatusInternalServerError,
	gateway.EInternal:     http.StatusInternalServerError,
	gateway.EBadGateway:   http.StatusBadGateway,
	gateway.ENoWorker:     http.StatusServiceUnavailable,
	gateway.EUnavailable:  http.StatusServiceUnavailable,
	gateway.ETimeout:      http.StatusGatewayTimeout,
	gateway.ERateLimited:  http.StatusTooManyRequests,
	gateway.EGone:         http.StatusGone,
}

var titleByCode = map[string]string{
	gateway.EInvalid:      "Invalid request",
	gateway.EUnauthorized: "Unauthorized",
	gateway.EForbidden:    "Forbidden",
	gateway.ENotFound:     "Not found",
	gateway.EUnknownAPI:   "Unknown API",
	gateway.EConflict:     "Conflict",
	gateway.ETooLarge:     "Request too large",
	gateway.EValidation:   "Validation failed",
	gateway.ERemote:       "Remote handler error",
	gateway.EInternal:     "Internal error",
	gateway.EBadGateway:   "Bad gateway",
	gateway.ENoWorker:     "No worker available",
	gateway.EUnavailable:  "Service unavailable",
	gateway.ETimeout:      "Timeout",
	gateway.ERateLimited:  "Too many requests",
	gateway.EGone:         "Gone",
}

// ErrorStatus returns the HTTP status for err's code.
func ErrorStatus(err error) int {
	if s, ok := statusByCode[gateway.ErrorCode(err)]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Problem is an RFC 9457 problem document with Lightbus's extension members.
type Problem struct {
	Type      string              `json:"type"`
	Title     string              `json:"title"`
	Status    int                 `json:"status"`
	Detail    string              `json:"detail,omitempty"`
	Instance  string              `json:"instance,omitempty"`
	Code      string              `json:"code"`
	ErrorType string              `json:"error_type,omitempty"`
	Message   string              `json:"message,omitempty"`
	Errors    []gateway.Violation `json:"errors,omitempty"`
}

// errorCode returns err's code as answered: internal for a code without a
// status.
func errorCode(err error) string {
	code := gateway.ErrorCode(err)
	if _, ok := statusByCode[code]; !ok {
		return gateway.EInternal
	}
	return code
}

// ProblemFor returns the problem document for err. Internal errors get a
// generic detail: their text is logged, never sent.
func ProblemFor(err error) *Problem {
	code := errorCode(err)
	p := &Problem{
		Type:   "urn:lightbus:problem:" + code,
		Title:  titleByCode[code],
		Status: statusByCode[code],
		Detail: gateway.ErrorMessage(err),
		Code:   code,
	}
	var e *gateway.Error
	if errors.As(err, &e) && code != gateway.EInternal {
		p.ErrorType = e.ErrorType
		p.Message = e.RemoteMessage
		p.Errors = e.Violations
	}
	return p
}

// authChallenge is the WWW-Authenticate header of every 401 but the River
// UI's (basicChallenge).
const authChallenge = `Bearer realm="lightbus"`

// writeError writes err as problem+json, logging internal errors. A 401
// carries the WWW-Authenticate challenge, and an error with a RetryAfter
// the Retry-After header in whole seconds (rounded up).
func writeError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		return // the caller went away: there is no one to answer
	}
	p := ProblemFor(err)
	p.Instance = r.URL.Path
	switch {
	case p.Code == gateway.EInternal:
		logger.ErrorContext(r.Context(), "request failed", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("error", err.Error()))
	case p.Status >= 500:
		logger.WarnContext(r.Context(), "request failed", slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("code", p.Code), slog.String("error", err.Error()))
	}
	if p.Code == gateway.EUnauthorized {
		challenge := authChallenge
		if isRiverUI(r.URL.Path) {
			challenge = basicChallenge
		}
		w.Header().Set("WWW-Authenticate", challenge)
	}
	var e *gateway.Error
	if errors.As(err, &e) && e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(e.RetryAfter.Seconds())), 10))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
