package lightbus

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/internal/schemacheck"
)

type schemaBase struct {
	ID      string `json:"id"`
	Ignored string `json:"-"`
}

type schemaNode struct {
	Name     string        `json:"name"`
	Children []*schemaNode `json:"children,omitempty"`
}

type schemaParams struct {
	schemaBase
	Username string          `json:"username"`
	Email    string          `json:"email,omitempty"`
	Age      int             `json:"age,omitzero"`
	Score    float64         `json:"score"`
	Admin    bool            `json:"admin"`
	Tags     []string        `json:"tags"`
	Labels   map[string]int  `json:"labels"`
	Avatar   []byte          `json:"avatar"`
	Born     time.Time       `json:"born"`
	Manager  *schemaBase     `json:"manager"`
	Extra    json.RawMessage `json:"extra"`
	Anything any             `json:"anything"`
	Quoted   int             `json:"quoted,string"`
	Tree     schemaNode      `json:"tree"`
	Untagged string
	private  string
}

type schemaEnum struct {
	Color string  `json:"color" jsonschema:"enum=red,enum=green" jsonschema_description:"the colour"`
	Size  int     `json:"size,omitempty" jsonschema:"minimum=1,description=how big"`
	Note  *string `json:"note"`
}

// schemaTestType returns the schema of a T, compiled.
func schemaTestCase[T any](t *testing.T) (json.RawMessage, func(string) []Violation) {
	t.Helper()
	raw, err := SchemaFor[T]()
	if err != nil {
		t.Fatal(err)
	}
	s, err := schemacheck.Compile(raw)
	if err != nil {
		t.Fatalf("schema %s does not compile: %v", raw, err)
	}
	return raw, func(instance string) []Violation {
		vs, err := schemacheck.Validate(s, []byte(instance))
		if err != nil {
			t.Fatalf("validate %s: %v", instance, err)
		}
		return vs
	}
}

func TestSchemaFor(t *testing.T) {
	t.Parallel()
	valid := `{"id":"1","username":"u","score":1.5,"admin":true,"tags":["a"],"labels":{"x":1},"avatar":"AAE=",
		"born":"2026-11-25T10:00:00Z","manager":{"id":"2"},"extra":[1],"anything":null,"quoted":"7",
		"tree":{"name":"r","children":[{"name":"c","children":null},null]},"Untagged":"u","unknown":1}`
	_, params := schemaTestCase[schemaParams](t)
	_, node := schemaTestCase[schemaNode](t)
	_, enum := schemaTestCase[schemaEnum](t)
	_, boolean := schemaTestCase[bool](t)
	_, list := schemaTestCase[[]*schemaBase](t)
	_, dict := schemaTestCase[map[string]schemaBase](t)
	_, anything := schemaTestCase[any](t)
	for _, tc := range []struct {
		name     string
		validate func(string) []Violation
		instance string
		want     []Violation // nil: valid
	}{
		{"all fields", params, valid, nil},
		{"nil slices, maps, bytes and pointers", params, strings.NewReplacer(`["a"]`, "null", `{"x":1}`, "null", `"AAE="`, "null", `{"id":"2"}`, "null").Replace(valid), nil},
		{"omitempty, omitzero and pointer fields are optional", params, strings.NewReplacer(`"manager":{"id":"2"},`, "").Replace(valid), nil},
		{"missing required fields", params, `{"id":"1"}`, []Violation{
			{Pointer: "/Untagged", Message: "missing required property"}, {Pointer: "/admin", Message: "missing required property"}, {Pointer: "/anything", Message: "missing required property"},
			{Pointer: "/avatar", Message: "missing required property"}, {Pointer: "/born", Message: "missing required property"}, {Pointer: "/extra", Message: "missing required property"},
			{Pointer: "/labels", Message: "missing required property"}, {Pointer: "/quoted", Message: "missing required property"}, {Pointer: "/score", Message: "missing required property"},
			{Pointer: "/tags", Message: "missing required property"}, {Pointer: "/tree", Message: "missing required property"}, {Pointer: "/username", Message: "missing required property"}}},
		{"embedded struct field required", params, strings.Replace(valid, `"id":"1",`, "", 1), []Violation{{Pointer: "/id", Message: "missing required property"}}},
		{"wrong types", params, strings.NewReplacer(`"score":1.5`, `"score":"high"`, `"admin":true`, `"admin":1`).Replace(valid), []Violation{
			{Pointer: "/admin", Message: "got number, want boolean"}, {Pointer: "/score", Message: "got string, want number"}}},
		{"integer", params, strings.Replace(valid, `"score":1.5`, `"score":1.5,"age":1.5`, 1), []Violation{{Pointer: "/age", Message: "got number, want integer"}}},
		{"time.Time is date-time", params, strings.Replace(valid, `2026-11-25T10:00:00Z`, `yesterday`, 1), []Violation{{Pointer: "/born", Message: "'yesterday' is not valid date-time: less than 20 characters long"}}},
		{"nested slice of structs", params, strings.Replace(valid, `{"name":"c","children":null}`, `{"children":[]}`, 1), []Violation{{Pointer: "/tree/children/0/name", Message: "missing required property"}}},
		{"map values", params, strings.Replace(valid, `{"x":1}`, `{"x":"one"}`, 1), []Violation{{Pointer: "/labels/x", Message: "got string, want integer"}}},
		{"nested pointer struct", params, strings.Replace(valid, `{"id":"2"}`, `{"id":2}`, 1), []Violation{{Pointer: "/manager/id", Message: "got number, want string"}}},
		{"recursive type", node, `{"name":"a","children":[{"name":"b","children":[{"name":1}]}]}`, []Violation{{Pointer: "/children/0/children/0/name", Message: "got number, want string"}}},
		{"enum", enum, `{"color":"blue","note":null}`, []Violation{{Pointer: "/color", Message: "value must be one of 'red', 'green'"}}},
		{"enum ok, minimum", enum, `{"color":"red","size":0,"note":"x"}`, []Violation{{Pointer: "/size", Message: "minimum: got 0, want 1"}}},
		{"pointer optional", enum, `{"color":"green"}`, nil},
		{"bool", boolean, `true`, nil},
		{"not bool", boolean, `"yes"`, []Violation{{Pointer: "", Message: "got string, want boolean"}}},
		{"slice of pointers", list, `[{"id":"a"},null,{}]`, []Violation{{Pointer: "/2/id", Message: "missing required property"}}},
		{"map of structs", dict, `{"a":{"id":"x"},"b":{}}`, []Violation{{Pointer: "/b/id", Message: "missing required property"}}},
		{"any", anything, `[1,"x",null]`, nil},
	} {
		got := tc.validate(tc.instance)
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(tc.want)
		if string(g) != string(w) {
			t.Errorf("%s: violations\n%s\nwant\n%s", tc.name, g, w)
		}
	}
}

func TestSchemaForKeywords(t *testing.T) {
	t.Parallel()
	raw, _ := schemaTestCase[schemaEnum](t)
	var s struct {
		Schema     string                     `json:"$schema"`
		ID         string                     `json:"$id"`
		Properties map[string]json.RawMessage `json:"properties"`
		Required   []string                   `json:"required"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	if s.Schema != "https://json-schema.org/draft/2020-12/schema" || s.ID != "" {
		t.Errorf("$schema %q, $id %q", s.Schema, s.ID)
	}
	for prop, want := range map[string]string{
		"color": `{"type":"string","enum":["red","green"],"description":"the colour"}`,
		"size":  `{"type":"integer","minimum":1,"description":"how big"}`,
		"note":  `{"anyOf":[{"type":"string"},{"type":"null"}]}`,
	} {
		if got := string(s.Properties[prop]); got != want {
			t.Errorf("property %s = %s, want %s", prop, got, want)
		}
	}
	if strings.Join(s.Required, ",") != "color" {
		t.Errorf("required = %v, want [color]", s.Required)
	}
	if string(mustSchema[bool]()) != `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"boolean"}` {
		t.Errorf("schema of bool = %s", mustSchema[bool]())
	}
}

func TestErrorMessage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  *Error
		want string
	}{
		{&Error{Status: 503, Code: CodeNoWorker, Title: "No worker available", Detail: `no live worker provides API "auth"`}, `no_worker (503): no live worker provides API "auth"`},
		{&Error{Status: 504, Code: CodeTimeout, Title: "Timeout"}, "timeout (504): Timeout"},
		{&Error{Status: 500, Code: CodeRemoteError, ErrorType: "InvalidPassword", Message: "too short"}, "remote_error (500): InvalidPassword: too short"},
		{&Error{Status: 422, Code: CodeValidation, Detail: "bad", Violations: []Violation{{Pointer: "/a", Message: "x"}, {Pointer: "/b", Message: "y"}}}, "validation (422): bad [/a: x; /b: y]"},
		{&Error{Status: 502, Detail: "not a problem"}, "HTTP 502: not a problem"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
	if ErrorCode(nil) != "" || IsCode(nil, "") || ErrorCode(errTest) != "" {
		t.Error("ErrorCode of a non-*Error is not empty")
	}
}

var errTest = json.Unmarshal([]byte("{"), new(any))

func TestTypedValidation(t *testing.T) {
	t.Parallel()
	paint := NewEvent[schemaEnum]("paint", "painted")
	mix := NewRPC[schemaEnum, bool]("paint", "mix")

	gw := newFakeGateway(t)
	bus := newTestBus(t, gw.URL())
	_, err := paint.Fire(t.Context(), bus, schemaEnum{Color: "blue", Size: -1})
	var lerr *Error
	if !errors.As(err, &lerr) || lerr.Status != 422 || lerr.Code != CodeValidation ||
		!slices.Equal(lerr.Violations, []Violation{{Pointer: "/color", Message: "value must be one of 'red', 'green'"}, {Pointer: "/size", Message: "minimum: got -1, want 1"}}) {
		t.Fatalf("Fire with bad parameters: %v", err)
	}
	if !strings.Contains(err.Error(), "paint.painted") {
		t.Errorf("error %q does not name the event", err)
	}
	_, err = mix.Call(t.Context(), bus, schemaEnum{Color: "blue"})
	if !IsCode(err, CodeValidation) {
		t.Fatalf("Call with bad parameters: %v", err)
	}
	gw.mu.Lock()
	fires, calls := len(gw.fireKeys), gw.calls
	gw.mu.Unlock()
	if fires != 0 || calls != 0 {
		t.Fatalf("invalid parameters were sent: %d fires, %d calls", fires, calls)
	}
	if _, err := paint.Fire(t.Context(), bus, schemaEnum{Color: "red"}); err != nil {
		t.Fatalf("Fire with good parameters: %v", err)
	}

	// Without validation the gateway is asked (and, here, accepts).
	unchecked := newTestBus(t, gw.URL(), WithValidation(false))
	if _, err := paint.Fire(t.Context(), unchecked, schemaEnum{Color: "blue"}); err != nil {
		t.Fatalf("Fire without validation: %v", err)
	}
	gw.mu.Lock()
	fires = len(gw.fireKeys)
	gw.mu.Unlock()
	if fires != 2 {
		t.Fatalf("fires = %d, want 2", fires)
	}

	// The handles carry their schemas, as declared.
	if string(paint.ParamsSchema()) != string(mustSchema[schemaEnum]()) || string(mix.ResultSchema()) != string(mustSchema[bool]()) {
		t.Errorf("schemas: %s, %s", paint.ParamsSchema(), mix.ResultSchema())
	}
}

func TestSchemaMethods(t *testing.T) {
	t.Parallel()
	gw := newFakeGateway(t)
	bus := newTestBus(t, gw.URL(), WithService("paint"))
	ctx := t.Context()

	doc := json.RawMessage(`{"events": {"painted": {"params_schema": {"type": "object"}}}}`)
	s, err := bus.PublishSchema(ctx, "paint", doc)
	if err != nil || s.Version != 1 || s.Service != "paint" || s.API != "paint" {
		t.Fatalf("PublishSchema = %+v, %v", s, err)
	}
	if s, err := bus.PublishSchema(ctx, "paint", doc); err != nil || s.Version != 1 {
		t.Fatalf("PublishSchema again = %+v, %v", s, err)
	}
	if _, err := bus.PublishSchema(ctx, "paint", json.RawMessage(`[]`)); err == nil {
		t.Fatal("PublishSchema of an array: no error")
	}
	all, err := bus.Schemas(ctx)
	if err != nil || len(all) != 1 || all[0].API != "paint" || !strings.Contains(string(all[0].Document), "painted") {
		t.Fatalf("Schemas = %+v, %v", all, err)
	}
	one, err := bus.SchemaVersion(ctx, "paint", 1)
	if err != nil || one.Version != 1 {
		t.Fatalf("Schema = %+v, %v", one, err)
	}
	if _, err := bus.SchemaVersion(ctx, "paint", 2); !IsCode(err, CodeNotFound) {
		t.Fatalf("Schema version 2: %v", err)
	}
	if cur, err := bus.Schema(ctx, "paint"); err != nil || cur.Version != 1 || cur.Service != "paint" {
		t.Fatalf("Schema = %+v, %v", cur, err)
	}
	if _, err := bus.Schema(ctx, "brush"); !IsCode(err, CodeNotFound) {
		t.Fatalf("Schema of an unknown API: %v", err)
	}
	versions, err := bus.ListSchemaVersions(ctx, "paint")
	if err != nil || len(versions) != 1 || versions[0].Document != nil {
		t.Fatalf("ListSchemaVersions = %+v, %v", versions, err)
	}
}
