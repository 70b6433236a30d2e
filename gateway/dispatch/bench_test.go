package dispatch

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
)

var benchParams = json.RawMessage(`{"user":"sally","email":"sally@example.com","plan":"pro","tags":["a","b"],"n":12}`)

func BenchmarkSign(b *testing.B) {
	secret := gateway.NewSecret()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Sign(secret, "019ab4b6-6c1e-7d3a-9a4e-3b2d9c1e0f00", "1764064800", benchParams); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewDeliveryRequest(b *testing.B) {
	ev, err := gateway.NewEvent("customers", "new_customer", benchParams)
	if err != nil {
		b.Fatal(err)
	}
	secret := gateway.NewSecret()
	ctx := context.Background()
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewDeliveryRequest(ctx, "http://127.0.0.1:9000/events/create_user", ev, secret, 1, "auth.create_user", now); err != nil {
			b.Fatal(err)
		}
	}
}
