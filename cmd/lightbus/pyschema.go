package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
)

// Lightbus (Python) writes an API's schema with `lightbus dumpschema` as
//
//	{"events": {"user_registered": {"parameters": {draft-07 schema}}},
//	 "rpcs": {"check_password": {"parameters": {...}, "response": {...}}}}
//
// keyed by API name. Ours names the same schemas params_schema and
// result_schema and adds the API's name (docs/SCHEMAS.md). The schemas
// themselves are kept as they are: each says "$schema": draft-07, and the
// gateway validates a schema by the draft it names, so they mean what they
// meant to Lightbus.

// lightbusMember is an event or RPC of a Lightbus schema.
type lightbusMember struct {
	Parameters json.RawMessage `json:"parameters,omitempty"`
	Response   json.RawMessage `json:"response,omitempty"`
}

// isLightbusSchema reports whether doc, an API's schema document, is in
// Lightbus's form: an event or RPC describes itself with "parameters" or
// "response", and none with our params_schema or result_schema.
func isLightbusSchema(doc json.RawMessage) bool {
	var d struct {
		Events map[string]map[string]json.RawMessage `json:"events"`
		RPCs   map[string]map[string]json.RawMessage `json:"rpcs"`
	}
	if json.Unmarshal(doc, &d) != nil {
		return false
	}
	lightbus, ours := false, false
	for _, m := range slices.Concat(slices.Collect(maps.Values(d.Events)), slices.Collect(maps.Values(d.RPCs))) {
		for k := range m {
			switch k {
			case "parameters", "response":
				lightbus = true
			case "params_schema", "result_schema":
				ours = true
			}
		}
	}
	return lightbus && !ours
}

// fromLightbusSchema converts the Lightbus schema of api into our schema
// document. An event with a "response", or a member with other keys than
// "parameters" and "response", is an error: it is not what Lightbus writes.
func fromLightbusSchema(api string, doc json.RawMessage) (json.RawMessage, error) {
	var d struct {
		Events map[string]json.RawMessage `json:"events"`
		RPCs   map[string]json.RawMessage `json:"rpcs"`
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("the Lightbus schema of API %q: want only \"events\" and \"rpcs\": %w", api, err)
	}
	member := func(kind, name string, raw json.RawMessage) (lightbusMember, error) {
		var m lightbusMember
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&m); err != nil {
			return m, fmt.Errorf("the Lightbus schema of %s %s.%s: want \"parameters\" and \"response\": %w", kind, api, name, err)
		}
		return m, nil
	}
	type eventSchema struct {
		ParamsSchema json.RawMessage `json:"params_schema,omitempty"`
	}
	type rpcSchema struct {
		ParamsSchema json.RawMessage `json:"params_schema,omitempty"`
		ResultSchema json.RawMessage `json:"result_schema,omitempty"`
	}
	out := struct {
		API    string                 `json:"api"`
		Events map[string]eventSchema `json:"events"`
		RPCs   map[string]rpcSchema   `json:"rpcs"`
	}{API: api, Events: map[string]eventSchema{}, RPCs: map[string]rpcSchema{}}
	for name, raw := range d.Events {
		m, err := member("event", name, raw)
		if err != nil {
			return nil, err
		}
		if len(m.Response) > 0 {
			return nil, fmt.Errorf("the Lightbus schema of event %s.%s has a \"response\": only RPCs have one", api, name)
		}
		out.Events[name] = eventSchema{ParamsSchema: m.Parameters}
	}
	for name, raw := range d.RPCs {
		m, err := member("rpc", name, raw)
		if err != nil {
			return nil, err
		}
		out.RPCs[name] = rpcSchema{ParamsSchema: m.Parameters, ResultSchema: m.Response}
	}
	return json.Marshal(out)
}
