package schemacheck

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

func mustCompile(t *testing.T, raw string) func(string) ([]Violation, error) {
	t.Helper()
	s, err := Compile(json.RawMessage(raw))
	if err != nil {
		t.Fatalf("schema %s does not compile: %v", raw, err)
	}
	return func(doc string) ([]Violation, error) { return Validate(s, []byte(doc)) }
}

func TestValidate(t *testing.T) {
	t.Parallel()
	object := mustCompile(t, `{"type":"object","required":["a/b","c"],
		"properties":{"n":{"type":"integer"},"when":{"type":"string","format":"date-time"},
		"maybe":{"anyOf":[{"type":"string"},{"type":"null"}]}}}`)
	nested := mustCompile(t, `{"type":"object","properties":{
		"a~b":{"type":"object","required":["x/y","p~q"],"properties":{"c/d":{"type":"array","items":{"type":"object","required":["id"],"properties":{"id":{"type":"string"}}}}}},
		"list":{"type":"array","items":{"type":"integer","minimum":1}}}}`)
	nullable := mustCompile(t, `{"type":"object","properties":{
		"s":{"type":["string","null"]},
		"o":{"anyOf":[{"type":"object","required":["id"]},{"type":"null"}]},
		"n":{"type":"null"}}}`)
	formats := mustCompile(t, `{"type":"object","properties":{
		"at":{"type":"string","format":"date-time"},"day":{"type":"string","format":"date"},
		"mail":{"type":"string","format":"email"},"id":{"type":"string","format":"uuid"}}}`)
	boolean := mustCompile(t, `{"type":"boolean"}`)
	keywords := mustCompile(t, `{"type":"object","additionalProperties":false,"properties":{
		"color":{"enum":["red","green"]},"size":{"type":"integer","minimum":1,"multipleOf":2},
		"name":{"type":"string","minLength":2,"pattern":"^[a-z]+$"}}}`)
	for _, tc := range []struct {
		name     string
		validate func(string) ([]Violation, error)
		doc      string
		want     []Violation // nil: valid
	}{
		{"valid", object, `{"a/b": 1, "c": 2, "maybe": null, "when": "2026-11-25T10:00:00Z"}`, nil},
		{"required, type, nullable, date-time", object, `{"c": 1, "n": 1.5, "when": "noon", "maybe": 7}`, []Violation{
			{"/a~1b", "missing required property"},
			{"/maybe", "got number, want string"},
			{"/n", "got number, want integer"},
			{"/when", "'noon' is not valid date-time: less than 20 characters long"},
		}},
		{"each missing property its own pointer", object, `{}`, []Violation{
			{"/a~1b", "missing required property"}, {"/c", "missing required property"}}},
		{"not an object", object, `[1]`, []Violation{{"", "got array, want object"}}},
		{"root", boolean, `"yes"`, []Violation{{"", "got string, want boolean"}}},
		{"root valid", boolean, `false`, nil},
		{"escaped nested pointers", nested, `{"a~b":{"c/d":[{"id":"x"},{"id":1},{}]},"list":[1,0,"2"]}`, []Violation{
			{"/a~0b/c~1d/1/id", "got number, want string"},
			{"/a~0b/c~1d/2/id", "missing required property"},
			{"/a~0b/p~0q", "missing required property"},
			{"/a~0b/x~1y", "missing required property"},
			{"/list/1", "minimum: got 0, want 1"},
			{"/list/2", "got string, want integer"},
		}},
		{"nullable values accept null", nullable, `{"s":null,"o":null,"n":null}`, nil},
		{"type list with null", nullable, `{"s":1}`, []Violation{{"/s", "got number, want null or string"}}},
		{"anyOf with null drops the null branch", nullable, `{"o":{}}`, []Violation{{"/o/id", "missing required property"}}},
		{"anyOf with null, wrong type", nullable, `{"o":"x"}`, []Violation{{"/o", "got string, want object"}}},
		// A value whose only allowed type is null fails with a "null" type
		// error too, which the rule above drops: alone, it leaves only the
		// document-level fallback; beside other violations, none at all.
		{"null only", nullable, `{"n":1}`, []Violation{{"", "jsonschema validation failed with 'mem:///schema.json#'"}}},
		{"null only, beside another violation", nullable, `{"n":1,"s":1}`, []Violation{{"/s", "got number, want null or string"}}},
		{"formats valid", formats, `{"at":"2026-11-25T10:00:00.5+01:00","day":"2026-11-25","mail":"a@example.com","id":"01936f6e-8a2b-7c3d-9e4f-5a6b7c8d9e0f"}`, nil},
		{"formats", formats, `{"at":"2026-11-25 10:00:00Z","day":"2026-13-01","mail":"nobody","id":"123"}`, []Violation{
			{"/at", "'2026-11-25 10:00:00Z' is not valid date-time: 11th character must be t or T"},
			{"/day", "'2026-13-01' is not valid date: parsing time \"2026-13-01\": month out of range"},
			{"/id", "'123' is not valid uuid: must have 5 elements"},
			{"/mail", "'nobody' is not valid email: missing @"},
		}},
		{"keywords", keywords, `{"color":"blue","size":3,"name":"A","extra":1}`, []Violation{
			{"", "additional properties 'extra' not allowed"},
			{"/color", "value must be one of 'red', 'green'"},
			{"/name", "minLength: got 1, want 2"},
			{"/name", "'A' does not match pattern '^[a-z]+$'"},
			{"/size", "multipleOf: got 3, want 2"},
		}},
	} {
		got, err := tc.validate(tc.doc)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(tc.want)
			t.Errorf("%s: violations\n%s\nwant\n%s", tc.name, g, w)
		}
	}
}

// Equal violations from several branches are reported once, and violations
// at the same pointer keep the schema's order.
func TestValidateCompactsAndSortsStably(t *testing.T) {
	t.Parallel()
	v := mustCompile(t, `{"allOf":[
		{"properties":{"b":{"type":"string"},"a":{"type":"string"}}},
		{"properties":{"b":{"type":"string","maxLength":0},"a":{"type":"string"}}}]}`)
	got, err := v(`{"a":1,"b":"x"}`)
	if err != nil {
		t.Fatal(err)
	}
	want := []Violation{{"/a", "got number, want string"}, {"/b", "maxLength: got 1, want 0"}}
	if !slices.Equal(got, want) {
		t.Errorf("violations %+v\nwant %+v", got, want)
	}
}

func TestValidateWithoutSchema(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"", "  \n", "true", "{}"} {
		s, err := Compile(json.RawMessage(raw))
		if err != nil {
			t.Fatalf("compile %q: %v", raw, err)
		}
		if (s == nil) != (strings.TrimSpace(raw) == "") {
			t.Errorf("compile %q = %v", raw, s)
		}
		if vs, err := Validate(s, []byte(`{"anything": [1, null]}`)); err != nil || vs != nil {
			t.Errorf("schema %q: %v, %v", raw, vs, err)
		}
	}
	never := mustCompile(t, `false`)
	if vs, err := never(`{}`); err != nil || len(vs) != 1 || vs[0].Pointer != "" {
		t.Errorf("schema false: %+v, %v", vs, err)
	}
}

func TestValidateInvalidJSON(t *testing.T) {
	t.Parallel()
	v := mustCompile(t, `{"type":"object"}`)
	for _, doc := range []string{``, `{`, `{"a":1}x`, `nul`, `{"a":1} {"b":2}`} {
		vs, err := v(doc)
		if !errors.Is(err, ErrInvalidJSON) || vs != nil {
			t.Errorf("document %q: %v, %v; want ErrInvalidJSON", doc, vs, err)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ raw, want string }{
		{`{"$ref":"file:///etc/passwd"}`, "a schema may not refer to other documents (file:///etc/passwd)"},
		{`{"$ref":"https://example.com/schema.json"}`, "a schema may not refer to other documents (https://example.com/schema.json)"},
		{`{"properties":{"a":{"$ref":"other.json#/x"}}}`, "a schema may not refer to other documents (mem:///other.json)"},
		{`{"type": 5}`, ""},
		{`{"type": "thing"}`, ""},
		{`{`, ""},
		{`5`, ""},
	} {
		s, err := Compile(json.RawMessage(tc.raw))
		if err == nil || s != nil {
			t.Errorf("compile %s: %v, %v; want an error", tc.raw, s, err)
			continue
		}
		if tc.want != "" && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("compile %s: %v; want it to say %q", tc.raw, err, tc.want)
		}
	}
	// References inside the document are fine.
	v := mustCompile(t, `{"$defs":{"id":{"type":"string"}},"properties":{"id":{"$ref":"#/$defs/id"}}}`)
	if vs, err := v(`{"id":1}`); err != nil || !slices.Equal(vs, []Violation{{"/id", "got number, want string"}}) {
		t.Errorf("internal $ref: %+v, %v", vs, err)
	}
	// An older draft is honoured when the schema names it.
	v = mustCompile(t, `{"$schema":"http://json-schema.org/draft-07/schema#","items":[{"type":"string"}]}`)
	if vs, err := v(`[1]`); err != nil || !slices.Equal(vs, []Violation{{"/0", "got number, want string"}}) {
		t.Errorf("draft-07 tuple items: %+v, %v", vs, err)
	}
}

func TestEscapePointer(t *testing.T) {
	t.Parallel()
	for tok, want := range map[string]string{"": "", "a": "a", "a/b": "a~1b", "a~b": "a~0b", "~1": "~01", "/~": "~1~0", "~/~/": "~0~1~0~1"} {
		if got := escapePointer(tok); got != want {
			t.Errorf("escapePointer(%q) = %q, want %q", tok, got, want)
		}
	}
	if got := jsonPointer([]string{"a/b", "0", "~"}); got != "/a~1b/0/~0" {
		t.Errorf("jsonPointer = %q", got)
	}
	if got := jsonPointer(nil); got != "" {
		t.Errorf("jsonPointer(nil) = %q", got)
	}
}
