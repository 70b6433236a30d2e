package httpapi

import (
	"net/http"
	"strings"

	"github.com/lightbus-go/lightbus/gateway"
)

// RiverUIPath is where the River UI (Config.RiverUI) is served: its pages
// at RiverUIPath+"/" and its JSON API under RiverUIPath+"/api/". It is an
// operator's tool, not part of the JSON API, so openapi.yaml does not
// describe it.
const RiverUIPath = "/admin/river"

// basicChallenge is the WWW-Authenticate header of a 401 under
// RiverUIPath: a browser cannot send a bearer token, so it asks for the
// token as a Basic password instead.
const basicChallenge = `Basic realm="lightbus"`

// isRiverUI reports whether path is the River UI's.
func isRiverUI(path string) bool {
	return path == RiverUIPath || strings.HasPrefix(path, RiverUIPath+"/")
}

// riverUIHandler wraps the River UI in the cross-origin protection of
// net/http: a browser sends Basic credentials with every request to the
// gateway, so another site must not make it retry, cancel or delete jobs.
// Unsafe requests (POST, PUT, PATCH, DELETE) from another origin are
// refused 403.
func (h *Handler) riverUIHandler(ui http.Handler) http.Handler {
	if ui == nil {
		return nil
	}
	protect := http.NewCrossOriginProtection()
	protect.SetDenyHandler(h.handle(func(w http.ResponseWriter, r *http.Request) error {
		return gateway.Errorf(gateway.EForbidden, "cross-origin request to the River UI refused")
	}))
	return protect.Handler(ui)
}

// riverUI serves the River UI to callers with admin.
func (h *Handler) riverUI(w http.ResponseWriter, r *http.Request) error {
	if h.ui == nil {
		return gateway.Errorf(gateway.ENotFound, "the River UI is disabled (LIGHTBUS_RIVER_UI=false)")
	}
	if err := h.svc.AuthorizeRiverUI(r.Context()); err != nil {
		return err
	}
	h.ui.ServeHTTP(w, r)
	return nil
}

// uiToken returns the token of a request to the River UI: the password of
// HTTP Basic credentials (any user name), else a bearer token; "" when the
// request has neither.
func uiToken(r *http.Request) (string, error) {
	values := r.Header.Values("Authorization")
	if len(values) == 1 {
		if scheme, _, _ := strings.Cut(values[0], " "); strings.EqualFold(scheme, "Basic") {
			_, password, ok := r.BasicAuth()
			if !ok || password == "" {
				return "", errBadBasic
			}
			return password, nil
		}
	}
	return bearerToken(r)
}

var errBadBasic = gateway.Errorf(gateway.EUnauthorized, "the River UI takes the API key's token as the Basic password (any user name)")
