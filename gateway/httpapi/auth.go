package httpapi

import (
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
)

// openPaths are served to anyone, whatever the authentication mode.
var openPaths = map[string]bool{"/healthz": true, "/readyz": true, "/openapi.yaml": true}

// authenticate is the middleware that turns a request's bearer token (for
// the River UI, also a Basic password: uiToken) into the principal the
// service checks (gateway.WithPrincipal), and holds each key to its rate
// limit. A request without a valid token is answered 401
// here; whether the key may do what it asks is the service's to decide.
// With authentication off it is not in the chain at all.
func (h *Handler) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if openPaths[r.URL.Path] {
			next.ServeHTTP(w, r)
			return
		}
		credentials := bearerToken
		if isRiverUI(r.URL.Path) {
			credentials = uiToken
		}
		token, err := credentials(r)
		if err != nil {
			writeError(w, r, h.logger, err)
			return
		}
		p, err := h.svc.Authenticate(r.Context(), token)
		if err != nil {
			writeError(w, r, h.logger, err)
			return
		}
		if h.limits != nil {
			if wait, ok := h.limits.allow(p.Key, time.Now()); !ok {
				writeError(w, r, h.logger, &gateway.Error{Code: gateway.ERateLimited,
					Message: "the API key " + p.Key + " is over its rate limit", RetryAfter: wait})
				return
			}
		}
		next.ServeHTTP(w, r.WithContext(gateway.WithPrincipal(r.Context(), p)))
	})
}

var errBadAuthorization = gateway.Errorf(gateway.EUnauthorized, "the Authorization header must be: Bearer <token>")

// bearerToken returns the token of the request's Authorization header, ""
// when it has none.
func bearerToken(r *http.Request) (string, error) {
	values := r.Header.Values("Authorization")
	switch len(values) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", errBadAuthorization
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", errBadAuthorization
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return "", errBadAuthorization
	}
	return token, nil
}

// limiter holds each API key to a rate (requests a second) with a burst,
// per replica: a token bucket per key.
type limiter struct {
	rate  float64
	burst float64

	mu      sync.RWMutex
	buckets map[string]*bucket
}

// bucket is one key's token bucket.
type bucket struct {
	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// newLimiter returns a limiter of rate requests a second with bursts of
// burst (0: a second's worth, at least 1), or nil for no limit (rate 0).
func newLimiter(rate float64, burst int) *limiter {
	if rate <= 0 {
		return nil
	}
	b := float64(burst)
	if burst <= 0 {
		b = math.Max(1, math.Ceil(rate))
	}
	return &limiter{rate: rate, burst: b, buckets: map[string]*bucket{}}
}

// allow takes a token from key's bucket at now. When there is none it
// returns false and how long until there is one.
func (l *limiter) allow(key string, now time.Time) (time.Duration, bool) {
	l.mu.RLock()
	b := l.buckets[key]
	l.mu.RUnlock()
	if b == nil {
		l.mu.Lock()
		if b = l.buckets[key]; b == nil {
			b = &bucket{tokens: l.burst, last: now}
			l.buckets[key] = b
		}
		l.mu.Unlock()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = math.Min(l.burst, b.tokens+elapsed.Seconds()*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return time.Duration((1 - b.tokens) / l.rate * float64(time.Second)), false
}
