package lightbus

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"time"
)

var (
	timeType          = reflect.TypeFor[time.Time]()
	rawMessageType    = reflect.TypeFor[json.RawMessage]()
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// schemaOf returns a JSON Schema (2020-12) of what encoding/json makes of a
// T, declared to the gateway so that it can check parameters before they
// reach a handler. It errs on the side of accepting: types with their own
// JSON encoding (other than time.Time) and recursive types accept any value,
// nil slices, maps and pointers may be null, and unknown properties are
// allowed. Struct fields without omitempty or omitzero are required.
func schemaOf[T any]() json.RawMessage {
	s := schemaFor(reflect.TypeFor[T](), map[reflect.Type]bool{})
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	data, err := json.Marshal(s)
	if err != nil {
		return nil // only strings, bools, maps and slices: cannot happen
	}
	return data
}

func schemaFor(t reflect.Type, seen map[reflect.Type]bool) map[string]any {
	if t == nil { // an interface type reached through any
		return map[string]any{}
	}
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == rawMessageType, t.Implements(jsonMarshalerType), reflect.PointerTo(t).Implements(jsonMarshalerType):
		return map[string]any{}
	case t.Implements(textMarshalerType), reflect.PointerTo(t).Implements(textMarshalerType):
		return map[string]any{"type": "string"}
	}
	switch t.Kind() {
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Pointer:
		return nullable(schemaFor(t.Elem(), seen))
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": []string{"string", "null"}} // base64
		}
		return map[string]any{"type": []string{"array", "null"}, "items": schemaFor(t.Elem(), seen)}
	case reflect.Array:
		return map[string]any{"type": "array", "items": schemaFor(t.Elem(), seen)}
	case reflect.Map:
		return map[string]any{"type": []string{"object", "null"}, "additionalProperties": schemaFor(t.Elem(), seen)}
	case reflect.Struct:
		if seen[t] {
			return map[string]any{}
		}
		seen[t] = true
		defer delete(seen, t)
		props := map[string]any{}
		required := []string{}
		structFields(t, seen, props, &required)
		s := map[string]any{"type": "object", "properties": props}
		if len(required) > 0 {
			s["required"] = required
		}
		return s
	}
	return map[string]any{} // interfaces accept anything; others do not encode
}

// structFields adds the properties of t's fields as encoding/json names
// them, flattening untagged embedded structs (outer fields win).
func structFields(t reflect.Type, seen map[reflect.Type]bool, props map[string]any, required *[]string) {
	var embedded []reflect.Type
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				embedded = append(embedded, ft)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, dup := props[name]; dup {
			continue
		}
		s := schemaFor(ft, seen)
		if hasOpt(opts, "string") {
			s = map[string]any{} // quoted numbers and bools: accept anything
		}
		props[name] = s
		if !hasOpt(opts, "omitempty") && !hasOpt(opts, "omitzero") {
			*required = append(*required, name)
		}
	}
	for _, et := range embedded {
		if seen[et] {
			continue
		}
		structFields(et, seen, props, required)
	}
}

func hasOpt(opts, opt string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == opt {
			return true
		}
	}
	return false
}

// nullable widens s to also accept null.
func nullable(s map[string]any) map[string]any {
	switch typ := s["type"].(type) {
	case string:
		s["type"] = []string{typ, "null"}
	case []string:
		for _, t := range typ {
			if t == "null" {
				return s
			}
		}
		s["type"] = append(typ, "null")
	}
	return s
}
