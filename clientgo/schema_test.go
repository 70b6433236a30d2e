package lightbus

import (
	"encoding/json"
	"testing"
	"time"
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

func TestSchemaOf(t *testing.T) {
	t.Parallel()
	var got map[string]any
	if err := json.Unmarshal(schemaOf[schemaParams](), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"$schema": "https://json-schema.org/draft/2020-12/schema",
		"type":    "object",
		"properties": map[string]any{
			"id":       map[string]any{"type": "string"},
			"username": map[string]any{"type": "string"},
			"email":    map[string]any{"type": "string"},
			"age":      map[string]any{"type": "integer"},
			"score":    map[string]any{"type": "number"},
			"admin":    map[string]any{"type": "boolean"},
			"tags":     map[string]any{"type": []any{"array", "null"}, "items": map[string]any{"type": "string"}},
			"labels":   map[string]any{"type": []any{"object", "null"}, "additionalProperties": map[string]any{"type": "integer"}},
			"avatar":   map[string]any{"type": []any{"string", "null"}},
			"born":     map[string]any{"type": "string", "format": "date-time"},
			"manager": map[string]any{"type": []any{"object", "null"}, "properties": map[string]any{"id": map[string]any{"type": "string"}},
				"required": []any{"id"}},
			"extra":    map[string]any{},
			"anything": map[string]any{},
			"quoted":   map[string]any{},
			"tree": map[string]any{"type": "object", "required": []any{"name"}, "properties": map[string]any{
				"name":     map[string]any{"type": "string"},
				"children": map[string]any{"type": []any{"array", "null"}, "items": map[string]any{}}, // recursive: anything
			}},
			"Untagged": map[string]any{"type": "string"},
		},
		"required": []any{"username", "score", "admin", "tags", "labels", "avatar", "born", "manager", "extra", "anything", "quoted", "tree", "Untagged", "id"},
	}
	g, _ := json.MarshalIndent(got, "", "  ")
	w, _ := json.MarshalIndent(want, "", "  ")
	if string(g) != string(w) {
		t.Errorf("schema:\n%s\nwant:\n%s", g, w)
	}

	if s := string(schemaOf[bool]()); s != `{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"boolean"}` {
		t.Errorf("schemaOf[bool] = %s", s)
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
		{&Error{Status: 422, Code: CodeValidation, Detail: "bad", Violations: []Violation{{"/a", "x"}, {"/b", "y"}}}, "validation (422): bad [/a: x; /b: y]"},
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
