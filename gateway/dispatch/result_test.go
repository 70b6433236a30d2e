package dispatch

import (
	"bytes"
	"encoding/json"
	"testing"
)

// resultOf takes the result of exactly the bodies json.Unmarshal reads as
// {"result": X}, and the same X; what it declines, Unmarshal reads instead.
func TestResultOf(t *testing.T) {
	for _, body := range []string{
		`{"result":{"ok":true}}`,
		`{"result":1}` + "\n",
		` {"result": [1, 2] } `,
		`{"result":null}`,
		`{"result":"}"}`,
		`{"result":1,"result":2}`,
		`{"result":1,"other":2}`,
		`{"result":{"a":1}, "x": {"b":2}}`,
		`{"result":}`,
		`{"result":1`,
		`{"result":1}}`,
		`{"result":1} {"result":2}`,
		`{"other":1}`,
		`{"result" :1}`,
		`{}`,
		``,
		`[1]`,
	} {
		var answer struct {
			Result json.RawMessage `json:"result"`
		}
		err := json.Unmarshal([]byte(body), &answer)
		got, ok := resultOf([]byte(body))
		if ok && (err != nil || !bytes.Equal(got, answer.Result)) {
			t.Errorf("resultOf(%#q) = %#q; json.Unmarshal: %#q, %v", body, got, answer.Result, err)
		}
		if !ok && err == nil && answer.Result != nil && bytes.HasPrefix(bytes.TrimSpace([]byte(body)), []byte(`{"result":`)) &&
			!bytes.Contains([]byte(body), []byte(`,`)) {
			t.Errorf("resultOf(%#q) declined a body with the one member result (%#q)", body, answer.Result)
		}
	}
}
