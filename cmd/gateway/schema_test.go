package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	authbus "github.com/lightbus-go/lightbus/examples/auth/bus"
	customersbus "github.com/lightbus-go/lightbus/examples/customers/bus"
	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/testwait"
)

// billingSchema is a schema document for the billing API.
const billingSchema = `{
	"events": {
		"paid": {"params_schema": {"type": "object", "required": ["invoice", "amount"],
			"properties": {"invoice": {"type": "string"}, "amount": {"type": "integer", "minimum": 1},
				"lines": {"type": "array", "items": {"type": "object", "required": ["sku"], "properties": {"sku": {"type": "string"}}}}}}},
		"untyped": {}
	},
	"rpcs": {
		"refund": {"params_schema": {"type": "object", "required": ["invoice"], "properties": {"invoice": {"type": "string"}}},
			"result_schema": {"type": "object", "required": ["refunded"], "properties": {"refunded": {"type": "boolean"}}}}
	}
}`

// schemaAnswer is a SchemaVersion as answered.
type schemaAnswer struct {
	API       string                   `json:"api"`
	Version   int                      `json:"version"`
	Hash      string                   `json:"hash"`
	Service   string                   `json:"service"`
	WorkerID  string                   `json:"worker_id"`
	CreatedAt time.Time                `json:"created_at"`
	Schema    gateway.SchemaDocument   `json:"schema"`
	Conflicts []gateway.SchemaConflict `json:"conflicts"`
}

func expectViolations(t *testing.T, p problem, want ...gateway.Violation) {
	t.Helper()
	if !slices.Equal(p.Errors, want) {
		t.Fatalf("violations %+v, want %+v", p.Errors, want)
	}
}

func TestSchemaHTTP(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)

	// Publishing: 201 for a new version, 200 when unchanged.
	var v1 schemaAnswer
	resp := gw.do(t, "PUT", "/v1/schema/billing", strings.Replace(billingSchema, "{", `{"service": "billing",`, 1), nil, &v1)
	if resp.StatusCode != 201 || v1.API != "billing" || v1.Version != 1 || v1.Service != "billing" || len(v1.Hash) != 64 || v1.Schema.RPCs["refund"].ResultSchema == nil {
		t.Fatalf("PUT: %d %+v", resp.StatusCode, v1)
	}
	var same schemaAnswer
	if resp := gw.do(t, "PUT", "/v1/schema/billing", billingSchema, nil, &same); resp.StatusCode != 200 || same.Version != 1 || same.Hash != v1.Hash {
		t.Fatalf("PUT unchanged: %d %+v", resp.StatusCode, same)
	}
	expectProblem(t, gw.do(t, "PUT", "/v1/schema/billing", `{"api": "other"}`, nil, nil), 400, "invalid")
	expectProblem(t, gw.do(t, "PUT", "/v1/schema/billing", `{"events": {"paid": {"params_schema": {"type": 5}}}}`, nil, nil), 400, "invalid")
	expectProblem(t, gw.do(t, "PUT", "/v1/schema/billing", `{"events": {"paid": {"params_schema": {"$ref": "file:///etc/passwd"}}}}`, nil, nil), 400, "invalid")
	expectProblem(t, gw.do(t, "PUT", "/v1/schema/billing", `{"events": {"bad-name": {}}}`, nil, nil), 400, "invalid")
	expectProblem(t, gw.do(t, "PUT", "/v1/schema/billing", `{"evnts": {}}`, nil, nil), 400, "invalid")

	// Reading.
	var got schemaAnswer
	if resp := gw.do(t, "GET", "/v1/schema/billing", "", nil, &got); resp.StatusCode != 200 || got.Hash != v1.Hash || got.Conflicts != nil {
		t.Fatalf("GET: %d %+v", resp.StatusCode, got)
	}
	expectProblem(t, gw.do(t, "GET", "/v1/schema/nothing", "", nil, nil), 404, "not_found")
	expectProblem(t, gw.do(t, "GET", "/v1/schema/billing?version=2", "", nil, nil), 404, "not_found")
	expectProblem(t, gw.do(t, "GET", "/v1/schema/billing?version=x", "", nil, nil), 400, "invalid")

	// Firing: parameters are validated before the event is stored.
	p := expectProblem(t, gw.do(t, "POST", "/v1/events/billing/paid", `{"amount": "10", "lines": [{"sku": "a"}, {}]}`, nil, nil), 422, "validation")
	expectViolations(t, p,
		gateway.Violation{Pointer: "/amount", Message: "got string, want integer"},
		gateway.Violation{Pointer: "/invoice", Message: "missing required property"},
		gateway.Violation{Pointer: "/lines/1/sku", Message: "missing required property"})
	if !strings.Contains(p.Detail, "billing.paid") {
		t.Errorf("detail %q does not name the event", p.Detail)
	}
	var events struct {
		Events []json.RawMessage `json:"events"`
	}
	gw.do(t, "GET", "/v1/events?api=billing", "", nil, &events)
	if len(events.Events) != 0 {
		t.Fatalf("an invalid event was stored: %s", events.Events)
	}
	if resp := gw.do(t, "POST", "/v1/events/billing/paid", `{"invoice": "i1", "amount": 10}`, nil, nil); resp.StatusCode != 202 {
		t.Fatalf("valid fire: %d", resp.StatusCode)
	}
	// Not strict: an event without schema, or not in the schema, passes.
	for _, event := range []string{"untyped", "unknown"} {
		if resp := gw.do(t, "POST", "/v1/events/billing/"+event, `{"x": 1}`, nil, nil); resp.StatusCode != 202 {
			t.Fatalf("fire %s: %d", event, resp.StatusCode)
		}
	}
	// Calls are validated before they are forwarded: no worker is needed.
	p = expectProblem(t, gw.do(t, "POST", "/v1/rpc/billing/refund", `{"invoice": 7}`, nil, nil), 422, "validation")
	expectViolations(t, p, gateway.Violation{Pointer: "/invoice", Message: "got number, want string"})

	// A new version replaces the old one at once on this replica.
	var v2 schemaAnswer
	resp = gw.do(t, "PUT", "/v1/schema/billing", `{"validate": false, "events": {"paid": {"params_schema": {"required": ["invoice"]}}}}`, nil, &v2)
	if resp.StatusCode != 201 || v2.Version != 2 || v2.Service != "" {
		t.Fatalf("PUT v2: %d %+v", resp.StatusCode, v2)
	}
	if resp := gw.do(t, "POST", "/v1/events/billing/paid", `{}`, nil, nil); resp.StatusCode != 202 {
		t.Fatalf("fire with validation off: %d", resp.StatusCode)
	}
	var old schemaAnswer
	if resp := gw.do(t, "GET", "/v1/schema/billing?version=1", "", nil, &old); resp.StatusCode != 200 || old.Version != 1 || old.Hash != v1.Hash {
		t.Fatalf("GET version 1: %d %+v", resp.StatusCode, old)
	}
	var versions struct {
		Versions []schemaAnswer `json:"versions"`
	}
	if resp := gw.do(t, "GET", "/v1/schema/billing/versions", "", nil, &versions); resp.StatusCode != 200 || len(versions.Versions) != 2 || versions.Versions[0].Version != 2 {
		t.Fatalf("versions: %d %+v", resp.StatusCode, versions)
	}
	expectProblem(t, gw.do(t, "GET", "/v1/schema/nothing/versions", "", nil, nil), 404, "not_found")
	gw.do(t, "PUT", "/v1/schema/audit", `{"events": {"logged": {}}}`, nil, nil)
	var all struct {
		Schemas []schemaAnswer `json:"schemas"`
	}
	if resp := gw.do(t, "GET", "/v1/schema", "", nil, &all); resp.StatusCode != 200 || len(all.Schemas) != 2 || all.Schemas[0].API != "audit" || all.Schemas[1].Version != 2 {
		t.Fatalf("GET /v1/schema: %d %+v", resp.StatusCode, all)
	}
}

func TestStrictSchemas(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, func(c *Config) { c.StrictSchemas = true })
	gw.do(t, "PUT", "/v1/schema/billing", billingSchema, nil, nil)

	expectProblem(t, gw.do(t, "POST", "/v1/events/nothing/paid", `{}`, nil, nil), 404, "not_found")
	expectProblem(t, gw.do(t, "POST", "/v1/events/billing/unknown", `{}`, nil, nil), 404, "not_found")
	expectProblem(t, gw.do(t, "POST", "/v1/rpc/nothing/refund", `{}`, nil, nil), 404, "unknown_api") // never heard of
	expectProblem(t, gw.do(t, "POST", "/v1/rpc/billing/unknown", `{}`, nil, nil), 404, "not_found")
	expectProblem(t, gw.do(t, "POST", "/v1/events/billing/paid", `{}`, nil, nil), 422, "validation")
	if resp := gw.do(t, "POST", "/v1/events/billing/untyped", `{"any": "thing"}`, nil, nil); resp.StatusCode != 202 {
		t.Fatalf("declared event without schema: %d", resp.StatusCode)
	}
}

func TestSchemaRegistration(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	register := func(workerID, required string) gateway.RegistrationResult {
		t.Helper()
		body := fmt.Sprintf(`{"service": "auth", "base_url": "http://127.0.0.1:1", "apis": [{"name": "auth",
			"events": [{"name": "user_registered", "params_schema": {"type": "object", "required": [%q]}}]}]}`, required)
		var res gateway.RegistrationResult
		if resp := gw.do(t, "PUT", "/v1/workers/"+workerID, body, nil, &res); resp.StatusCode != 200 {
			t.Fatalf("register %s: %d", workerID, resp.StatusCode)
		}
		return res
	}
	if res := register("auth-1", "username"); len(res.SchemaConflicts) != 0 {
		t.Fatalf("first registration: conflicts %+v", res.SchemaConflicts)
	}
	p := expectProblem(t, gw.do(t, "POST", "/v1/events/auth/user_registered", `{}`, nil, nil), 422, "validation")
	expectViolations(t, p, gateway.Violation{Pointer: "/username", Message: "missing required property"})

	// A worker starting with another schema wins, and the answer says who disagrees.
	res := register("auth-2", "email")
	if len(res.SchemaConflicts) != 1 || res.SchemaConflicts[0].WorkerID != "auth-1" || res.SchemaConflicts[0].API != "auth" {
		t.Fatalf("second registration: conflicts %+v", res.SchemaConflicts)
	}
	p = expectProblem(t, gw.do(t, "POST", "/v1/events/auth/user_registered", `{"username": "x"}`, nil, nil), 422, "validation")
	expectViolations(t, p, gateway.Violation{Pointer: "/email", Message: "missing required property"})
	var got schemaAnswer
	gw.do(t, "GET", "/v1/schema/auth", "", nil, &got)
	if got.Version != 2 || got.WorkerID != "auth-2" || len(got.Conflicts) != 1 || got.Conflicts[0].WorkerID != "auth-1" {
		t.Fatalf("GET /v1/schema/auth: %+v", got)
	}
	// The older worker's heartbeat does not take the API back.
	if res := register("auth-1", "username"); len(res.SchemaConflicts) != 1 {
		t.Fatalf("heartbeat: conflicts %+v", res.SchemaConflicts)
	}
	gw.do(t, "GET", "/v1/schema/auth", "", nil, &got)
	if got.Version != 2 {
		t.Fatalf("a heartbeat changed the schema: %+v", got)
	}

	// A schema that does not compile is refused with the registration.
	bad := `{"service": "auth", "base_url": "http://127.0.0.1:1", "apis": [{"name": "auth",
		"rpcs": [{"name": "check", "params_schema": {"type": "nonsense"}}]}]}`
	expectProblem(t, gw.do(t, "PUT", "/v1/workers/auth-3", bad, nil, nil), 400, "invalid")
}

func TestRPCResultValidation(t *testing.T) {
	t.Parallel()
	for _, validate := range []bool{true, false} {
		t.Run(fmt.Sprint(validate), func(t *testing.T) {
			t.Parallel()
			gw := startGateway(t, func(c *Config) { c.ValidateResults = validate })
			var calls atomic.Int32
			w := rpcWorker(t, "billing-1", func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprint(w, `{"result": {"refunded": "yes"}}`)
			})
			body := fmt.Sprintf(`{"service": "billing", "base_url": %q, "apis": [{"name": "billing", "rpcs": [{"name": "refund",
				"params_schema": {"type": "object", "required": ["invoice"]},
				"result_schema": {"type": "object", "properties": {"refunded": {"type": "boolean"}}}}]}]}`, w.URL)
			if resp := gw.do(t, "PUT", "/v1/workers/billing-1", body, nil, nil); resp.StatusCode != 200 {
				t.Fatalf("register: %d", resp.StatusCode)
			}
			expectProblem(t, gw.do(t, "POST", "/v1/rpc/billing/refund", `{}`, nil, nil), 422, "validation")
			if calls.Load() != 0 {
				t.Fatal("a call with invalid parameters reached the worker")
			}
			resp := gw.do(t, "POST", "/v1/rpc/billing/refund", `{"invoice": "i1"}`, nil, nil)
			if !validate {
				if resp.StatusCode != 200 {
					t.Fatalf("result validation off: %d", resp.StatusCode)
				}
				return
			}
			p := expectProblem(t, resp, 502, "bad_gateway")
			expectViolations(t, p, gateway.Violation{Pointer: "/refunded", Message: "got string, want boolean"})
		})
	}
}

// TestSchemaEndToEnd runs the example services as real workers: their typed
// APIs publish schemas, and bad fires and calls are refused by the gateway
// (422 with pointers) and by the Go client before sending.
func TestSchemaEndToEnd(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	opts := workerOptions(gw, 30*time.Second)
	auth := authbus.New(opts...)
	customers := customersbus.New(opts...)
	runBus(t, auth)
	runBus(t, customers)
	ctx := context.Background()

	schemas, err := auth.Schemas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var apis []string
	for _, s := range schemas {
		apis = append(apis, s.API)
	}
	if !slices.Equal(apis, []string{"auth", "customers"}) {
		t.Fatalf("schemas of %v, want auth and customers", apis)
	}
	var doc gateway.SchemaDocument
	if err := json.Unmarshal(schemas[1].Document, &doc); err != nil || doc.Events["new_customer"].ParamsSchema == nil {
		t.Fatalf("customers schema %s: %v", schemas[1].Document, err)
	}

	// Over HTTP, as curl would.
	p := expectProblem(t, gw.do(t, "POST", "/v1/events/customers/new_customer", `{"name": "Sally"}`, nil, nil), 422, "validation")
	expectViolations(t, p, gateway.Violation{Pointer: "/email", Message: "missing required property"})
	p = expectProblem(t, gw.do(t, "POST", "/v1/rpc/auth/create_user", `{"username": 7, "email": "s@example.com"}`, nil, nil), 422, "validation")
	expectViolations(t, p, gateway.Violation{Pointer: "/username", Message: "got number, want string"})
	p = expectProblem(t, gw.do(t, "POST", "/v1/rpc/auth/check_password", `{"username": "admin"}`, nil, nil), 422, "validation")
	expectViolations(t, p, gateway.Violation{Pointer: "/password", Message: "missing required property"})

	// The Go client, untyped: the gateway's 422 as a *lightbus.Error.
	client := lightbus.MustCreate(lightbus.WithURL(gw.URL))
	err = client.Call(ctx, "auth.check_password", map[string]any{"username": "admin", "password": 1}, nil)
	var lerr *lightbus.Error
	if !errors.As(err, &lerr) || lerr.Status != 422 || lerr.Code != lightbus.CodeValidation ||
		!slices.Equal(lerr.Violations, []lightbus.Violation{{Pointer: "/password", Message: "got number, want string"}}) {
		t.Fatalf("untyped call with a bad parameter: %v", err)
	}
	_, err = client.Fire(ctx, "customers.new_customer", map[string]any{"name": "Sally"})
	if !lightbus.IsCode(err, lightbus.CodeValidation) {
		t.Fatalf("untyped fire with a missing parameter: %v", err)
	}

	// Typed: a good call goes through, and the result is checked too.
	ok, err := authbus.CheckPassword.Call(ctx, client, authbus.CheckPasswordParams{Username: "admin", Password: "secret"})
	if err != nil || !ok {
		t.Fatalf("CheckPassword = %v, %v", ok, err)
	}
	res, err := customersbus.NewCustomer.Fire(ctx, client, customersbus.NewCustomerParams{Name: "Sally Jones", Email: "sally@example.com"})
	if err != nil || res.Deliveries != 1 {
		t.Fatalf("NewCustomer.Fire = %+v, %v", res, err)
	}
	testwait.For(t, 10*time.Second, "the customer's user account", func() bool {
		r, err := authbus.CreateUser.Call(ctx, client, authbus.CreateUserParams{Username: "sally_jones", Email: "sally@example.com"})
		return err == nil && !r.Created
	})
}

func TestBatchFireValidatesSchemas(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)

	if resp := gw.do(t, "PUT", "/v1/schema/billing", billingSchema, nil, nil); resp.StatusCode != 201 {
		t.Fatalf("publish: %d", resp.StatusCode)
	}
	batch := `[{"api": "billing", "event": "paid", "params": {"invoice": "i1", "amount": 5}},
		{"api": "billing", "event": "paid", "params": {"invoice": "i2"}},
		{"api": "other", "event": "x", "params": {}}]`
	p := expectProblem(t, gw.do(t, "POST", "/v1/events", batch, nil, nil), 422, "validation")
	if len(p.Errors) != 1 || p.Errors[0].Pointer != "/1/params/amount" {
		t.Fatalf("violations %+v, want one at /1/params/amount", p.Errors)
	}
	var page eventPage
	gw.do(t, "GET", "/v1/events", "", nil, &page)
	if len(page.Events) != 0 {
		t.Fatalf("a rejected batch stored %d events", len(page.Events))
	}
	ok := `[{"api": "billing", "event": "paid", "params": {"invoice": "i1", "amount": 5}}, {"api": "other", "event": "x", "params": {}}]`
	if resp := gw.do(t, "POST", "/v1/events", ok, nil, nil); resp.StatusCode != 202 {
		t.Fatalf("valid batch: %d", resp.StatusCode)
	}
}

// The current schema of an API follows its live workers: a stricter version
// published by a worker that is gone (deregistered, or its lease expired)
// no longer refuses the calls of a worker still live on the older version.
func TestSchemaFollowsLiveWorkers(t *testing.T) {
	t.Parallel()
	for _, gone := range []string{"Deregistered", "Expired"} {
		t.Run(gone, func(t *testing.T) {
			t.Parallel()
			gw := startGateway(t, func(c *Config) { c.SchemaCacheTTL = 50 * time.Millisecond })
			register := func(workerID string, leaseMS int, required ...string) {
				t.Helper()
				w := rpcWorker(t, workerID, func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "application/json")
					fmt.Fprint(w, `{"result": true}`)
				})
				req, _ := json.Marshal(required)
				body := fmt.Sprintf(`{"service": "auth", "base_url": %q, "lease_ttl_ms": %d, "apis": [{"name": "auth",
					"rpcs": [{"name": "check_password", "params_schema": {"type": "object", "required": %s}}]}]}`, w.URL, leaseMS, req)
				if resp := gw.do(t, "PUT", "/v1/workers/"+workerID, body, nil, nil); resp.StatusCode != 200 {
					t.Fatalf("register %s: %d", workerID, resp.StatusCode)
				}
			}
			call := func() *http.Response {
				return gw.do(t, "POST", "/v1/rpc/auth/check_password", `{"username": "sally"}`, nil, nil)
			}
			register("auth-b", 60000, "username") // v1
			if resp := call(); resp.StatusCode != 200 {
				t.Fatalf("call under v1: %d", resp.StatusCode)
			}

			switch gone {
			case "Deregistered":
				register("auth-a", 60000, "username", "otp") // v2, stricter
				p := expectProblem(t, call(), 422, "validation")
				expectViolations(t, p, gateway.Violation{Pointer: "/otp", Message: "missing required property"})
				if resp := gw.do(t, "DELETE", "/v1/workers/auth-a", "", nil, nil); resp.StatusCode != 204 {
					t.Fatalf("deregister: %d", resp.StatusCode)
				}
			case "Expired":
				register("auth-a", 1000, "username", "otp") // v2, stricter; its lease runs out
			}
			testwait.For(t, 30*time.Second, "calls valid under v1 to be accepted again", func() bool {
				return call().StatusCode == 200
			})
			var cur schemaAnswer
			gw.do(t, "GET", "/v1/schema/auth", "", nil, &cur)
			if cur.Version != 1 || cur.WorkerID != "auth-b" || len(cur.Conflicts) != 0 {
				t.Fatalf("current schema: %+v", cur)
			}
			var versions struct {
				Versions []schemaAnswer `json:"versions"`
			}
			gw.do(t, "GET", "/v1/schema/auth/versions", "", nil, &versions)
			if len(versions.Versions) != 2 || versions.Versions[0].WorkerID != "auth-a" {
				t.Fatalf("versions: %+v", versions.Versions)
			}

			// The stricter worker back: its version is current again (at once
			// on the replica it registered with), and no new version is made.
			register("auth-a", 60000, "username", "otp")
			expectProblem(t, call(), 422, "validation")
			gw.do(t, "GET", "/v1/schema/auth", "", nil, &cur)
			if cur.Version != 2 || len(cur.Conflicts) != 1 || cur.Conflicts[0].WorkerID != "auth-b" {
				t.Fatalf("current schema with both live: %+v", cur)
			}
			gw.do(t, "GET", "/v1/schema/auth/versions", "", nil, &versions)
			if len(versions.Versions) != 2 {
				t.Fatalf("versions after the worker came back: %+v", versions.Versions)
			}
			if gone != "Deregistered" {
				return
			}

			// Gone again, its version can be made current with PUT: the same
			// document as a new version, published without a worker.
			gw.do(t, "DELETE", "/v1/workers/auth-a", "", nil, nil)
			testwait.For(t, 30*time.Second, "v1 to be current again", func() bool { return call().StatusCode == 200 })
			var v2 schemaAnswer
			gw.do(t, "GET", "/v1/schema/auth?version=2", "", nil, &v2)
			doc, _ := json.Marshal(v2.Schema)
			var v3 schemaAnswer
			if resp := gw.do(t, "PUT", "/v1/schema/auth", string(doc), nil, &v3); resp.StatusCode != 201 || v3.Version != 3 || v3.Hash != v2.Hash {
				t.Fatalf("PUT of version 2's document: %d %+v", resp.StatusCode, v3)
			}
			expectProblem(t, call(), 422, "validation")
		})
	}
}

// A fire of an event that its API's schema does not declare is accepted,
// with a warning naming the declared event it is closest to: in a
// Lightbus-Warning header, in warnings, in clientgo's FireResult and on
// lightbus fire's standard error.
func TestUndeclaredEventWarning(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)
	gw.do(t, "PUT", "/v1/schema/auth", `{"events": {"user_registered": {}, "user_deleted": {}}}`, nil, nil)
	const want = `event "user_registred" is not declared by the schema of API "auth" (version 1); it was stored all the same; did you mean "user_registered"?`

	var res struct {
		ID       string   `json:"id"`
		Warnings []string `json:"warnings"`
	}
	resp := gw.do(t, "POST", "/v1/events/auth/user_registred", `{}`, nil, &res)
	if resp.StatusCode != 202 || res.ID == "" || !slices.Equal(resp.Header.Values("Lightbus-Warning"), []string{want}) || !slices.Equal(res.Warnings, []string{want}) {
		t.Fatalf("fire of a typo: %d %q %+v", resp.StatusCode, resp.Header.Values("Lightbus-Warning"), res)
	}
	// No near name: the warning says only that it is not declared.
	res.Warnings = nil
	resp = gw.do(t, "POST", "/v1/events/auth/order_placed", `{}`, nil, &res)
	if w := resp.Header.Get("Lightbus-Warning"); resp.StatusCode != 202 || !strings.HasPrefix(w, `event "order_placed" is not declared`) ||
		strings.Contains(w, "did you mean") || len(res.Warnings) != 1 {
		t.Fatalf("fire of an undeclared event: %d %q %+v", resp.StatusCode, w, res)
	}
	// Declared events, and APIs without a schema, carry no warning.
	for _, path := range []string{"/v1/events/auth/user_registered", "/v1/events/billing/paid"} {
		res.Warnings = nil
		resp = gw.do(t, "POST", path, `{}`, nil, &res)
		if resp.StatusCode != 202 || resp.Header.Get("Lightbus-Warning") != "" || res.Warnings != nil {
			t.Fatalf("POST %s: %d %q %+v", path, resp.StatusCode, resp.Header.Get("Lightbus-Warning"), res)
		}
	}
	// A repeat (same Idempotency-Key) warns again.
	key := map[string]string{"Idempotency-Key": "k1"}
	gw.do(t, "POST", "/v1/events/auth/user_registred", `{}`, key, nil)
	res.Warnings = nil
	if resp = gw.do(t, "POST", "/v1/events/auth/user_registred", `{}`, key, &res); resp.StatusCode != 200 || !slices.Equal(res.Warnings, []string{want}) {
		t.Fatalf("repeat: %d %+v", resp.StatusCode, res)
	}
	// A batch: each item's warnings.
	var batch struct {
		Results []struct {
			Index    int      `json:"index"`
			Warnings []string `json:"warnings"`
		} `json:"results"`
	}
	resp = gw.do(t, "POST", "/v1/events", `[{"api": "auth", "event": "user_registered", "params": {}}, {"api": "auth", "event": "user_registred", "params": {}}]`, nil, &batch)
	if resp.StatusCode != 202 || len(batch.Results) != 2 || batch.Results[0].Warnings != nil || !slices.Equal(batch.Results[1].Warnings, []string{want}) {
		t.Fatalf("batch: %d %+v", resp.StatusCode, batch)
	}

	// The Go client and the CLI.
	bus, err := lightbus.Create(lightbus.WithURL(gw.URL))
	if err != nil {
		t.Fatal(err)
	}
	fired, err := bus.Fire(t.Context(), "auth.user_registred", nil)
	if err != nil || !slices.Equal(fired.Warnings, []string{want}) {
		t.Fatalf("clientgo: %+v, %v", fired, err)
	}
	bin := buildLightbus(t)
	out, stderr, err := runCLI(t, bin, gw, "", "fire", "auth.user_registred", "{}")
	if err != nil || !strings.Contains(out, "DELIVERIES") || stderr != "lightbus: warning: "+want+"\n" {
		t.Fatalf("lightbus fire: %v\nstdout %q\nstderr %q", err, out, stderr)
	}
}
