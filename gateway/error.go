package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lightbus-go/lightbus/internal/schemacheck"
)

// Error codes. Each maps to one HTTP status in exactly one place (the
// problem writer) and is the `code` member of every problem document.
const (
	EInvalid      = "invalid"      // bad input: malformed JSON, names, headers
	EUnauthorized = "unauthorized" // missing or bad credentials
	EForbidden    = "forbidden"    // credentials lack the permission
	ENotFound     = "not_found"    // no such resource
	EUnknownAPI   = "unknown_api"  // an RPC to an API the gateway has never heard of
	EConflict     = "conflict"     // conflicts with current state
	ETooLarge     = "too_large"    // body over the configured limit
	EValidation   = "validation"   // parameters do not match the schema
	ERemote       = "remote_error" // the RPC handler returned an error
	EInternal     = "internal"     // the gateway failed; never echoed
	EBadGateway   = "bad_gateway"  // a worker could not be reached or broke the protocol
	ENoWorker     = "no_worker"    // no live worker provides the API
	EUnavailable  = "unavailable"  // the gateway cannot serve now
	ETimeout      = "timeout"      // the RPC deadline passed
	ERateLimited  = "rate_limited" // the API key is over its rate limit
	EGone         = "gone"         // the resource existed but is no longer kept (a stream position past its resume bound)
)

// Error is the gateway's one error type. Code says what kind of failure it is;
// Message is safe to show to the caller (it is never shown for EInternal).
type Error struct {
	Code    string
	Message string

	// ErrorType and RemoteMessage carry a remote handler's error (ERemote).
	ErrorType     string
	RemoteMessage string

	// Violations lists what failed validation (EValidation).
	Violations []Violation

	// RetryAfter, when positive, is how long the caller should wait before
	// trying again (ERateLimited).
	RetryAfter time.Duration

	// Err is the underlying cause, if any; it is logged, never sent.
	Err error
}

// Violation is one way in which parameters failed validation: a JSON
// pointer into them and what is wrong there.
type Violation = schemacheck.Violation

// Error implements the error interface.
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Code
	}
	if e.Err != nil {
		return msg + ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// WrapError returns an *Error with the given code and message wrapping err.
func WrapError(code string, err error, message string) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain,
// EUnavailable for an expired deadline (a bound on a dependency such as
// the database ran out), EInternal for any other non-nil error, and "" for
// nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return EUnavailable
	}
	return EInternal
}

// ErrorMessage returns the caller-safe message of err: the message of its
// *Error, or a generic text for internal errors.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Code != EInternal && e.Message != "" {
		return e.Message
	}
	if e == nil && errors.Is(err, context.DeadlineExceeded) {
		return "a dependency of the gateway did not answer in time; try again"
	}
	return "internal error"
}

// Sentinels returned by stores, matched with errors.Is through their code.
var (
	// ErrNotFound is returned when a requested resource does not exist.
	ErrNotFound = &Error{Code: ENotFound, Message: "not found"}
	// ErrUnavailable is returned when the database cannot be reached.
	ErrUnavailable = &Error{Code: EUnavailable, Message: "the gateway's database is unavailable"}
)

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, ErrNotFound) matches any not-found error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}
