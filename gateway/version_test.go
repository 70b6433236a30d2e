package gateway

import (
	"context"
	"runtime"
	"testing"
)

// Any key may ask for the version; without one, when keys are required, it
// is refused.
func TestServiceVersion(t *testing.T) {
	t.Parallel()

	s := NewService(ServiceConfig{RequireAuth: true})
	if _, err := s.Version(context.Background()); ErrorCode(err) != EUnauthorized {
		t.Errorf("without a key: %v", err)
	}
	v, err := s.Version(principalWith(t, "fire:billing"))
	if err != nil || v.Go != runtime.Version() || v.Version == "" {
		t.Errorf("with a fire key: %+v, %v", v, err)
	}
	if v, err := NewService(ServiceConfig{}).Version(context.Background()); err != nil || v.Go != runtime.Version() {
		t.Errorf("authentication off: %+v, %v", v, err)
	}
}
