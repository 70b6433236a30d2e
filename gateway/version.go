package gateway

import (
	"context"

	"github.com/lightbus-go/lightbus/internal/buildinfo"
)

// Version is which build of the gateway is running.
type Version = buildinfo.Info

// Version returns the running gateway's version, source revision and Go
// release. Any valid API key may ask, whatever its scopes: a client checks
// what it is talking to before anything else. Errors: EUnauthorized.
func (s *Service) Version(ctx context.Context) (Version, error) {
	if _, err := s.principal(ctx); err != nil {
		return Version{}, err
	}
	return buildinfo.Read(), nil
}
