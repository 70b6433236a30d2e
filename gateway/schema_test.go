package gateway

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/lightbus-go/lightbus/internal/schemacheck"
)

func TestSchemaDocumentCanonical(t *testing.T) {
	t.Parallel()
	parse := func(s string) *SchemaDocument {
		t.Helper()
		var d SchemaDocument
		if err := json.Unmarshal([]byte(s), &d); err != nil {
			t.Fatal(err)
		}
		return &d
	}
	a := parse(`{"api": "auth", "events": {"b": {"params_schema": {"type": "object", "minimum": 1.50}}, "a": {}}}`)
	b := parse(`{"rpcs": {}, "events": {"a": {}, "b": {"params_schema": {"minimum": 1.50, "type":"object"}}}, "api": "auth"}`)
	ca, ha, err := a.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	cb, hb, err := b.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if string(ca) != string(cb) || ha != hb || len(ha) != 64 {
		t.Fatalf("same meaning, different canonical forms:\n%s %s\n%s %s", ca, ha, cb, hb)
	}
	want := `{"api":"auth","events":{"a":{},"b":{"params_schema":{"minimum":1.50,"type":"object"}}},"rpcs":{}}`
	if string(ca) != want {
		t.Errorf("canonical form %s, want %s", ca, want)
	}
	off := false
	a.Validate = &off
	if _, h, _ := a.Canonical(); h == ha {
		t.Error("validate: false does not change the hash")
	}
}

func TestSchemaDocumentCheck(t *testing.T) {
	t.Parallel()
	for doc, wantErr := range map[string]string{
		`{"api": "auth", "events": {"e": {"params_schema": {"type": "object"}}}, "rpcs": {"r": {"result_schema": true}}}`: "",
		`{"api": "bad name"}`:                                           "invalid API name",
		`{"api": "auth", "events": {"bad-name": {}}}`:                   "invalid event name",
		`{"api": "auth", "rpcs": {"r": {"params_schema": [1]}}}`:        "rpc auth.r params_schema",
		`{"api": "auth", "events": {"e": {"params_schema": "string"}}}`: "event auth.e params_schema",
		`{"api": "auth", "rpcs": {"r": {"result_schema": 5}}}`:          "rpc auth.r result_schema",
	} {
		var d SchemaDocument
		if err := json.Unmarshal([]byte(doc), &d); err != nil {
			t.Fatal(err)
		}
		err := d.Check()
		if wantErr == "" && err != nil || wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr) || ErrorCode(err) != EInvalid) {
			t.Errorf("%s: Check() = %v, want %q", doc, err, wantErr)
		}
	}
}

func TestAPIDeclarationSchemaDocument(t *testing.T) {
	t.Parallel()
	untyped := APIDeclaration{Name: "auth", Events: []EventDeclaration{{Name: "e"}}, RPCs: []RPCDeclaration{{Name: "r", TimeoutMS: 5}}}
	if d := untyped.SchemaDocument(); d != nil {
		t.Fatalf("a declaration without schemas has document %+v", d)
	}
	typed := untyped
	typed.RPCs = []RPCDeclaration{{Name: "r", ResultSchema: json.RawMessage(`{"type":"boolean"}`)}}
	d := typed.SchemaDocument()
	if d == nil || d.API != "auth" || d.Events["e"].ParamsSchema != nil || string(d.RPCs["r"].ResultSchema) != `{"type":"boolean"}` || !d.Validates() {
		t.Fatalf("document %+v", d)
	}
}

func TestCompileAndValidate(t *testing.T) {
	t.Parallel()
	cache := NewSchemaCache(SchemaCacheConfig{})
	doc := &SchemaDocument{API: "auth",
		Events: map[string]EventSchema{"e": {ParamsSchema: json.RawMessage(`{"type":"object","required":["a/b","c"],
			"properties":{"n":{"type":"integer"},"when":{"type":"string","format":"date-time"},
			"maybe":{"anyOf":[{"type":"string"},{"type":"null"}]}}}`)}, "free": {}},
		RPCs: map[string]RPCSchema{"r": {ResultSchema: json.RawMessage(`{"type":"boolean"}`)}}}
	canon, hash, err := doc.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	api, err := cache.Compile(&SchemaVersion{API: "auth", Version: 3, Hash: hash, Schema: canon})
	if err != nil {
		t.Fatal(err)
	}
	again, _ := cache.Compile(&SchemaVersion{API: "auth", Version: 4, Hash: hash, Schema: canon})
	if api.Version != 3 || again.Version != 4 {
		t.Errorf("versions %d, %d", api.Version, again.Version)
	}
	e, ok := api.Event("e")
	if !ok || e == nil {
		t.Fatal("event e not compiled")
	}
	if free, ok := api.Event("free"); !ok || free != nil {
		t.Fatal("event free: want declared without schema")
	}
	if _, ok := api.Event("other"); ok {
		t.Fatal("an undeclared event is known")
	}
	vs, err := ValidateJSON(e, []byte(`{"c": 1, "n": 1.5, "when": "noon", "maybe": 7}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Violation{
		{Pointer: "/a~1b", Message: "missing required property"},
		{Pointer: "/maybe", Message: "got number, want string"},
		{Pointer: "/n", Message: "got number, want integer"},
		{Pointer: "/when", Message: "'noon' is not valid date-time: less than 20 characters long"},
	}
	if !slices.Equal(vs, want) {
		t.Errorf("violations %+v\nwant %+v", vs, want)
	}
	if vs, err := ValidateJSON(e, []byte(`{"a/b": 1, "c": 2, "maybe": null}`)); err != nil || vs != nil {
		t.Errorf("valid parameters: %v, %v", vs, err)
	}
	if vs, err := ValidateJSON(nil, []byte(`{"anything": 1}`)); err != nil || vs != nil {
		t.Errorf("no schema: %v, %v", vs, err)
	}
	_, result, ok := api.RPC("r")
	if !ok || result == nil {
		t.Fatal("rpc r not compiled")
	}
	if vs, _ := ValidateJSON(result, []byte(`"yes"`)); !slices.Equal(vs, []Violation{{Pointer: "", Message: "got string, want boolean"}}) {
		t.Errorf("result violations %+v", vs)
	}

	for _, bad := range []string{`{"type": 5}`, `{"$ref": "https://example.com/schema.json"}`, `{"$ref": "file:///etc/passwd"}`} {
		d := &SchemaDocument{API: "auth", Events: map[string]EventSchema{"e": {ParamsSchema: json.RawMessage(bad)}}}
		canon, hash, _ := d.Canonical()
		if _, err := cache.Compile(&SchemaVersion{API: "auth", Hash: hash, Schema: canon}); ErrorCode(err) != EInvalid || !strings.Contains(err.Error(), "auth.e") {
			t.Errorf("compile %s: %v, want invalid naming the event", bad, err)
		}
	}
}

func BenchmarkValidateJSON(b *testing.B) {
	raw, err := json.Marshal(map[string]any{"type": "object", "required": []string{"username", "email"},
		"properties": map[string]any{"username": map[string]any{"type": "string"}, "email": map[string]any{"type": "string"},
			"tags": map[string]any{"type": "array", "items": map[string]any{"type": "string"}}}})
	if err != nil {
		b.Fatal(err)
	}
	s, err := schemacheck.Compile(raw)
	if err != nil {
		b.Fatal(err)
	}
	params := []byte(`{"username": "sally", "email": "sally@example.com", "tags": ["a", "b", "c"]}`)
	b.ReportAllocs()
	for b.Loop() {
		if vs, err := ValidateJSON(s, params); err != nil || vs != nil {
			b.Fatal(vs, err)
		}
	}
}

func TestSchemaDocumentBounds(t *testing.T) {
	t.Parallel()

	doc := &SchemaDocument{API: "auth", Events: map[string]EventSchema{}, RPCs: map[string]RPCSchema{}}
	for i := range MaxAPIMembers {
		doc.Events[fmt.Sprintf("e%d", i)] = EventSchema{}
		doc.RPCs[fmt.Sprintf("r%d", i)] = RPCSchema{}
	}
	if err := doc.Check(); err != nil {
		t.Fatalf("%d events and RPCs: %v", MaxAPIMembers, err)
	}
	doc.Events["one_more"] = EventSchema{}
	if err := doc.Check(); ErrorCode(err) != EInvalid {
		t.Fatalf("%d events: %v, want invalid", MaxAPIMembers+1, err)
	}
	delete(doc.Events, "one_more")
	doc.RPCs["one_more"] = RPCSchema{}
	if err := doc.Check(); ErrorCode(err) != EInvalid {
		t.Fatalf("%d RPCs: %v, want invalid", MaxAPIMembers+1, err)
	}

	s := NewService(ServiceConfig{Schemas: hangingStores{}})
	if _, err := s.Schema(t.Context(), "auth", MaxSchemaVersion+1); ErrorCode(err) != EInvalid {
		t.Fatalf("version %d: %v, want invalid", MaxSchemaVersion+1, err)
	}
}
