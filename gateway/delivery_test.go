package gateway

import (
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"
)

func TestSign(t *testing.T) {
	t.Parallel()

	// The Standard Webhooks specification's published test vector: a
	// receiver's stock verifier must accept what the gateway sends.
	got, err := Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Sign = %q, want %q", got, want)
	}

	if _, err := Sign("whsec_not base64!", "id", "1", nil); err == nil {
		t.Fatal("Sign with a malformed secret: want an error")
	}
}

func TestNewDeliveryRequest(t *testing.T) {
	t.Parallel()

	params := json.RawMessage(`{"name":  "Sally"}`) // spacing kept byte for byte
	ev := &Event{ID: "01936f6e-0000-7000-8000-000000000001", API: "customers", Name: "new_customer", Params: params,
		IdempotencyKey: "order-42", CreatedAt: time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)}
	secret := NewSecret()
	now := time.Unix(1764064800, 0)
	req, err := NewDeliveryRequest(context.Background(), "http://127.0.0.1:9/lightbus/events/create_user", ev, secret, 3, "auth.create_user", now)
	if err != nil {
		t.Fatal(err)
	}
	wantSig, _ := Sign(secret, ev.ID, "1764064800", params)
	want := map[string]string{
		"Content-Type":      "application/json",
		"Ce-Specversion":    "1.0",
		"Ce-Id":             ev.ID,
		"Ce-Source":         "/lightbus/customers",
		"Ce-Type":           "customers.new_customer",
		"Ce-Time":           "2026-11-25T10:00:00.123456Z",
		"Webhook-Id":        ev.ID,
		"Webhook-Timestamp": "1764064800",
		"Webhook-Signature": wantSig,
		"Lightbus-Attempt":  "3",
		"Lightbus-Listener": "auth.create_user",
		"Idempotency-Key":   "order-42",
	}
	for k, v := range want {
		if got := req.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	body, _ := io.ReadAll(req.Body)
	if string(body) != string(params) {
		t.Errorf("body = %s, want the stored bytes %s", body, params)
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
