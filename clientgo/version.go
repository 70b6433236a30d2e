package lightbus

import (
	"context"
	"fmt"
	"net/http"
)

// GatewayVersion is which build of the gateway answers (GET /v1/version).
type GatewayVersion struct {
	// Version is the gateway's version: a release tag, a pseudo-version of
	// the commit it was built from, or "(devel)".
	Version string `json:"version"`
	// Revision is the source commit it was built from ("-modified" when
	// its work tree had changes); "" when unknown.
	Revision string `json:"revision"`
	// Go is the Go release that built it.
	Go string `json:"go"`
}

// GatewayVersion asks the gateway which build it is (GET /v1/version); any
// valid API key may ask.
func (b *Bus) GatewayVersion(ctx context.Context) (*GatewayVersion, error) {
	var v GatewayVersion
	if err := b.do(ctx, http.MethodGet, "/v1/version", nil, nil, nil, &v); err != nil {
		return nil, fmt.Errorf("lightbus: gateway version: %w", err)
	}
	return &v, nil
}
