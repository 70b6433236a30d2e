package gateway

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Bounds on a listener group's delivery policy.
const (
	// MaxPolicyAttempts is the largest max_attempts a group may ask for.
	MaxPolicyAttempts = 1000
	// MaxDeliveryTimeout is the longest timeout_ms a group may ask for.
	MaxDeliveryTimeout = 2 * time.Minute
	// MinDeliveryTimeout is the shortest timeout_ms a group may ask for.
	MinDeliveryTimeout = 10 * time.Millisecond
	// MaxBackoff is the largest backoff a group may ask for.
	MaxBackoff = 24 * time.Hour
	// MaxInFlightLimit is the largest max_in_flight a group may ask for.
	MaxInFlightLimit = 10000
	// MaxRetryAfter caps how long a listener's Retry-After can hold a
	// delivery back.
	MaxRetryAfter = time.Hour
)

// DeliveryPolicy is how a listener group's deliveries are attempted: how many
// times, how far apart, how long each request may take and how many run at
// once. A zero field means the gateway's default.
type DeliveryPolicy struct {
	// MaxAttempts is the number of attempts before a delivery is dead.
	MaxAttempts int `json:"max_attempts,omitempty"`
	// Backoff spaces failed attempts.
	Backoff *Backoff `json:"backoff,omitempty"`
	// TimeoutMS bounds one delivery request.
	TimeoutMS int `json:"timeout_ms,omitempty"`
	// MaxInFlight bounds the group's concurrent delivery requests, per
	// gateway replica.
	MaxInFlight int `json:"max_in_flight,omitempty"`
	// Ordered makes the group's deliveries one at a time in commit order:
	// a failing delivery holds back the ones after it until it succeeds or
	// is dead (docs/DELIVERY.md, "Ordered groups"). MaxInFlight does not
	// apply to it.
	Ordered bool `json:"ordered,omitempty"`
}

// Backoff is exponential backoff: the wait after failed attempt n is
// BaseMS·2^(n-1), capped at MaxMS, plus up to 20% jitter.
type Backoff struct {
	BaseMS int `json:"base_ms,omitempty"`
	MaxMS  int `json:"max_ms,omitempty"`
}

// Validate checks the policy's bounds.
func (p *DeliveryPolicy) Validate() *Error {
	if p == nil {
		return nil
	}
	if p.MaxAttempts < 0 || p.MaxAttempts > MaxPolicyAttempts {
		return Errorf(EInvalid, "policy.max_attempts %d: want 1 to %d, or 0 for the gateway default", p.MaxAttempts, MaxPolicyAttempts)
	}
	if p.TimeoutMS != 0 && (p.TimeoutMS < int(MinDeliveryTimeout.Milliseconds()) || p.TimeoutMS > int(MaxDeliveryTimeout.Milliseconds())) {
		return Errorf(EInvalid, "policy.timeout_ms %d: want %d to %d, or 0 for the gateway default", p.TimeoutMS, MinDeliveryTimeout.Milliseconds(), MaxDeliveryTimeout.Milliseconds())
	}
	if p.MaxInFlight < 0 || p.MaxInFlight > MaxInFlightLimit {
		return Errorf(EInvalid, "policy.max_in_flight %d: want 1 to %d, or 0 for no limit", p.MaxInFlight, MaxInFlightLimit)
	}
	if b := p.Backoff; b != nil {
		maxMS := int(MaxBackoff.Milliseconds())
		if b.BaseMS < 0 || b.BaseMS > maxMS || b.MaxMS < 0 || b.MaxMS > maxMS {
			return Errorf(EInvalid, "policy.backoff: base_ms and max_ms must be 0 to %d", maxMS)
		}
		if b.BaseMS > 0 && b.MaxMS > 0 && b.BaseMS > b.MaxMS {
			return Errorf(EInvalid, "policy.backoff: base_ms %d exceeds max_ms %d", b.BaseMS, b.MaxMS)
		}
	}
	return nil
}

// Timeout returns the policy's request timeout, or def when unset.
func (p *DeliveryPolicy) Timeout(def time.Duration) time.Duration {
	if p == nil || p.TimeoutMS <= 0 {
		return def
	}
	return time.Duration(p.TimeoutMS) * time.Millisecond
}

// Retry returns the policy's retry schedule, filling unset fields from def.
func (p *DeliveryPolicy) Retry(def RetryPolicy) RetryPolicy {
	if p == nil || p.Backoff == nil {
		return def
	}
	r := def
	if p.Backoff.BaseMS > 0 {
		r.Base = time.Duration(p.Backoff.BaseMS) * time.Millisecond
	}
	if p.Backoff.MaxMS > 0 {
		r.Max = time.Duration(p.Backoff.MaxMS) * time.Millisecond
	}
	r.Max = max(r.Max, r.Base)
	return r
}

// ParseRetryAfter reads a Retry-After header, in seconds or as an HTTP date,
// relative to now. It returns the wait clamped to [0, MaxRetryAfter] and
// whether the header was present and valid.
func ParseRetryAfter(h string, now time.Time) (time.Duration, bool) {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter, true
		}
		d = time.Duration(secs) * time.Second
	} else {
		t, err := http.ParseTime(h)
		if err != nil {
			return 0, false
		}
		d = t.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter), true
}

// RetryPolicy is the delivery backoff: Base doubled with each failed
// attempt, capped at Max, with up to Jitter (a fraction) added at random.
type RetryPolicy struct {
	Base   time.Duration
	Max    time.Duration
	Jitter float64
}

// Delay returns the wait after the given failed attempt (counted from 1).
func (p *RetryPolicy) Delay(attempt int) time.Duration {
	d := p.Base
	for i := 1; i < attempt && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	if p.Jitter > 0 {
		d += time.Duration(rand.Float64() * p.Jitter * float64(d))
	}
	return d
}
