package dispatch

import (
	"errors"
	"net/http"
	"testing"

	"github.com/lightbus-go/lightbus/gateway"
)

// TestDecodeWorkerAnswerKeepsErrorType checks that the type and message of
// a handler's error reach the caller with remote_error and with invalid (a
// handler that refused its parameters), and that other codes carry none.
func TestDecodeWorkerAnswerKeepsErrorType(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status                int
		code                  string
		wantType, wantMessage string
	}{
		{500, gateway.ERemote, "InvalidPassword", "password too short"},
		{400, gateway.EInvalid, "InvalidPassword", "password too short"},
		{404, gateway.ENotFound, "", ""},
	} {
		body := []byte(`{"type":"urn:lightbus:problem:` + tc.code + `","title":"t","status":400,"code":"` + tc.code +
			`","detail":"d","error_type":"InvalidPassword","message":"password too short"}`)
		resp := &http.Response{StatusCode: tc.status, Header: http.Header{"Content-Type": {"application/problem+json"}}}
		_, err := decodeWorkerAnswer("w1", resp, body)
		var gerr *gateway.Error
		if !errors.As(err, &gerr) || gerr.Code != tc.code || gerr.ErrorType != tc.wantType || gerr.RemoteMessage != tc.wantMessage {
			t.Errorf("%s: decoded %#v, want error type %q and message %q", tc.code, err, tc.wantType, tc.wantMessage)
		}
	}
}
