// Package testhttp holds the HTTP helpers the gateway's tests share:
// sending a request and reading its JSON answer, and checking a problem
// document. It is for tests only.
package testhttp

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/lightbus-go/lightbus/internal/schemacheck"
)

// Do sends a request with body and header to url and decodes a JSON answer
// into out (when not nil). A body is sent as application/json unless
// header says otherwise. The answer's body stays readable.
func Do(t testing.TB, method, url string, body string, header map[string]string, out any) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, data, err)
		}
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	return resp
}

// Violation is one entry of a problem's errors.
type Violation = schemacheck.Violation

// Problem is a problem document as the gateway writes it.
type Problem struct {
	Type      string      `json:"type"`
	Status    int         `json:"status"`
	Code      string      `json:"code"`
	Detail    string      `json:"detail"`
	ErrorType string      `json:"error_type"`
	Message   string      `json:"message"`
	Errors    []Violation `json:"errors"`
}

// ExpectProblem checks that resp is a problem document (RFC 9457, with
// its content type) with status and code, and returns it.
func ExpectProblem(t testing.TB, resp *http.Response, status int, code string) Problem {
	t.Helper()
	var p Problem
	data, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatalf("answer %d %s is not a problem document: %v", resp.StatusCode, data, err)
	}
	if resp.StatusCode != status || p.Code != code || p.Status != status || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("got %d %s (%s), want %d with code %s", resp.StatusCode, data, resp.Header.Get("Content-Type"), status, code)
	}
	return p
}
