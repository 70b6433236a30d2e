package lightbus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path"
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
	CodeNotFound     = "not_found"    // 404: no such resource, or an RPC nobody serves (or that its API's schema does not declare)
	CodeUnknownAPI   = "unknown_api"  // 404: a call to an API the gateway has never heard of; Error.Detail names the nearest known API
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
	case e.Code == CodeRemoteError && (e.ErrorType != "" || e.Message != ""),
		e.Code == CodeInvalid && e.ErrorType != "":
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

// RemoteError is an error with an explicit type name, for RPC handlers and
// listeners that want callers to see a stable `error_type` (e.g.
// "InvalidPassword") rather than the Go type of their error. Create one with
// [NewError].
//
// The idiom for a service's domain errors: declare each once, in the bus
// package both sides import, and compare with errors.Is. A handler returns
// it (wrapped or not); the caller's *Error matches it by error_type, so the
// same test works against the real gateway and against a test double:
//
//	var ErrUserExists = lightbus.NewError("UserExists", "the user exists already")
//
//	return CreateUserResult{}, ErrUserExists                    // in the handler
//	if errors.Is(err, authbus.ErrUserExists) { ... }             // in the caller
type RemoteError struct {
	// Type becomes the problem's error_type.
	Type string
	// Message becomes the problem's message.
	Message string
}

// NewError returns a *RemoteError: an RPC handler that returns it answers
// remote_error with error_type typ and message msg (or invalid, when it is
// joined with [ErrInvalidParams]).
func NewError(typ, msg string) error {
	return &RemoteError{Type: typ, Message: msg}
}

// Error returns Message; the type travels separately, as error_type.
func (e *RemoteError) Error() string { return e.Message }

// ErrorType returns e.Type; see [Bus.Handle] for how error types are named.
func (e *RemoteError) ErrorType() string { return e.Type }

// Is reports whether target is a *RemoteError of the same Type, so that a
// handler's wrapped domain error matches its declared value by type, as it
// does on the caller's side of the wire (see [Error.Is]).
func (e *RemoteError) Is(target error) bool {
	t, ok := target.(*RemoteError)
	return ok && t.Type != "" && t.Type == e.Type
}

// Is makes errors.Is see through the wire:
//   - a *RemoteError target matches when e carries its error_type (a remote
//     handler returned it), whatever the code;
//   - [ErrTimeout] matches CodeTimeout (the worker did not answer before the
//     deadline), and [ErrUnavailable] matches CodeNoWorker and
//     CodeUnavailable, so one test covers the gateway's answer and a
//     transport failure.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrTimeout:
		return e.Code == CodeTimeout
	case ErrUnavailable:
		return e.Code == CodeNoWorker || e.Code == CodeUnavailable
	}
	if t, ok := target.(*RemoteError); ok {
		return t.Type != "" && t.Type == e.ErrorType
	}
	return false
}

// ErrInvalidParams marks a handler error as the caller's fault: an RPC handler
// or listener whose error wraps it (fmt.Errorf("%w: no username",
// lightbus.ErrInvalidParams)) answers 400 invalid instead of 500. The typed
// helpers return it when parameters do not decode into the Go type. The
// answer keeps the error's type and message, named as for remote_error, or
// "InvalidParams" when nothing in the chain names one: wrap a domain error
// too (fmt.Errorf("%w: %w", lightbus.ErrInvalidParams, ErrUsernameTaken))
// and the caller sees its error_type.
var ErrInvalidParams = errors.New("invalid parameters")

// ErrUnavailable is matched (errors.Is) by a request that did not reach the
// gateway or got no answer from it: a refused or broken connection, a DNS
// failure (see [TransportError]); and by the gateway's own 503 answers
// (CodeNoWorker, CodeUnavailable). Retrying later may succeed.
var ErrUnavailable = errors.New("unavailable")

// ErrTimeout is matched (errors.Is) by a request that timed out before the
// gateway answered (the context's deadline or the HTTP client's timeout,
// see [TransportError]), and by the gateway's 504 CodeTimeout answer.
var ErrTimeout = errors.New("timed out")

// TransportError is a request to the gateway that got no HTTP answer: the
// connection failed or broke, or the request timed out. It unwraps to
// [ErrTimeout] or [ErrUnavailable] and to the HTTP client's error (a
// *url.Error, usually), so errors.Is(err, context.DeadlineExceeded) and
// errors.As(err, &netErr) keep working. A request cancelled by its context
// is returned as the context's error, not as a TransportError.
type TransportError struct {
	// Method and Path name the request, e.g. POST /v1/rpc/auth/check_password.
	Method, Path string
	// Timeout is true when the request timed out.
	Timeout bool
	// Err is the HTTP client's error.
	Err error
}

// transportError wraps err, a failure to get an answer to method path.
func transportError(method, path string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	var ne net.Error
	timeout := errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
	return &TransportError{Method: method, Path: path, Timeout: timeout, Err: err}
}

// Error names the request and the cause, e.g. `gateway unavailable: POST
// /v1/events/auth/user_registered: dial tcp ...: connection refused`.
func (e *TransportError) Error() string {
	what := "gateway unavailable"
	if e.Timeout {
		what = "gateway request timed out"
	}
	return fmt.Sprintf("%s: %s %s: %v", what, e.Method, e.Path, e.Err)
}

// Unwrap returns [ErrTimeout] or [ErrUnavailable], and Err.
func (e *TransportError) Unwrap() []error {
	if e.Timeout {
		return []error{ErrTimeout, e.Err}
	}
	return []error{ErrUnavailable, e.Err}
}

// ErrorType names the error for a handler that fails with it: "Timeout" or
// "Unavailable".
func (e *TransportError) ErrorType() string {
	if e.Timeout {
		return "Timeout"
	}
	return "Unavailable"
}

// HandlerError returns the *Error a caller of the RPC name gets when its
// handler returns err, as the worker runtime and the gateway answer it:
// 400 CodeInvalid when err wraps [ErrInvalidParams], else 500
// CodeRemoteError, with ErrorType and Message named as [Bus.Handle] says.
// Test doubles use it to fail as the real bus would; nil gives nil.
func HandlerError(name string, err error) *Error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrInvalidParams) {
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Title: problemTitles[CodeInvalid], Detail: err.Error(), ErrorType: invalidParamsType(err), Message: err.Error()}
	}
	typ := errorType(err)
	return &Error{
		Status: http.StatusInternalServerError, Code: CodeRemoteError, Title: problemTitles[CodeRemoteError],
		Detail: fmt.Sprintf("%s failed: %s: %s", name, typ, err), ErrorType: typ, Message: err.Error(),
	}
}

// invalidParamsExtra is the error_type and message of a handler's
// ErrInvalidParams answer.
func invalidParamsExtra(err error) map[string]any {
	return map[string]any{"error_type": invalidParamsType(err), "message": err.Error()}
}

// invalidParamsType names an error that wraps ErrInvalidParams: as
// errorType does, but "InvalidParams" when nothing in its chain has a name.
func invalidParamsType(err error) string {
	if t := namedType(err); t != "" {
		return t
	}
	return "InvalidParams"
}

// errorTyper is implemented by errors that name their own error_type.
type errorTyper interface{ ErrorType() string }

// errorType names err for a remote_error problem: the first name found in
// its chain (depth first, following Unwrap) among the ErrorType() of an
// error with that method, the error_type of a remote error or the code of a
// gateway answer (*Error: "NoWorker", "Timeout", ...), and "Timeout" or
// "Canceled" for the context's errors; else the name of the first exported
// type found by following Unwrap, without pointer stars (*os.PathError is
// "PathError"), and with its package when the name alone says nothing
// (*url.Error is "url.Error"); else "error" (errors.New, fmt.Errorf and
// other unexported types).
func errorType(err error) string {
	if t := namedType(err); t != "" {
		return t
	}
	return "error"
}

// namedType is errorType without the fallback "error".
func namedType(err error) string {
	if t := declaredType(err); t != "" {
		return t
	}
	var found string
	walkErrors(err, func(e error) bool {
		t := reflect.TypeOf(e)
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		name := t.Name()
		if r, _ := utf8.DecodeRuneInString(name); name == "" || !unicode.IsUpper(r) {
			return false
		}
		if name == "Error" {
			name = path.Base(t.PkgPath()) + "." + name
		}
		found = name
		return true
	})
	return found
}

// declaredType returns the first name err's chain gives itself (see
// errorType), or "".
func declaredType(err error) string {
	var found string
	walkErrors(err, func(e error) bool {
		switch e := e.(type) {
		case errorTyper:
			found = e.ErrorType()
		case *Error:
			found = e.ErrorType
			if found == "" {
				found = camelCode(e.Code)
			}
		}
		switch e {
		case context.DeadlineExceeded:
			found = "Timeout"
		case context.Canceled:
			found = "Canceled"
		}
		return found != ""
	})
	return found
}

// walkErrors calls fn on err and every error it wraps, depth first, until
// fn returns true.
func walkErrors(err error, fn func(error) bool) bool {
	if err == nil {
		return false
	}
	if fn(err) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return walkErrors(u.Unwrap(), fn)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if walkErrors(e, fn) {
				return true
			}
		}
	}
	return false
}

// camelCode turns a problem code into an error type name: no_worker is
// "NoWorker"; "" stays "".
func camelCode(code string) string {
	var b strings.Builder
	for part := range strings.SplitSeq(code, "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}
