package gateway

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()

	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		header string
		want   time.Duration
		ok     bool
	}{
		{"", 0, false},
		{"3", 3 * time.Second, true},
		{" 0 ", 0, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{"86400", MaxRetryAfter, true},
		{"99999999999999999", MaxRetryAfter, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0, true},
		{now.Add(48 * time.Hour).Format(http.TimeFormat), MaxRetryAfter, true},
	} {
		got, ok := ParseRetryAfter(tc.header, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseRetryAfter(%q) = %s, %v; want %s, %v", tc.header, got, ok, tc.want, tc.ok)
		}
	}
}

func TestDeliveryPolicy(t *testing.T) {
	t.Parallel()

	def := RetryPolicy{Base: time.Second, Max: time.Hour, Jitter: 0.2}
	var none *DeliveryPolicy
	if none.Validate() != nil || none.Timeout(3*time.Second) != 3*time.Second || none.Retry(def) != def {
		t.Fatal("a nil policy must be valid and give the defaults")
	}
	p := &DeliveryPolicy{MaxAttempts: 5, Backoff: &Backoff{BaseMS: 100}, TimeoutMS: 2500, MaxInFlight: 3}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := p.Timeout(time.Second); got != 2500*time.Millisecond {
		t.Errorf("Timeout = %s", got)
	}
	if got := p.Retry(def); got.Base != 100*time.Millisecond || got.Max != time.Hour || got.Jitter != 0.2 {
		t.Errorf("Retry = %+v", got)
	}
	// A base above the default cap raises the cap to the base.
	if got := (&DeliveryPolicy{Backoff: &Backoff{BaseMS: 2000}}).Retry(RetryPolicy{Base: 10 * time.Millisecond, Max: time.Second}); got.Max != 2*time.Second {
		t.Errorf("Retry with base above the default max = %+v", got)
	}
	for name, bad := range map[string]DeliveryPolicy{
		"negative attempts":   {MaxAttempts: -1},
		"too many attempts":   {MaxAttempts: MaxPolicyAttempts + 1},
		"timeout too short":   {TimeoutMS: 1},
		"timeout too long":    {TimeoutMS: int(MaxDeliveryTimeout.Milliseconds()) + 1},
		"negative in flight":  {MaxInFlight: -2},
		"base above max":      {Backoff: &Backoff{BaseMS: 500, MaxMS: 100}},
		"negative base":       {Backoff: &Backoff{BaseMS: -1}},
		"max above a day":     {Backoff: &Backoff{MaxMS: int(MaxBackoff.Milliseconds()) + 1}},
		"in flight above cap": {MaxInFlight: MaxInFlightLimit + 1},
	} {
		if err := bad.Validate(); err == nil || err.Code != EInvalid {
			t.Errorf("%s: Validate = %v, want invalid", name, err)
		}
	}
}

func TestRetryPolicyDelay(t *testing.T) {
	t.Parallel()

	p := &RetryPolicy{Base: time.Second, Max: 10 * time.Second}
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 5: 10 * time.Second, 40: 10 * time.Second} {
		if got := p.Delay(attempt); got != want {
			t.Errorf("Delay(%d) = %s, want %s", attempt, got, want)
		}
	}
	jittered := &RetryPolicy{Base: time.Second, Max: time.Minute, Jitter: 0.5}
	for range 100 {
		if d := jittered.Delay(2); d < 2*time.Second || d > 3*time.Second {
			t.Fatalf("Delay(2) with 50%% jitter = %s, want within [2s, 3s]", d)
		}
	}
}
