package main

import (
	"context"
	"net/http"
	"runtime"
	"testing"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
)

// GET /v1/version answers any valid key, whatever its scopes, and no one
// without a key.
func TestVersion(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, withAuth)
	firer := createKey(t, gw, "firer", "fire:billing")

	expectUnauthorized(t, gw.do(t, "GET", "/v1/version", "", nil, nil))
	v, err := newBus(t, gw.URL, lightbus.WithToken(firer)).GatewayVersion(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Under go test the main module has no version nor revision.
	if v.Go != runtime.Version() || v.Version != "(devel)" {
		t.Errorf("version %+v", v)
	}
	var raw map[string]any
	if resp := gw.do(t, "GET", "/v1/version", "", bearer(firer), &raw); resp.StatusCode != http.StatusOK || len(raw) != 3 {
		t.Errorf("GET /v1/version: %d %v", resp.StatusCode, raw)
	}
}
