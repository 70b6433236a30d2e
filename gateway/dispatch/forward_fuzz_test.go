package dispatch

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/lightbus-go/lightbus/gateway"
)

// FuzzDecodeWorkerAnswer decodes any answer a worker can give to an RPC: it
// never panics, gives a result only for a 200 whose body is a JSON object
// with a "result" member (the result then being valid JSON, written to the
// caller as it is), and otherwise an error of the protocol's codes.
func FuzzDecodeWorkerAnswer(f *testing.F) {
	problem := func(code string) []byte {
		return []byte(`{"type":"urn:lightbus:problem:` + code + `","title":"t","status":500,"code":"` + code +
			`","detail":"d","error_type":"InvalidPassword","message":"wrong password for admin","errors":[{"pointer":"/a","message":"m"}]}`)
	}
	f.Add(200, "application/json", []byte(`{"result":{"echo":{"user":"admin"}}}`))
	f.Add(200, "application/json", []byte(`{"result":null}`))
	f.Add(200, "application/json", []byte(`{"result":7,"result":8}`))
	f.Add(200, "application/json", []byte(`{"RESULT":"case"}`))
	f.Add(200, "text/plain", []byte(`ok`))
	f.Add(200, "application/json", []byte(`{}`))
	f.Add(200, "application/json", []byte(`[{"result":1}]`))
	f.Add(200, "application/json", []byte("{\"result\":\"\xff\"}"))
	f.Add(200, "application/problem+json", problem(gateway.ERemote))
	for _, code := range []string{gateway.ERemote, gateway.EInvalid, gateway.ENotFound, gateway.EValidation, gateway.EInternal, "unknown"} {
		f.Add(500, "application/problem+json; charset=utf-8", problem(code))
	}
	f.Add(422, "application/problem+json", []byte(`{"code":"validation","errors":[{"pointer":1}]}`))
	f.Add(503, "text/html", []byte(`<html>busy</html>`))
	f.Add(-1, "", []byte(nil))
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte) {
		resp := &http.Response{StatusCode: status, Header: http.Header{"Content-Type": {contentType}}}
		result, err := decodeWorkerAnswer("w1", resp, body)
		if err == nil {
			var members map[string]json.RawMessage
			hasResult := false
			if json.Unmarshal(body, &members) == nil {
				for k := range members {
					hasResult = hasResult || strings.EqualFold(k, "result")
				}
			}
			if status != http.StatusOK || !hasResult || !json.Valid(result) || !bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("{")) {
				t.Fatalf("%d %q gave the result %q", status, body, result)
			}
			return
		}
		if result != nil {
			t.Fatalf("%d %q gave both a result %q and %v", status, body, result, err)
		}
		var gerr *gateway.Error
		if !errors.As(err, &gerr) {
			t.Fatalf("%d %q: %v is not a gateway error", status, body, err)
		}
		switch gerr.Code {
		case gateway.EBadGateway:
		case gateway.ERemote, gateway.EInvalid, gateway.ENotFound, gateway.EValidation:
			if status == http.StatusOK {
				t.Fatalf("a 200 gave %v: only a problem document passes a code through", err)
			}
		default:
			t.Fatalf("%d %q: code %s is not one a worker's answer maps to", status, body, gerr.Code)
		}
	})
}
