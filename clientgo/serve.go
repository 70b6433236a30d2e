package lightbus

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// maxRequestBytes bounds the bodies the worker accepts from the gateway.
const maxRequestBytes = 32 << 20

// problemTitles are the titles of the problems a worker answers with.
var problemTitles = map[string]string{
	CodeInvalid:      "Invalid request",
	CodeUnauthorized: "Unauthorized",
	CodeNotFound:     "Not found",
	CodeTooLarge:     "Request too large",
	CodeRemoteError:  "Remote error",
	CodeUnavailable:  "Unavailable",
}

// writeProblem answers with a problem document; extra adds members such as
// error_type and message.
func writeProblem(w http.ResponseWriter, status int, code, detail string, extra map[string]any) {
	doc := map[string]any{
		"type":   problemTypePrefix + code,
		"title":  problemTitles[code],
		"status": status,
		"detail": detail,
		"code":   code,
	}
	for k, v := range extra {
		doc[k] = v
	}
	data, _ := json.Marshal(doc) // only strings and ints: cannot fail
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}

// readBody reads a request body of at most maxRequestBytes, answering the
// problem itself when it cannot.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeProblem(w, http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("the body is over %d bytes", maxRequestBytes), nil)
			return nil, false
		}
		writeProblem(w, http.StatusBadRequest, CodeInvalid, "reading the body: "+err.Error(), nil)
		return nil, false
	}
	return data, true
}

// readParams reads a body that must be a JSON object.
func readParams(w http.ResponseWriter, r *http.Request) (json.RawMessage, bool) {
	data, ok := readBody(w, r)
	if !ok {
		return nil, false
	}
	data = trimSpace(data)
	if len(data) == 0 || data[0] != '{' || !json.Valid(data) {
		writeProblem(w, http.StatusBadRequest, CodeInvalid, "the parameters must be a JSON object", nil)
		return nil, false
	}
	return data, true
}
