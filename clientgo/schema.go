package lightbus

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/invopop/jsonschema"
	validator "github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/lightbus-go/lightbus/internal/schemacheck"
)

// SchemaFor returns the JSON Schema (2020-12) of what encoding/json makes of
// a T: the schema the typed helpers ([NewEvent], [NewRPC]) declare for their
// parameters and results. It is generated with github.com/invopop/jsonschema
// and follows encoding/json:
//
//   - a struct field is required unless its json tag has omitempty or
//     omitzero, or it is a pointer; a pointer also accepts null;
//   - slices, maps and []byte accept null (a nil one encodes as null);
//   - time.Time is a string with format date-time; []byte a base64 string;
//     json.RawMessage and interfaces accept any value;
//   - untagged embedded structs are flattened, as encoding/json does;
//   - properties not in the struct are allowed (encoding/json ignores them);
//   - `jsonschema:"enum=a,enum=b"`, `jsonschema:"minimum=1"` and other
//     invopop/jsonschema tags add keywords; `jsonschema:"description=..."`
//     (or a `jsonschema_description` tag) documents a field.
//
// Types used more than once or recursively are kept in $defs.
func SchemaFor[T any]() (json.RawMessage, error) {
	return schemaForType(reflect.TypeFor[T]())
}

var reflector = &jsonschema.Reflector{Anonymous: true, AllowAdditionalProperties: true}

func schemaForType(t reflect.Type) (json.RawMessage, error) {
	if t == nil {
		return json.RawMessage(`{"$schema":"https://json-schema.org/draft/2020-12/schema"}`), nil
	}
	s := reflector.ReflectFromType(t)
	if s.Ref != "" {
		// The root names a definition: inline it unless it is recursive.
		name := strings.TrimPrefix(s.Ref, "#/$defs/")
		def := s.Definitions[name]
		if def != nil {
			delete(s.Definitions, name)
			probe, err := json.Marshal(s.Definitions)
			if err == nil && !bytes.Contains(probe, []byte(`"#/$defs/`+name+`"`)) && !refersTo(def, "#/$defs/"+name) {
				defs := s.Definitions
				*s = *def
				s.Definitions = defs
				s.Version = jsonschema.Version
			} else {
				s.Definitions[name] = def
			}
		}
	}
	walkSchema(t, s, s.Definitions, map[*jsonschema.Schema]bool{})
	if len(s.Definitions) == 0 {
		s.Definitions = nil
	}
	return json.Marshal(s)
}

// refersTo reports whether s mentions ref anywhere.
func refersTo(s *jsonschema.Schema, ref string) bool {
	data, err := json.Marshal(s)
	return err != nil || bytes.Contains(data, []byte(`"`+ref+`"`))
}

// walkSchema adjusts s, the schema invopop made of t, to what encoding/json
// does with nil pointers, slices and maps.
func walkSchema(t reflect.Type, s *jsonschema.Schema, defs jsonschema.Definitions, seen map[*jsonschema.Schema]bool) {
	if s == nil {
		return
	}
	if s.Ref != "" {
		s = defs[strings.TrimPrefix(s.Ref, "#/$defs/")]
		if s == nil {
			return
		}
	}
	if seen[s] {
		return
	}
	seen[s] = true
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		if s.Items != nil {
			walkSchema(t.Elem(), s.Items, defs, seen)
			if nullableKind(t.Elem()) {
				s.Items = orNull(s.Items)
			}
		}
	case reflect.Map:
		if s.AdditionalProperties != nil && s.AdditionalProperties != jsonschema.FalseSchema && s.AdditionalProperties != jsonschema.TrueSchema {
			walkSchema(t.Elem(), s.AdditionalProperties, defs, seen)
			if nullableKind(t.Elem()) {
				s.AdditionalProperties = orNull(s.AdditionalProperties)
			}
		}
		for k, p := range s.PatternProperties {
			walkSchema(t.Elem(), p, defs, seen)
			if nullableKind(t.Elem()) {
				s.PatternProperties[k] = orNull(p)
			}
		}
	case reflect.Struct:
		if s.Properties != nil {
			walkFields(t, s, defs, seen)
		}
	}
}

// walkFields walks the fields of struct t as encoding/json names them.
func walkFields(t reflect.Type, s *jsonschema.Schema, defs jsonschema.Definitions, seen map[*jsonschema.Schema]bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			et := ft
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				walkFields(et, s, defs, seen)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		p, ok := s.Properties.Get(name)
		if !ok || p == nil {
			continue
		}
		walkSchema(ft, p, defs, seen)
		if nullableKind(ft) {
			s.Properties.Set(name, orNull(p))
		}
		if ft.Kind() == reflect.Pointer {
			s.Required = slices.DeleteFunc(s.Required, func(r string) bool { return r == name })
		}
	}
}

// nullableKind reports whether encoding/json may encode a t as null.
func nullableKind(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map:
		return t != reflect.TypeFor[json.RawMessage]()
	}
	return false
}

// orNull widens s to also accept null, keeping its description on top.
func orNull(s *jsonschema.Schema) *jsonschema.Schema {
	if s == nil || s == jsonschema.TrueSchema || (s.Type == "" && s.Ref == "" && s.AnyOf == nil && s.OneOf == nil && s.Properties == nil) {
		return s // accepts anything already
	}
	if s.Type == "null" {
		return s
	}
	desc := s.Description
	inner := *s
	inner.Description = ""
	return &jsonschema.Schema{Description: desc, AnyOf: []*jsonschema.Schema{&inner, {Type: "null"}}}
}

// mustSchema returns the schema of a T, or nil (no schema) when it cannot be
// generated.
func mustSchema[T any]() json.RawMessage {
	s, err := SchemaFor[T]()
	if err != nil {
		return nil
	}
	return s
}

// compiledSchema is a schema compiled for validation, or the error that
// kept it from compiling.
type compiledSchema struct {
	once   sync.Once
	raw    json.RawMessage
	schema *validator.Schema
	err    error
}

// get compiles the schema on first use.
func (c *compiledSchema) get() (*validator.Schema, error) {
	c.once.Do(func() { c.schema, c.err = schemacheck.Compile(c.raw) })
	return c.schema, c.err
}
