package lightbus

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lightbus-go/lightbus/internal/schemacheck"
)

// Problem codes: the stable `code` of every problem document the gateway and
// workers answer with. Switch on them with [IsCode] or [ErrorCode].
const (
	CodeInvalid      = "invalid"      // 400: malformed JSON, a body that is not an object, a bad name, header or query parameter
	CodeUnauthorized = "unauthorized" // 401: no API key, or an unknown or revoked one (or a bad delivery signature)
	CodeForbidden    = "forbidden"    // 403: the API key lacks the scope; Error.Detail names it
	CodeNotFound     = "not_found"    // 404: no such resource, or an RPC nobody serves
	CodeConflict     = "conflict"     // 409: conflicts with current state, e.g. an API owned by another service
	CodeTooLarge     = "too_large"    // 413: the body is over the configured limit
	CodeValidation   = "validation"   // 422: the parameters do not match the declared schema; see Error.Violations
	CodeRemoteError  = "remote_error" // 500: the RPC handler returned an error; see Error.ErrorType and Error.Message
	CodeInternal     = "internal"     // 500: the gateway failed
	CodeBadGateway   = "bad_gateway"  // 502: the worker could not be reached, broke the protocol, or its result did not match its schema (see Error.Violations)
	CodeNoWorker     = "no_worker"    // 503: no live worker provided the API before the RPC deadline
	CodeUnavailable  = "unavailable"  // 503: the gateway cannot serve now; retry later
	CodeTimeout      = "timeout"      // 504: the RPC deadline passed before the worker answered
	CodeRateLimited  = "rate_limited" // 429: the API key is over its rate limit; retry after Retry-After
	CodeGone         = "gone"         // 410: a stream position older than the gateway keeps; start a new stream
)

// problemTypePrefix starts the `type` member of every Lightbus problem.
const problemTypePrefix = "urn:lightbus:problem:"

// Error is a problem document (RFC 9457) answered by the gateway: every
// non-2xx answer from [Bus.Call], [Bus.Fire] and the inspection methods is
// returned as an *Error, possibly wrapped, so use errors.As or the helpers
// [IsCode] and [ErrorCode]:
//
//	var lerr *lightbus.Error
//	if errors.As(err, &lerr) && lerr.Code == lightbus.CodeRemoteError {
//		log.Printf("auth failed: %s: %s", lerr.ErrorType, lerr.Message)
//	}
//
// An answer that is not a problem document (from a proxy, say) becomes an
// *Error with the HTTP status, an empty Code and a Detail that quotes the
// start of the body.
type Error struct {
	// Status is the HTTP status of the answer.
	Status int
	// Code is the stable problem code, one of the Code constants; empty when
	// the answer was not a problem document.
	Code string
	// Title is a short summary of the kind of problem.
	Title string
	// Detail explains this occurrence, for people.
	Detail string
	// ErrorType is the type of the remote handler's error (CodeRemoteError).
	ErrorType string
	// Message is the message of the remote handler's error (CodeRemoteError).
	Message string
	// Violations lists each way the parameters failed validation
	// (CodeValidation), or an RPC result failed its result schema
	// (CodeBadGateway).
	Violations []Violation

	retryAfter time.Duration // from a Retry-After header, if any
}

// Violation is one way in which parameters (or a result) failed schema
// validation: Pointer, a JSON Pointer (RFC 6901) into the parameters (or
// the result), e.g. "/email", and Message, what is wrong there. A missing
// required property is named by its own pointer.
type Violation = schemacheck.Violation

// Error describes the problem on one line, e.g.
// `remote_error (500): InvalidPassword: password too short`.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Code != "" {
		fmt.Fprintf(&b, "%s (%d)", e.Code, e.Status)
	} else {
		fmt.Fprintf(&b, "HTTP %d", e.Status)
	}
	switch {
	case e.Code == CodeRemoteError && (e.ErrorType != "" || e.Message != ""):
		fmt.Fprintf(&b, ": %s: %s", e.ErrorType, e.Message)
	case e.Detail != "":
		b.WriteString(": " + e.Detail)
	case e.Title != "":
		b.WriteString(": " + e.Title)
	}
	for i, v := range e.Violations {
		sep := "; "
		if i == 0 {
			sep = " ["
		}
		fmt.Fprintf(&b, "%s%s: %s", sep, v.Pointer, v.Message)
		if i == len(e.Violations)-1 {
			b.WriteString("]")
		}
	}
	return b.String()
}

// ErrorCode returns the Code of the first *Error in err's chain, or "" when
// there is none (a transport failure, a cancelled context, nil).
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// IsCode reports whether err's chain holds an *Error with the given code,
// e.g. IsCode(err, CodeNoWorker).
func IsCode(err error, code string) bool {
	return err != nil && ErrorCode(err) == code
}

// RemoteError is an error with an explicit type name, for RPC handlers that
// want callers to see a stable `error_type` (e.g. "InvalidPassword") rather
// than the Go type of their error. Create one with [NewError].
type RemoteError struct {
	// Type becomes the problem's error_type.
	Type string
	// Message becomes the problem's message.
	Message string
}

// NewError returns a *RemoteError: an RPC handler that returns it answers
// remote_error with error_type typ and message msg.
func NewError(typ, msg string) error {
	return &RemoteError{Type: typ, Message: msg}
}

// Error returns Message; the type travels separately, as error_type.
func (e *RemoteError) Error() string { return e.Message }

// ErrorType returns e.Type; see [Bus.Handle] for how error types are named.
func (e *RemoteError) ErrorType() string { return e.Type }

// ErrInvalidParams marks a handler error as the caller's fault: an RPC handler
// or listener whose error wraps it (fmt.Errorf("%w: no username",
// lightbus.ErrInvalidParams)) answers 400 invalid instead of 500. The typed
// helpers return it when parameters do not decode into the Go type.
var ErrInvalidParams = errors.New("invalid parameters")

// errorTyper is implemented by errors that name their own error_type.
type errorTyper interface{ ErrorType() string }

// errorType names err for a remote_error problem: the ErrorType() of the
// first error in its chain that has that method; else the name of the first
// exported type found by following Unwrap (without package path or pointer
// stars: *os.PathError is "PathError"); else "error" (errors.New,
// fmt.Errorf and other unexported types).
func errorType(err error) string {
	var et errorTyper
	if errors.As(err, &et) {
		if t := et.ErrorType(); t != "" {
			return t
		}
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		t := reflect.TypeOf(e)
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if name := t.Name(); name != "" {
			if r, _ := utf8.DecodeRuneInString(name); unicode.IsUpper(r) {
				return name
			}
		}
	}
	return "error"
}
