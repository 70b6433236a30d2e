package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// specRouter loads openapi.yaml once, validates the document itself and
// builds the router that maps requests to its operations.
var specRouter = sync.OnceValues(func() (routers.Router, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openAPI)
	if err != nil {
		return nil, fmt.Errorf("load openapi.yaml: %w", err)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		return nil, fmt.Errorf("openapi.yaml is not a valid document: %w", err)
	}
	closeObjects(doc)
	if err := doc.Validate(context.Background(), openapi3.EnableExamplesValidation()); err != nil {
		return nil, fmt.Errorf("an example in openapi.yaml has a property its schema does not declare: %w", err)
	}
	// The router matches on path only; the servers entry names a host the
	// tests do not use.
	doc.Servers = nil
	return legacy.NewRouter(doc)
})

// closeObjects makes every object schema of doc that does not say otherwise
// refuse unknown properties (additionalProperties: false), after merging
// each allOf into one object. The document leaves them open, as JSON
// Schema does by default and as clients may assume for fields added later;
// the tests close them so that a field the gateway sends or takes that the
// spec does not declare (a rename, a field removed from the spec) fails.
// Schemas that allow more on purpose (additionalProperties: true, such as
// Params) stay open.
func closeObjects(doc *openapi3.T) {
	seen := map[*openapi3.Schema]bool{}
	var visit func(ref *openapi3.SchemaRef)
	visit = func(ref *openapi3.SchemaRef) {
		if ref == nil || ref.Value == nil || seen[ref.Value] {
			return
		}
		s := ref.Value
		seen[s] = true
		for _, p := range s.Properties {
			visit(p)
		}
		visit(s.Items)
		visit(s.AdditionalProperties.Schema)
		for _, list := range []openapi3.SchemaRefs{s.AllOf, s.OneOf, s.AnyOf} {
			for _, m := range list {
				visit(m)
			}
		}
		if len(s.AllOf) > 0 {
			merged := openapi3.Schemas{}
			var required []string
			open := false
			for _, m := range s.AllOf {
				maps.Copy(merged, m.Value.Properties)
				required = append(required, m.Value.Required...)
				open = open || m.Value.AdditionalProperties.Has != nil && *m.Value.AdditionalProperties.Has
			}
			s.AllOf = nil
			s.Type = &openapi3.Types{openapi3.TypeObject}
			s.Properties = merged
			s.Required = required
			if open {
				s.AdditionalProperties.Has = &open
			}
		}
		if s.Type.Is(openapi3.TypeObject) && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil {
			s.AdditionalProperties.Has = new(bool)
		}
	}
	for _, ref := range doc.Components.Schemas {
		visit(ref)
	}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			if op.RequestBody != nil && op.RequestBody.Value != nil {
				for _, mt := range op.RequestBody.Value.Content {
					visit(mt.Schema)
				}
			}
			for _, resp := range op.Responses.Map() {
				if resp.Value != nil {
					for _, mt := range resp.Value.Content {
						visit(mt.Schema)
					}
				}
			}
		}
	}
}

// specChecked wraps the gateway's handler so that every exchange of a test
// is checked against openapi.yaml, failing the test on any drift:
//
//   - Every response is validated against the operation's declared
//     responses: its status must be declared, and its headers and body must
//     match the declared schema for its content type.
//   - Every request is validated too, but only to classify it, never to
//     block it: hostile tests send invalid requests on purpose, and the
//     gateway's answer to those is what they test. A request the spec calls
//     invalid must be refused (a 4xx); a 2xx means the gateway accepts
//     something the spec forbids.
//
// Requests to paths the spec does not describe (the debug handler, unknown
// routes) pass unchecked: TestRoutesMatchOpenAPI keeps the route table and
// the spec in step.
func specChecked(t *testing.T, next http.Handler) http.Handler {
	t.Helper()
	router, err := specRouter()
	if err != nil {
		t.Fatal(err)
	}
	report := func(format string, args ...any) {
		defer func() { _ = recover() }() // a request after the test ended
		t.Errorf(format, args...)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route, pathParams, err := router.FindRoute(r)
		if err != nil {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			// The client went away or the body is over the server's limit:
			// nothing to check, let the handler see the same failure.
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), errReader{err}))
			next.ServeHTTP(w, r)
			return
		}
		ctx := r.Context()
		reqInput := &openapi3filter.RequestValidationInput{
			Request:    r.Clone(ctx),
			PathParams: pathParams,
			Route:      route,
			Options: &openapi3filter.Options{
				MultiError:          true,
				AuthenticationFunc:  openapi3filter.NoopAuthenticationFunc,
				SkipSettingDefaults: true,
			},
		}
		reqInput.Request.Body = io.NopCloser(bytes.NewReader(body))
		reqErr := openapi3filter.ValidateRequest(ctx, reqInput)

		r.Body = io.NopCloser(bytes.NewReader(body))
		if strings.Contains(r.Header.Get("Accept"), "text/event-stream") || route.Operation.OperationID == "streamEvents" {
			// A stream does not end: checked as it starts, then passed on.
			next.ServeHTTP(&streamChecked{ResponseWriter: w, check: func(status int, header http.Header) {
				exchange := fmt.Sprintf("%s %s answered %d", r.Method, r.URL.RequestURI(), status)
				if reqErr != nil && status < 400 {
					report("openapi.yaml drift: %s, but the spec calls the request invalid: %v", exchange, reqErr)
				}
				if route.Operation.Responses.Status(status) == nil {
					report("openapi.yaml drift: %s, a status the spec does not declare", exchange)
				}
				if ct := header.Get("Content-Type"); status == http.StatusOK && ct != "text/event-stream" {
					report("openapi.yaml drift: %s with Content-Type %q", exchange, ct)
				}
			}}, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		resp := rec.Result()
		respBody := rec.Body.Bytes()
		defer func() {
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(respBody)
		}()
		if ctx.Err() != nil {
			return // the client went away: the answer reaches no one
		}

		exchange := fmt.Sprintf("%s %s answered %d", r.Method, r.URL.RequestURI(), resp.StatusCode)
		if reqErr == nil {
			reqInput.Request.Body = io.NopCloser(bytes.NewReader(body))
		} else if resp.StatusCode < 400 {
			report("openapi.yaml drift: %s, but the spec calls the request invalid: %v", exchange, reqErr)
		}
		respInput := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: reqInput,
			Status:                 resp.StatusCode,
			Header:                 resp.Header,
			Options: &openapi3filter.Options{
				MultiError:            true,
				IncludeResponseStatus: true,
			},
		}
		respInput.SetBodyBytes(respBody)
		if err := openapi3filter.ValidateResponse(ctx, respInput); err != nil {
			report("openapi.yaml drift: %s with a response the spec does not allow: %v\nbody: %s",
				exchange, err, truncate(respBody, 2048))
		}
	})
}

// streamChecked checks a stream's status and header as they are written,
// and passes everything on as it comes.
type streamChecked struct {
	http.ResponseWriter
	check   func(status int, header http.Header)
	checked bool
}

func (s *streamChecked) WriteHeader(status int) {
	if !s.checked {
		s.checked = true
		s.check(status, s.Header())
	}
	s.ResponseWriter.WriteHeader(status)
}

func (s *streamChecked) Write(b []byte) (int, error) {
	if !s.checked {
		s.WriteHeader(http.StatusOK)
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController flush and set deadlines.
func (s *streamChecked) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// errReader fails every read with err.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// truncate shortens b to at most n bytes for a failure message.
func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return strings.ToValidUTF8(string(b[:n]), "") + "…"
}

// TestOpenAPIDocumentValid checks that openapi.yaml is a valid OpenAPI 3.1
// document whose every example matches its schema.
func TestOpenAPIDocumentValid(t *testing.T) {
	t.Parallel()

	if _, err := specRouter(); err != nil {
		t.Fatal(err)
	}
}
