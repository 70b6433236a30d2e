package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/store/postgres"
	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type testBundle struct {
	db   *postgres.DB
	pool *pgxpool.Pool
}

func setup(t testing.TB) (context.Context, *testBundle) {
	t.Helper()
	pool := pgtest.New(t)
	db, err := postgres.New(pool, nil)
	if err != nil {
		t.Fatal(err)
	}
	return context.Background(), &testBundle{db: db, pool: pool}
}

func registration(id, service string, apis []gateway.APIDeclaration, listeners ...gateway.ListenerDeclaration) *gateway.Registration {
	return &gateway.Registration{
		WorkerID: id, Service: service, BaseURL: "http://127.0.0.1:9000/" + id, LeaseTTLMS: 60_000,
		APIs: apis, Listeners: listeners,
	}
}

func register(ctx context.Context, t testing.TB, db *postgres.DB, reg *gateway.Registration) *gateway.RegistrationResult {
	t.Helper()
	if err := reg.Validate(); err != nil {
		t.Fatalf("registration: %v", err)
	}
	res, err := db.RegisterWorker(ctx, reg, gateway.NewSecret, 7)
	if err != nil {
		t.Fatalf("RegisterWorker(%s): %v", reg.WorkerID, err)
	}
	return res
}

func fire(ctx context.Context, t *testing.T, db *postgres.DB, api, name, params string) (*gateway.Event, int) {
	t.Helper()
	ev, err := gateway.NewEvent(api, name, json.RawMessage(params))
	if err != nil {
		t.Fatal(err)
	}
	n, err := db.FireEvent(ctx, ev)
	if err != nil {
		t.Fatalf("FireEvent: %v", err)
	}
	return ev, n
}

func TestFireEvent(t *testing.T) {
	t.Parallel()

	t.Run("FansOutToSubscribedGroups", func(t *testing.T) {
		t.Parallel()
		ctx, bundle := setup(t)

		register(ctx, t, bundle.db, registration("a1", "auth", nil,
			gateway.ListenerDeclaration{Name: "create_user", Events: []string{"customers.new_customer"}, Path: "/e/create_user"}))
		register(ctx, t, bundle.db, registration("m1", "mail", nil,
			// Both patterns match: the group still gets one delivery.
			gateway.ListenerDeclaration{Name: "all", Events: []string{"customers.*", "customers.new_customer"}, Path: "/e/all"},
			gateway.ListenerDeclaration{Name: "other", Events: []string{"billing.paid"}, Path: "/e/other"}))

		params := `{"name":  "Sally", "n": 1.50}`
		ev, n := fire(ctx, t, bundle.db, "customers", "new_customer", params)
		if n != 2 {
			t.Fatalf("deliveries = %d, want 2", n)
		}
		detail, err := bundle.db.GetEvent(ctx, ev.ID)
		if err != nil {
			t.Fatal(err)
		}
		if string(detail.Params) != params {
			t.Errorf("stored params %s, want the exact bytes %s", detail.Params, params)
		}
		if !detail.CreatedAt.Equal(ev.CreatedAt) {
			t.Errorf("created_at %v, want %v", detail.CreatedAt, ev.CreatedAt)
		}
		got := map[string]gateway.Delivery{}
		for _, d := range detail.Deliveries {
			got[d.Service+"."+d.Listener] = d
		}
		if len(got) != 2 || got["auth.create_user"].State != gateway.DeliveryPending || got["mail.all"].MaxAttempts != 7 {
			t.Errorf("deliveries = %+v", detail.Deliveries)
		}

		if _, n := fire(ctx, t, bundle.db, "customers", "deleted", `{}`); n != 1 {
			t.Errorf("customers.deleted deliveries = %d, want 1 (the wildcard group)", n)
		}
	})

	t.Run("NoSubscribers", func(t *testing.T) {
		t.Parallel()
		ctx, bundle := setup(t)

		ev, n := fire(ctx, t, bundle.db, "auth", "user_registered", `{}`)
		if n != 0 {
			t.Fatalf("deliveries = %d, want 0", n)
		}
		if _, err := bundle.db.GetEvent(ctx, ev.ID); err != nil {
			t.Fatalf("the event was not stored: %v", err)
		}
	})

	t.Run("DatabaseDown", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()

		pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		db, err := postgres.New(pool, nil)
		if err != nil {
			t.Fatal(err)
		}
		ev, _ := gateway.NewEvent("auth", "x", json.RawMessage(`{}`))
		if _, err := db.FireEvent(ctx, ev); gateway.ErrorCode(err) != gateway.EUnavailable {
			t.Fatalf("FireEvent with the database down: got %v, want unavailable", err)
		}
	})
}

func TestListEvents(t *testing.T) {
	t.Parallel()
	ctx, bundle := setup(t)

	var ids []string
	for i := range 5 {
		name := "a"
		if i%2 == 1 {
			name = "b"
		}
		ev, _ := fire(ctx, t, bundle.db, "api", name, `{}`)
		ids = append(ids, ev.ID)
	}
	fire(ctx, t, bundle.db, "other", "a", `{}`)

	page, err := bundle.db.ListEvents(ctx, gateway.EventQuery{API: "api", Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 2 || page[0].ID != ids[4] || page[1].ID != ids[3] {
		t.Fatalf("first page = %+v, want the two newest", page)
	}
	page, err = bundle.db.ListEvents(ctx, gateway.EventQuery{API: "api", Before: page[1].ID, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 3 || page[0].ID != ids[2] {
		t.Fatalf("second page = %+v", page)
	}
	page, err = bundle.db.ListEvents(ctx, gateway.EventQuery{API: "api", Event: "b", Limit: 10})
	if err != nil || len(page) != 2 {
		t.Fatalf("filter by event: %v, %+v", err, page)
	}
	page, err = bundle.db.ListEvents(ctx, gateway.EventQuery{Since: time.Now().Add(time.Hour), Limit: 10})
	if err != nil || len(page) != 0 {
		t.Fatalf("since the future: %v, %+v", err, page)
	}
}

func TestGetEventNotFound(t *testing.T) {
	t.Parallel()
	ctx, bundle := setup(t)

	_, err := bundle.db.GetEvent(ctx, "01936f6e-0000-7000-8000-000000000000")
	if !errors.Is(err, gateway.ErrNotFound) {
		t.Fatalf("got %v, want not found", err)
	}
}

func TestRegisterWorker(t *testing.T) {
	t.Parallel()

	authAPI := []gateway.APIDeclaration{{Name: "auth", RPCs: []gateway.RPCDeclaration{{Name: "check_password", TimeoutMS: 1500}}}}

	t.Run("HeartbeatKeepsSecretAndRenewsLease", func(t *testing.T) {
		t.Parallel()
		ctx, bundle := setup(t)

		l := gateway.ListenerDeclaration{Name: "create_user", Events: []string{"customers.new_customer"}, Path: "/e"}
		first := register(ctx, t, bundle.db, registration("a1", "auth", authAPI, l))
		second := register(ctx, t, bundle.db, registration("a1", "auth", authAPI, l))
		other := register(ctx, t, bundle.db, registration("a2", "auth", authAPI, l))
		if first.Listeners[0].Secret == "" || first.Listeners[0].Secret != second.Listeners[0].Secret || other.Listeners[0].Secret != first.Listeners[0].Secret {
			t.Fatalf("a group's secret must be stable and shared: %q %q %q", first.Listeners[0].Secret, second.Listeners[0].Secret, other.Listeners[0].Secret)
		}
		if !second.Worker.ExpiresAt.After(first.Worker.ExpiresAt) || !second.Worker.RegisteredAt.Equal(first.Worker.RegisteredAt) {
			t.Errorf("heartbeat: expires %v -> %v, registered %v -> %v", first.Worker.ExpiresAt, second.Worker.ExpiresAt, first.Worker.RegisteredAt, second.Worker.RegisteredAt)
		}
		workers, err := bundle.db.ListWorkers(ctx)
		if err != nil || len(workers) != 2 {
			t.Fatalf("ListWorkers = %+v, %v", workers, err)
		}
	})

	t.Run("APIBelongsToOneService", func(t *testing.T) {
		t.Parallel()
		ctx, bundle := setup(t)

		register(ctx, t, bundle.db, registration("a1", "auth", authAPI))
		_, err := bundle.db.RegisterWorker(ctx, registration("x1", "intruder", authAPI), gateway.NewSecret, 7)
		if gateway.ErrorCode(err) != gateway.EConflict {
			t.Fatalf("another service claiming a live API: got %v, want conflict", err)
		}
		// Once the owner has no live worker, another service may take the API over.
		if err := bundle.db.DeregisterWorker(ctx, "a1"); err != nil {
			t.Fatal(err)
		}
		register(ctx, t, bundle.db, registration("x1", "intruder", authAPI))
	})

	t.Run("LatestSubscriptionsWin", func(t *testing.T) {
		t.Parallel()
		ctx, bundle := setup(t)

		register(ctx, t, bundle.db, registration("m1", "mail", nil,
			gateway.ListenerDeclaration{Name: "l", Events: []string{"a.one", "a.two"}, Path: "/e"}))
		register(ctx, t, bundle.db, registration("m1", "mail", nil,
			gateway.ListenerDeclaration{Name: "l", Events: []string{"a.two", "a.three"}, Path: "/e"}))
		for name, want := range map[string]int{"one": 0, "two": 1, "three": 1} {
			if _, n := fire(ctx, t, bundle.db, "a", name, `{}`); n != want {
				t.Errorf("a.%s deliveries = %d, want %d", name, n, want)
			}
		}
	})

	t.Run("LeaseExpiry", func(t *testing.T) {
		t.Parallel()
		ctx, bundle := setup(t)

		reg := registration("a1", "auth", authAPI)
		reg.LeaseTTLMS = 500
		register(ctx, t, bundle.db, reg)
		targets, timeout, err := bundle.db.RPCTargets(ctx, "auth", "check_password")
		if err != nil || len(targets) != 1 || timeout != 1500*time.Millisecond {
			t.Fatalf("RPCTargets = %+v, %s, %v", targets, timeout, err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			workers, err := bundle.db.ListWorkers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(workers) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the worker is still listed long after its lease expired")
			}
			time.Sleep(50 * time.Millisecond)
		}
		targets, timeout, err = bundle.db.RPCTargets(ctx, "auth", "check_password")
		if err != nil || len(targets) != 0 || timeout != 1500*time.Millisecond {
			t.Fatalf("after expiry: RPCTargets = %+v, %s, %v; want no target, the declared timeout kept", targets, timeout, err)
		}
	})
}

func TestDeliveryTarget(t *testing.T) {
	t.Parallel()
	ctx, bundle := setup(t)

	l := gateway.ListenerDeclaration{Name: "create_user", Events: []string{"customers.new_customer"}, Path: "/lightbus/events/create_user"}
	res := register(ctx, t, bundle.db, registration("a1", "auth", nil, l))
	register(ctx, t, bundle.db, registration("a2", "auth", nil, l))
	ev, _ := fire(ctx, t, bundle.db, "customers", "new_customer", `{"x": 1}`)

	target, err := bundle.db.DeliveryTarget(ctx, ev.ID, "auth", "create_user")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"http://127.0.0.1:9000/a1/lightbus/events/create_user", "http://127.0.0.1:9000/a2/lightbus/events/create_user"}
	if len(target.Endpoints) != 2 || target.Endpoints[0] != want[0] || target.Endpoints[1] != want[1] {
		t.Errorf("endpoints = %v, want %v", target.Endpoints, want)
	}
	if target.Secret != res.Listeners[0].Secret || string(target.Event.Params) != `{"x": 1}` {
		t.Errorf("target = %+v", target)
	}

	if err := bundle.db.DeregisterWorker(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	target, err = bundle.db.DeliveryTarget(ctx, ev.ID, "auth", "create_user")
	if err != nil || len(target.Endpoints) != 1 {
		t.Fatalf("after deregistering a1: %+v, %v", target, err)
	}
	if _, err := bundle.db.DeliveryTarget(ctx, ev.ID, "auth", "missing"); !errors.Is(err, gateway.ErrNotFound) {
		t.Errorf("unknown group: got %v, want not found", err)
	}
}
