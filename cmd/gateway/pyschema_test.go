package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/lightbus-go/lightbus/gateway"
)

// A schema dumped by Lightbus (Python) and loaded with lightbus loadschema
// validates fires and calls as Lightbus did: its draft-07 schemas keep their
// meaning (a tuple's "items" array, additionalProperties false).
func TestLoadLightbusDumpSchema(t *testing.T) {
	t.Parallel()
	bin := buildLightbus(t)
	gw := startGateway(t, nil)
	out, stderr, err := runCLI(t, bin, gw, "", "loadschema", "../lightbus/testdata/lightbus-dumpschema.json")
	if err != nil || !strings.Contains(out, "my_company.auth") || !strings.Contains(out, "store") ||
		!strings.Contains(stderr, "converted from Lightbus's schema format") {
		t.Fatalf("loadschema: %v\n%s\n%s", err, out, stderr)
	}
	var got schemaAnswer
	gw.do(t, "GET", "/v1/schema/my_company.auth", "", nil, &got)
	if got.Version != 1 || got.Schema.RPCs["check_password"].ResultSchema == nil {
		t.Fatalf("stored: %+v", got)
	}

	for _, tc := range []struct {
		path, body string
		want       []gateway.Violation
	}{
		{"/v1/events/my_company.auth/user_registered", `{"username": "sally", "email": "s@example.com", "is_admin": true}`, nil},
		{"/v1/events/my_company.auth/user_registered", `{"username": "sally", "is_admin": "yes", "extra": 1}`, []gateway.Violation{
			{Pointer: "", Message: "additional properties 'extra' not allowed"},
			{Pointer: "/email", Message: "missing required property"},
			{Pointer: "/is_admin", Message: "got string, want boolean"}}},
		{"/v1/events/my_company.auth/password_reset", `{}`, nil},
		{"/v1/events/my_company.auth/password_reset", `{"user": "x"}`, []gateway.Violation{{Pointer: "", Message: "additional properties 'user' not allowed"}}},
		{"/v1/events/store/page_viewed", `{"url": "/", "viewed_at": "2026-11-30T10:00:00Z", "position": [1, 2.5], "tags": {"a": 1}}`, nil},
		// draft-07: "items" as an array types each position of a tuple.
		{"/v1/events/store/page_viewed", `{"url": "/", "viewed_at": "2026-11-30T10:00:00Z", "position": [1, "2"]}`, []gateway.Violation{
			{Pointer: "/position/1", Message: "got string, want number"}}},
		{"/v1/events/store/page_viewed", `{"url": "/", "viewed_at": "yesterday", "position": [1, 2, 3], "tags": {"a": "b"}}`, []gateway.Violation{
			{Pointer: "/position", Message: "maxItems: got 3, want 2"},
			{Pointer: "/tags/a", Message: "got string, want integer"},
			{Pointer: "/viewed_at", Message: "'yesterday' is not valid date-time: less than 20 characters long"}}},
		{"/v1/rpc/my_company.auth/check_password", `{"username": "admin"}`, []gateway.Violation{{Pointer: "/password", Message: "missing required property"}}},
		{"/v1/rpc/store/get_price", `{"sku": 1.5, "currency": "JPY"}`, []gateway.Violation{
			{Pointer: "/currency", Message: "value must be one of 'GBP', 'EUR', 'USD'"},
			{Pointer: "/sku", Message: "got number, want string"},
			{Pointer: "/sku", Message: "got number, want integer"}}},
	} {
		resp := gw.do(t, "POST", tc.path, tc.body, map[string]string{"Lightbus-Timeout": "1ms"}, nil)
		if tc.want == nil {
			// Valid: a fire is stored; a call is forwarded (and finds no worker).
			if resp.StatusCode != 202 && resp.StatusCode != 503 {
				t.Errorf("POST %s %s: %d, want it accepted", tc.path, tc.body, resp.StatusCode)
			}
			continue
		}
		p := expectProblem(t, resp, 422, "validation")
		if !slices.Equal(p.Errors, tc.want) {
			t.Errorf("POST %s %s: violations\n%q\nwant\n%q", tc.path, tc.body, p.Errors, tc.want)
		}
	}
	if resp := gw.do(t, "POST", "/v1/rpc/store/get_price", `{"sku": "a1", "currency": "EUR", "context": [1]}`, map[string]string{"Lightbus-Timeout": "1ms"}, nil); resp.StatusCode != 503 {
		t.Errorf("valid call: %d, want 503 (validated, then no worker)", resp.StatusCode)
	}
}
