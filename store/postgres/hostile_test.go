package postgres_test

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/webhook"
	"github.com/lightbus-go/lightbus/store/postgres"
)

// Values that slip past package gateway's rules and that Postgres refuses
// are invalid requests, not internal errors, and store nothing: the
// translation by SQLSTATE is the last line of defence. A refused fire
// fails only itself, also when it shares a group commit.
func TestStoreRefusesWhatPostgresRefuses(t *testing.T) {
	t.Parallel()
	ctx, bundle := setup(t)
	bundle.db.EnableFireBatching(postgres.FireBatchConfig{Window: 50 * time.Millisecond, MaxSize: 100, MaxInFlight: 1})
	t.Cleanup(bundle.db.Close)

	count := func(table string) int {
		var n int
		if err := bundle.pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// A NUL in a text column (22021), past Registration.Validate.
	reg := registration("w1", "audit", nil, gateway.ListenerDeclaration{Name: "log", Events: []string{"shop.paid"}, Path: "/a\x00b"})
	if _, err := bundle.db.RegisterWorker(ctx, reg, webhook.NewSecret, 7); gateway.ErrorCode(err) != gateway.EInvalid {
		t.Fatalf("a NUL in a listener path: %v, want invalid", err)
	}
	if n := count("lightbus_worker") + count("lightbus_listener"); n != 0 {
		t.Fatalf("a refused registration stored %d rows", n)
	}

	// Invalid UTF-8 in a json column (22021), past ValidateParams: in a
	// batch, and group-committed with good fires.
	bad := &gateway.Event{ID: "01936f6e-0000-7000-8000-000000000001", API: "shop", Name: "paid",
		Params: json.RawMessage("{\"a\":\"\xff\"}"), CreatedAt: time.Now().UTC()}
	if _, err := bundle.db.FireEvents(ctx, []*gateway.Event{bad}, time.Hour); gateway.ErrorCode(err) != gateway.EInvalid {
		t.Fatalf("invalid UTF-8 in a batch: %v, want invalid", err)
	}
	events := []*gateway.Event{bad}
	for range 3 {
		ev, err := gateway.NewEvent("shop", "paid", json.RawMessage(`{"a":"ok"}`))
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, ev)
	}
	errs := make([]error, len(events))
	var wg sync.WaitGroup
	for i, ev := range events {
		wg.Go(func() { _, errs[i] = bundle.db.FireEvent(ctx, ev, time.Hour) })
	}
	wg.Wait()
	if gateway.ErrorCode(errs[0]) != gateway.EInvalid {
		t.Fatalf("invalid UTF-8 in parameters: %v, want invalid", errs[0])
	}
	for i, err := range errs[1:] {
		if err != nil {
			t.Fatalf("good fire %d beside a refused one: %v", i+1, err)
		}
	}
	if n := count("lightbus_event"); n != 3 {
		t.Fatalf("%d events stored, want the 3 good ones", n)
	}
}
