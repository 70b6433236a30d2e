// Package schemacheck compiles JSON Schemas and validates JSON documents
// against them, reporting each violation by JSON Pointer. The gateway (which
// validates fires, calls and results) and the Go client (which checks
// parameters before sending them) both use it, so that they report the same
// violations in the same words.
//
// It is built on github.com/santhosh-tekuri/jsonschema/v6.
package schemacheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Violation is one way in which a JSON document failed its schema.
type Violation struct {
	// Pointer is a JSON Pointer (RFC 6901) into the document, e.g.
	// "/email"; a missing required property is named by its own pointer.
	// The whole document is "".
	Pointer string `json:"pointer"`
	// Message says what is wrong there.
	Message string `json:"message"`
}

// errNoLoader refuses every reference to a document outside the schema.
var errNoLoader = errors.New("a schema may not refer to other documents")

type noLoader struct{}

func (noLoader) Load(url string) (any, error) { return nil, fmt.Errorf("%w (%s)", errNoLoader, url) }

// Compile compiles one JSON Schema document (draft 2020-12 unless its
// $schema says otherwise), asserting formats such as date-time, and loading
// nothing it refers to outside itself: a $ref to another document is an
// error. An empty (or all-space) raw compiles to nil, which [Validate]
// takes as accepting everything.
func Compile(raw json.RawMessage) (*jsonschema.Schema, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	const url = "mem:///schema.json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	return c.Compile(url)
}

// ErrInvalidJSON is returned (wrapped) by [Validate] for a document that is
// not valid JSON.
var ErrInvalidJSON = errors.New("not valid JSON")

// Validate checks data, one JSON value, against s (nil accepts everything)
// and returns its violations sorted by pointer, or nil when data is valid.
// There is one violation per failing leaf keyword; each missing required
// property has its own pointer (the object's pointer and the escaped
// property name); the failing "null" branch of a nullable value is left
// out, as its other branch says more; equal violations are reported once.
// Data that is not valid JSON is an error wrapping [ErrInvalidJSON].
func Validate(s *jsonschema.Schema, data []byte) ([]Violation, error) {
	if s == nil {
		return nil, nil
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidJSON, err)
	}
	err = s.Validate(v)
	if err == nil {
		return nil, nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return nil, err
	}
	return violations(ve), nil
}

// printer renders validation messages.
var printer = message.NewPrinter(language.English)

// violations flattens a validation error into one violation per failing
// leaf keyword.
func violations(ve *jsonschema.ValidationError) []Violation {
	var out []Violation
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		ptr := jsonPointer(e.InstanceLocation)
		switch k := e.ErrorKind.(type) {
		case *kind.Required:
			for _, m := range k.Missing {
				out = append(out, Violation{Pointer: ptr + "/" + escapePointer(m), Message: "missing required property"})
			}
			return
		case *kind.Type:
			if len(k.Want) == 1 && k.Want[0] == "null" {
				return // the other branch of the nullable says more
			}
		}
		out = append(out, Violation{Pointer: ptr, Message: e.ErrorKind.LocalizedString(printer)})
	}
	walk(ve)
	if len(out) == 0 {
		out = append(out, Violation{Pointer: jsonPointer(ve.InstanceLocation), Message: ve.ErrorKind.LocalizedString(printer)})
	}
	slices.SortStableFunc(out, func(a, b Violation) int { return strings.Compare(a.Pointer, b.Pointer) })
	return slices.Compact(out)
}

// jsonPointer joins reference tokens into a JSON Pointer.
func jsonPointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(escapePointer(t))
	}
	return b.String()
}

// escapePointer escapes one JSON Pointer reference token: ~ as ~0, / as ~1.
func escapePointer(tok string) string {
	return strings.ReplaceAll(strings.ReplaceAll(tok, "~", "~0"), "/", "~1")
}
