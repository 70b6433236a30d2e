package lightbusapi_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	lightbusapi "github.com/lightbus-go/lightbus/examples/openapi-go"
	"github.com/lightbus-go/lightbus/internal/gatewayproc"
	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestGeneratedClient drives a real gateway (the cmd/gateway binary, auth
// required) with nothing but the generated client: it registers a worker
// with a listener and RPCs (served by a plain net/http handler that checks
// the gateway's Standard Webhooks signatures), fires an event and receives
// its delivery, reads the event back, calls an RPC, and decodes each
// problem the gateway can be made to answer.
func TestGeneratedClient(t *testing.T) {
	t.Parallel()

	token := gatewayproc.NewToken(t)
	url := gatewayproc.Start(t, token, "LIGHTBUS_MAX_BODY_BYTES=65536")
	ctx := context.Background()
	client := newClient(t, url, token)

	// A worker in any language: net/http, the generated types, HMAC.
	worker := newFakeWorker(t, "demo-1")
	reg, err := client.RegisterWorkerWithResponse(ctx, "demo-1", lightbusapi.WorkerRegistration{
		Service: "demo",
		BaseUrl: worker.URL,
		Apis: &[]lightbusapi.APIDeclaration{{
			Name: "demo",
			Events: &[]lightbusapi.EventDeclaration{{
				Name:         "happened",
				ParamsSchema: ptr[lightbusapi.JSONSchema](map[string]any{"type": "object", "required": []string{"what"}, "properties": map[string]any{"what": map[string]any{"type": "string"}}}),
			}},
			Rpcs: &[]lightbusapi.RPCDeclaration{{Name: "echo"}, {Name: "fail"}, {Name: "rogue"}, {Name: "slow"}},
		}},
		Listeners: &[]lightbusapi.ListenerDeclaration{{Name: "seen", Events: []lightbusapi.EventPattern{"demo.happened"}, Path: "/hooks/seen"}},
	})
	if err != nil || reg.JSON200 == nil {
		t.Fatalf("register: %v %s", err, body(reg))
	}
	if len(reg.JSON200.Listeners) != 1 || reg.JSON200.Worker.Id != "demo-1" {
		t.Fatalf("registration: %+v", reg.JSON200)
	}
	worker.setSecrets(reg.JSON200.RpcSecret, reg.JSON200.Listeners[0].Secret)

	// Fire, and receive the signed delivery.
	fired, err := client.FireEventWithResponse(ctx, "demo", "happened",
		&lightbusapi.FireEventParams{IdempotencyKey: ptr("first")}, lightbusapi.Params{"what": "it"})
	if err != nil || fired.JSON202 == nil || fired.JSON202.Deliveries != 1 || fired.JSON202.Repeat {
		t.Fatalf("fire: %v %s", err, body(fired))
	}
	select {
	case d := <-worker.deliveries:
		if d.id != fired.JSON202.Id.String() || d.params["what"] != "it" {
			t.Fatalf("delivery %+v, want event %s with what=it", d, fired.JSON202.Id)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no delivery within 20s")
	}

	// Read it back, alone and listed.
	event, err := client.GetEventWithResponse(ctx, fired.JSON202.Id)
	if err != nil || event.JSON200 == nil || event.JSON200.Params["what"] != "it" || len(event.JSON200.Deliveries) != 1 {
		t.Fatalf("get event: %v %s", err, body(event))
	}
	events, err := client.ListEventsWithResponse(ctx, &lightbusapi.ListEventsParams{Api: ptr("demo"), Limit: ptr(10)})
	if err != nil || events.JSON200 == nil || len(events.JSON200.Events) != 1 || events.JSON200.NextCursor != "" {
		t.Fatalf("list events: %v %s", err, body(events))
	}
	listeners, err := client.ListListenersWithResponse(ctx)
	if err != nil || listeners.JSON200 == nil || !slices.ContainsFunc(listeners.JSON200.Listeners, func(l lightbusapi.ListenerStatus) bool {
		return l.Service == "demo" && l.Name == "seen" && l.Endpoints == 1
	}) {
		t.Fatalf("list listeners: %v %s", err, body(listeners))
	}

	// Call an RPC.
	called, err := client.CallRPCWithResponse(ctx, "demo", "echo", nil, lightbusapi.Params{"n": 7})
	if err != nil || called.JSON200 == nil {
		t.Fatalf("call: %v %s", err, body(called))
	}
	if result, ok := called.JSON200.Result.(map[string]any); !ok || result["n"] != float64(7) {
		t.Fatalf("call result %#v, want the parameters back", called.JSON200.Result)
	}

	// The spec itself, as the generated client reads it.
	doc, err := client.OpenapiWithResponse(ctx)
	if err != nil || doc.YAML200 == nil || doc.YAML200.Openapi != "3.1.0" {
		t.Fatalf("openapi.yaml: %v %+v", err, doc)
	}

	// Each problem, decoded into the generated Problem type.
	reader, err := client.CreateKeyWithResponse(ctx, lightbusapi.KeyRequest{Name: "reader", Scopes: []lightbusapi.Scope{"read"}})
	if err != nil || reader.JSON201 == nil {
		t.Fatalf("create key: %v %s", err, body(reader))
	}
	anonymous := newClient(t, url, "")
	readOnly := newClient(t, url, reader.JSON201.Token)
	timeout := func(d string) *lightbusapi.CallRPCParams { return &lightbusapi.CallRPCParams{LightbusTimeout: &d} }
	for _, tc := range []struct {
		code lightbusapi.ProblemCode
		call func() (*lightbusapi.Problem, error)
	}{
		{lightbusapi.ProblemCodeInvalid, func() (*lightbusapi.Problem, error) {
			r, err := client.ListEventsWithResponse(ctx, &lightbusapi.ListEventsParams{Before: ptr("not a cursor")})
			return r.ApplicationproblemJSON400, err
		}},
		{lightbusapi.ProblemCodeUnauthorized, func() (*lightbusapi.Problem, error) {
			r, err := anonymous.ListWorkersWithResponse(ctx)
			return r.ApplicationproblemJSON401, err
		}},
		{lightbusapi.ProblemCodeForbidden, func() (*lightbusapi.Problem, error) {
			r, err := readOnly.FireEventWithResponse(ctx, "demo", "happened", nil, lightbusapi.Params{"what": "no"})
			return r.ApplicationproblemJSON403, err
		}},
		{lightbusapi.ProblemCodeNotFound, func() (*lightbusapi.Problem, error) {
			r, err := client.GetEventWithResponse(ctx, uuid.Must(uuid.NewV7()))
			return r.ApplicationproblemJSON404, err
		}},
		{lightbusapi.ProblemCodeConflict, func() (*lightbusapi.Problem, error) {
			r, err := client.CreateKeyWithResponse(ctx, lightbusapi.KeyRequest{Name: "reader", Scopes: []lightbusapi.Scope{"read"}})
			return r.ApplicationproblemJSON409, err
		}},
		{lightbusapi.ProblemCodeTooLarge, func() (*lightbusapi.Problem, error) {
			r, err := client.FireEventWithResponse(ctx, "demo", "big", nil, lightbusapi.Params{"blob": strings.Repeat("x", 70<<10)})
			return r.ApplicationproblemJSON413, err
		}},
		{lightbusapi.ProblemCodeValidation, func() (*lightbusapi.Problem, error) {
			r, err := client.FireEventWithResponse(ctx, "demo", "happened", nil, lightbusapi.Params{"what": 1})
			if err == nil && r.ApplicationproblemJSON422 != nil && (r.ApplicationproblemJSON422.Errors == nil || (*r.ApplicationproblemJSON422.Errors)[0].Pointer != "/what") {
				t.Errorf("validation errors %s, want one pointing at /what", r.Body)
			}
			return r.ApplicationproblemJSON422, err
		}},
		{lightbusapi.ProblemCodeRemoteError, func() (*lightbusapi.Problem, error) {
			r, err := client.CallRPCWithResponse(ctx, "demo", "fail", nil, lightbusapi.Params{})
			if err == nil && r.ApplicationproblemJSON500 != nil && *r.ApplicationproblemJSON500.ErrorType != "Refused" {
				t.Errorf("remote error %s, want error_type Refused", r.Body)
			}
			return r.ApplicationproblemJSON500, err
		}},
		{lightbusapi.ProblemCodeBadGateway, func() (*lightbusapi.Problem, error) {
			r, err := client.CallRPCWithResponse(ctx, "demo", "rogue", nil, lightbusapi.Params{})
			return r.ApplicationproblemJSON502, err
		}},
		{lightbusapi.ProblemCodeUnknownApi, func() (*lightbusapi.Problem, error) {
			r, err := client.CallRPCWithResponse(ctx, "nobody", "home", timeout("1m"), lightbusapi.Params{})
			return r.ApplicationproblemJSON404, err
		}},
		{lightbusapi.ProblemCodeNoWorker, func() (*lightbusapi.Problem, error) {
			// A call waits for a worker of an API the gateway knows: here,
			// by its schema.
			if _, err := client.PublishSchemaWithBodyWithResponse(ctx, "somebody", "application/json", strings.NewReader(`{"rpcs": {"home": {}}}`)); err != nil {
				return nil, err
			}
			r, err := client.CallRPCWithResponse(ctx, "somebody", "home", timeout("200ms"), lightbusapi.Params{})
			return r.ApplicationproblemJSON503, err
		}},
		{lightbusapi.ProblemCodeTimeout, func() (*lightbusapi.Problem, error) {
			r, err := client.CallRPCWithResponse(ctx, "demo", "slow", timeout("300ms"), lightbusapi.Params{})
			return r.ApplicationproblemJSON504, err
		}},
	} {
		p, err := tc.call()
		if err != nil {
			t.Errorf("%s: %v", tc.code, err)
			continue
		}
		if p == nil || p.Code != tc.code || p.Type != "urn:lightbus:problem:"+string(tc.code) {
			t.Errorf("%s: got problem %+v, want one with that code in its typed field", tc.code, p)
		}
	}
}

// newClient is a generated client for the gateway at url that sends token
// as a bearer token (none when empty).
func newClient(t *testing.T, url, token string) *lightbusapi.ClientWithResponses {
	t.Helper()
	client, err := lightbusapi.NewClientWithResponses(url, lightbusapi.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// fakeWorker is a worker written without any Lightbus library.
type fakeWorker struct {
	*httptest.Server
	mu             sync.Mutex
	rpcSecret      string
	listenerSecret string
	deliveries     chan delivery
}

// delivery is one event delivery the fake worker received.
type delivery struct {
	id     string
	params map[string]any
}

func newFakeWorker(t *testing.T, id string) *fakeWorker {
	w := &fakeWorker{deliveries: make(chan delivery, 10)}
	answer := func(rw http.ResponseWriter, status int, v any, contentType string) {
		rw.Header().Set("Lightbus-Worker-Id", id)
		rw.Header().Set("Content-Type", contentType)
		rw.WriteHeader(status)
		_ = json.NewEncoder(rw).Encode(v)
	}
	w.Server = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(r.Body)
		w.mu.Lock()
		rpcSecret, listenerSecret := w.rpcSecret, w.listenerSecret
		w.mu.Unlock()
		var params map[string]any
		_ = json.Unmarshal(data, &params)
		if r.URL.Path == "/hooks/seen" {
			if !verified(listenerSecret, r.Header, data) {
				t.Errorf("delivery without a valid signature: %v", r.Header)
				rw.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.deliveries <- delivery{id: r.Header.Get("webhook-id"), params: params}
			rw.WriteHeader(http.StatusNoContent)
			return
		}
		method, ok := strings.CutPrefix(r.URL.Path, "/lightbus/rpc/demo/")
		if !ok || !verified(rpcSecret, r.Header, data) || !strings.HasPrefix(r.Header.Get("webhook-id"), "demo/"+method+"/") {
			answer(rw, http.StatusUnauthorized, map[string]any{"type": "urn:lightbus:problem:unauthorized", "title": "Unauthorized", "status": 401, "code": "unauthorized"}, "application/problem+json")
			return
		}
		switch method {
		case "echo":
			answer(rw, http.StatusOK, map[string]any{"result": params}, "application/json")
		case "fail":
			answer(rw, http.StatusInternalServerError, map[string]any{
				"type": "urn:lightbus:problem:remote_error", "title": "Remote error", "status": 500,
				"code": "remote_error", "error_type": "Refused", "message": "not today",
			}, "application/problem+json")
		case "rogue": // no Lightbus-Worker-Id: the gateway must refuse it
			rw.Header().Set("Content-Type", "application/json")
			_, _ = rw.Write([]byte(`{"result":1}`))
		case "slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			answer(rw, http.StatusOK, map[string]any{"result": "late"}, "application/json")
		default:
			answer(rw, http.StatusNotFound, map[string]any{"type": "urn:lightbus:problem:not_found", "title": "Not found", "status": 404, "code": "not_found"}, "application/problem+json")
		}
	}))
	t.Cleanup(w.Close)
	return w
}

// setSecrets stores the secrets of the worker's registration.
func (w *fakeWorker) setSecrets(rpc, listener string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.rpcSecret, w.listenerSecret = rpc, listener
}

// verified reports whether the Standard Webhooks signature in h is valid for
// body under the whsec_ secret, within 5 minutes.
func verified(secret string, h http.Header, body []byte) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || secret == "" {
		return false
	}
	sent, err := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64)
	if err != nil || time.Since(time.Unix(sent, 0)).Abs() > 5*time.Minute {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}

func ptr[T any](v T) *T { return &v }

// body is a generated answer's status and body, for a failure message.
func body(resp interface{ StatusCode() int }) string {
	v := reflect.ValueOf(resp)
	if v.IsNil() {
		return "(no answer)"
	}
	return fmt.Sprintf("%d %s", resp.StatusCode(), v.Elem().FieldByName("Body").Bytes())
}
