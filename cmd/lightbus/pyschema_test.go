package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// loadschema reads Lightbus's dumpschema output and publishes each API in
// our schema format; its schemas are sent as they were.
func TestLoadLightbusSchema(t *testing.T) {
	t.Parallel()
	tb, g := gatewayBundle(t)
	if err := tb.execute(t, "loadschema", "testdata/lightbus-dumpschema.json"); err != nil {
		t.Fatal(err)
	}
	if got := tb.stderr.String(); !strings.Contains(got, "my_company.auth: converted from Lightbus's schema format") ||
		!strings.Contains(got, "store: converted") {
		t.Errorf("stderr = %q", got)
	}
	sent := map[string]map[string]any{}
	g.mu.Lock()
	for _, r := range g.requests {
		if r.Method == "PUT" {
			var doc map[string]any
			if err := json.Unmarshal([]byte(r.Body), &doc); err != nil {
				t.Fatalf("PUT %s: %v\n%s", r.Path, err, r.Body)
			}
			sent[strings.TrimPrefix(r.Path, "/v1/schema/")] = doc
		}
	}
	g.mu.Unlock()
	if len(sent) != 2 {
		t.Fatalf("published %v", sent)
	}
	auth := sent["my_company.auth"]
	if auth["api"] != "my_company.auth" {
		t.Errorf("api = %v", auth["api"])
	}
	rpc := auth["rpcs"].(map[string]any)["check_password"].(map[string]any)
	params, _ := rpc["params_schema"].(map[string]any)
	result, _ := rpc["result_schema"].(map[string]any)
	if params["$schema"] != "http://json-schema.org/draft-07/schema#" || params["additionalProperties"] != false || result["type"] != "boolean" || len(rpc) != 2 {
		t.Errorf("check_password = %v", rpc)
	}
	ev := auth["events"].(map[string]any)["user_registered"].(map[string]any)
	if p, _ := ev["params_schema"].(map[string]any); p["required"] == nil || len(ev) != 1 {
		t.Errorf("user_registered = %v", ev)
	}
}

func TestFromLightbusSchema(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		doc      string
		lightbus bool
		err      string
	}{
		{`{"events": {"e": {"parameters": {"type": "object"}}}, "rpcs": {}}`, true, ""},
		{`{"rpcs": {"r": {"response": {"type": "string"}}}}`, true, ""},
		{`{"events": {"e": {"params_schema": {}}}}`, false, ""},
		{`{"events": {"e": {"parameters": {}, "params_schema": {}}}}`, false, ""},
		{`{"events": {"e": {}}}`, false, ""},
		{`{"events": {"e": {"parameters": {}, "response": {}}}}`, true, `event a.e has a "response"`},
		{`{"events": {"e": {"parameters": {}, "arguments": {}}}}`, true, `event a.e: want "parameters" and "response"`},
		{`{"rpcs": {"r": {"response": {}}}, "meta": 1}`, true, `want only "events" and "rpcs"`},
	} {
		if got := isLightbusSchema(json.RawMessage(tc.doc)); got != tc.lightbus {
			t.Errorf("isLightbusSchema(%s) = %v", tc.doc, got)
		}
		if !tc.lightbus {
			continue
		}
		out, err := fromLightbusSchema("a", json.RawMessage(tc.doc))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("fromLightbusSchema(%s) = %s, %v; want error %q", tc.doc, out, err, tc.err)
			}
			continue
		}
		if err != nil || isLightbusSchema(out) || !strings.Contains(string(out), `"api":"a"`) {
			t.Errorf("fromLightbusSchema(%s) = %s, %v", tc.doc, out, err)
		}
	}
}
