package dispatch

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/webhook"
)

var benchParams = json.RawMessage(`{"user":"sally","email":"sally@example.com","plan":"pro","tags":["a","b"],"n":12}`)

func BenchmarkNewDeliveryRequest(b *testing.B) {
	ev, err := gateway.NewEvent("customers", "new_customer", benchParams)
	if err != nil {
		b.Fatal(err)
	}
	secret := webhook.NewSecret()
	ctx := context.Background()
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewDeliveryRequest(ctx, "http://127.0.0.1:9000/events/create_user", ev, secret, 1, "auth.create_user", now); err != nil {
			b.Fatal(err)
		}
	}
}
