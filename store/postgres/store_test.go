package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/webhook"
	"github.com/lightbus-go/lightbus/store/postgres"
	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type testBundle struct {
	db   *postgres.DB
	pool *pgxpool.Pool
}

func setup(t testing.TB, opts ...postgres.Option) (context.Context, *testBundle) {
	t.Helper()
	pool := pgtest.New(t)
	db, err := postgres.New(pool, nil, opts...)
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
	res, err := db.RegisterWorker(ctx, reg, webhook.NewSecret, 7)
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
	res, err := db.FireEvent(ctx, ev, time.Hour)
	if err != nil {
		t.Fatalf("FireEvent: %v", err)
	}
	if res.ID != ev.ID || res.Repeat {
		t.Fatalf("FireEvent = %+v, want a new event %s", res, ev.ID)
	}
	return ev, res.Deliveries
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

	page, err := bundle.db.ListEvents(ctx, gateway.EventQuery{EventFilter: gateway.EventFilter{API: "api"}, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 2 || page[0].ID != ids[4] || page[1].ID != ids[3] {
		t.Fatalf("first page = %+v, want the two newest", page)
	}
	page, err = bundle.db.ListEvents(ctx, gateway.EventQuery{EventFilter: gateway.EventFilter{API: "api"}, Before: page[1].ID, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 3 || page[0].ID != ids[2] {
		t.Fatalf("second page = %+v", page)
	}
	page, err = bundle.db.ListEvents(ctx, gateway.EventQuery{EventFilter: gateway.EventFilter{API: "api", Event: "b"}, Limit: 10})
	if err != nil || len(page) != 2 {
		t.Fatalf("filter by event: %v, %+v", err, page)
	}
	page, err = bundle.db.ListEvents(ctx, gateway.EventQuery{EventFilter: gateway.EventFilter{Since: time.Now().Add(time.Hour)}, Limit: 10})
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
		_, err := bundle.db.RegisterWorker(ctx, registration("x1", "intruder", authAPI), webhook.NewSecret, 7)
		if gateway.ErrorCode(err) != gateway.EConflict {
			t.Fatalf("another service claiming a live API: got %v, want conflict", err)
		}
		if err := bundle.db.ReleaseAPI(ctx, "auth"); gateway.ErrorCode(err) != gateway.EConflict {
			t.Fatalf("releasing an API a live worker of its owner provides: got %v, want conflict", err)
		}
		// The owner having no live worker changes nothing: the API stays its.
		if err := bundle.db.DeregisterWorker(ctx, "a1"); err != nil {
			t.Fatal(err)
		}
		_, err = bundle.db.RegisterWorker(ctx, registration("x1", "intruder", authAPI), webhook.NewSecret, 7)
		if msg := gateway.ErrorMessage(err); gateway.ErrorCode(err) != gateway.EConflict || !strings.Contains(msg, `"auth"`) || !strings.Contains(msg, "release") {
			t.Fatalf("another service claiming an API whose owner has no live worker: got %v, want a conflict naming the owner and the release", err)
		}
		if n := countRows(ctx, t, bundle.pool, `SELECT count(*) FROM lightbus_worker WHERE id = 'x1'`); n != 0 {
			t.Fatalf("a refused registration stored its worker")
		}
		// An admin releases it; the next service to register it owns it.
		if err := bundle.db.ReleaseAPI(ctx, "auth"); err != nil {
			t.Fatalf("release: %v", err)
		}
		if err := bundle.db.ReleaseAPI(ctx, "auth"); gateway.ErrorCode(err) != gateway.ENotFound {
			t.Fatalf("releasing an API without owner: got %v, want not_found", err)
		}
		register(ctx, t, bundle.db, registration("x1", "intruder", authAPI))
		if err := bundle.db.DeregisterWorker(ctx, "x1"); err != nil {
			t.Fatal(err)
		}
		if _, err := bundle.db.RegisterWorker(ctx, registration("a1", "auth", authAPI), webhook.NewSecret, 7); gateway.ErrorCode(err) != gateway.EConflict {
			t.Fatalf("the former owner after a release and a new claim: got %v, want conflict", err)
		}
	})

	t.Run("RPCSecretRotatesOnANewInstance", func(t *testing.T) {
		t.Parallel()
		ctx, bundle := setup(t)

		targets := func() []string {
			t.Helper()
			got, _, err := bundle.db.RPCTargets(ctx, "auth", "check_password")
			if err != nil || len(got) != 1 {
				t.Fatalf("RPCTargets = %+v, %v", got, err)
			}
			return got[0].Secrets
		}
		put := func(instance string) *gateway.RegistrationResult {
			reg := registration("a1", "auth", authAPI)
			reg.InstanceID = instance
			return register(ctx, t, bundle.db, reg)
		}
		first := put("p1")
		if !strings.HasPrefix(first.RPCSecret, webhook.SecretPrefix) || !slices.Equal(targets(), []string{first.RPCSecret}) {
			t.Fatalf("first registration: secret %q, targets %q", first.RPCSecret, targets())
		}
		if beat := put("p1"); beat.RPCSecret != first.RPCSecret || !beat.Worker.RegisteredAt.Equal(first.Worker.RegisteredAt) {
			t.Fatalf("a heartbeat changed the secret or the registration: %q -> %q", first.RPCSecret, beat.RPCSecret)
		}
		if beat := put(""); beat.RPCSecret != first.RPCSecret {
			t.Fatalf("a heartbeat without instance changed the secret")
		}
		second := put("p2")
		if second.RPCSecret == first.RPCSecret || second.Worker.RegisteredAt.Equal(first.Worker.RegisteredAt) {
			t.Fatalf("a new instance kept the secret or the registration time")
		}
		if got := targets(); !slices.Equal(got, []string{second.RPCSecret, first.RPCSecret}) {
			t.Fatalf("during the overlap RPCTargets gives %q, want the new secret then the previous one", got)
		}
		if beat := put("p2"); beat.RPCSecret != second.RPCSecret || !slices.Equal(targets(), []string{second.RPCSecret, first.RPCSecret}) {
			t.Fatalf("the new instance's heartbeat changed the secrets")
		}
		if _, err := bundle.pool.Exec(ctx, `UPDATE lightbus_worker SET rpc_secret_previous_until = now()`); err != nil {
			t.Fatal(err)
		}
		if got := targets(); !slices.Equal(got, []string{second.RPCSecret}) {
			t.Fatalf("after the overlap RPCTargets gives %q, want only the new secret", got)
		}
	})

	t.Run("RPCSecretOverlapOption", func(t *testing.T) {
		t.Parallel()
		ctx, bundle := setup(t, postgres.WithRPCSecretOverlap(time.Hour))

		reg := registration("a1", "auth", authAPI)
		reg.InstanceID = "p1"
		register(ctx, t, bundle.db, reg)
		reg.InstanceID = "p2"
		register(ctx, t, bundle.db, reg)
		var left time.Duration
		if err := bundle.pool.QueryRow(ctx, `SELECT EXTRACT(epoch FROM rpc_secret_previous_until - now()) * interval '1 second' FROM lightbus_worker`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left < 59*time.Minute || left > time.Hour {
			t.Fatalf("the previous secret signs for %s more, want the configured hour", left)
		}
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

		// The lease must outlast the first look-up below: with 500 ms, a
		// run at a load average of 14 read the targets after the lease
		// had ended, and found none.
		reg := registration("a1", "auth", authAPI)
		reg.LeaseTTLMS = 3000
		registered := time.Now()
		register(ctx, t, bundle.db, reg)
		targets, timeout, err := bundle.db.RPCTargets(ctx, "auth", "check_password")
		if err != nil || len(targets) != 1 || timeout != 1500*time.Millisecond {
			t.Fatalf("RPCTargets %s after registering with a 3s lease = %+v, %s, %v", time.Since(registered), targets, timeout, err)
		}
		deadline := time.Now().Add(10 * time.Second)
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
	// Every change goes through the store, so a group cache must not
	// change a single answer.
	for name, opts := range map[string][]postgres.Option{
		"no cache":    nil,
		"group cache": {postgres.WithDeliveryTargetTTL(time.Hour)},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testDeliveryTarget(t, opts)
		})
	}
}

func testDeliveryTarget(t *testing.T, opts []postgres.Option) {
	ctx, bundle := setup(t, opts...)

	l := gateway.ListenerDeclaration{Name: "create_user", Events: []string{"customers.new_customer"}, Path: "/lightbus/events/create_user"}
	res := register(ctx, t, bundle.db, registration("a1", "auth", nil, l))
	l.Policy = &gateway.DeliveryPolicy{Backoff: &gateway.Backoff{BaseMS: 10, MaxMS: 100}, TimeoutMS: 1500, MaxInFlight: 4}
	res2 := register(ctx, t, bundle.db, registration("a2", "auth", nil, l))
	ev, _ := fire(ctx, t, bundle.db, "customers", "new_customer", `{"x": 1}`)

	target, err := bundle.db.DeliveryTarget(ctx, ev.ID, "auth", "create_user")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"http://127.0.0.1:9000/a1/lightbus/events/create_user", "http://127.0.0.1:9000/a2/lightbus/events/create_user"}
	if len(target.Endpoints) != 2 || target.Endpoints[0] != (gateway.Endpoint{WorkerID: "a1", URL: want[0]}) ||
		target.Endpoints[1] != (gateway.Endpoint{WorkerID: "a2", URL: want[1]}) {
		t.Errorf("endpoints = %v, want %v", target.Endpoints, want)
	}
	if target.Secret != res.Listeners[0].Secret || string(target.Event.Params) != `{"x": 1}` {
		t.Errorf("target = %+v", target)
	}
	// The latest registration's policy wins; max_attempts is resolved.
	p := target.Policy
	if p.MaxAttempts != 7 || p.Backoff == nil || *p.Backoff != (gateway.Backoff{BaseMS: 10, MaxMS: 100}) || p.TimeoutMS != 1500 || p.MaxInFlight != 4 {
		t.Errorf("policy = %+v", p)
	}
	if g := res2.Listeners[0].Policy; g.MaxInFlight != 4 || g.MaxAttempts != 7 {
		t.Errorf("granted policy = %+v", g)
	}

	if err := bundle.db.RemoveEndpoint(ctx, "auth", "create_user", "a2"); err != nil {
		t.Fatal(err)
	}
	target, err = bundle.db.DeliveryTarget(ctx, ev.ID, "auth", "create_user")
	if err != nil || len(target.Endpoints) != 1 || target.Endpoints[0].WorkerID != "a1" {
		t.Fatalf("after removing a2's endpoint: %+v, %v", target, err)
	}
	register(ctx, t, bundle.db, registration("a2", "auth", nil, l)) // a heartbeat puts it back

	if err := bundle.db.DeregisterWorker(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	target, err = bundle.db.DeliveryTarget(ctx, ev.ID, "auth", "create_user")
	if err != nil || len(target.Endpoints) != 1 || target.Endpoints[0].WorkerID != "a2" {
		t.Fatalf("after deregistering a1: %+v, %v", target, err)
	}
	if _, err := bundle.db.DeliveryTarget(ctx, ev.ID, "auth", "missing"); !errors.Is(err, gateway.ErrNotFound) {
		t.Errorf("unknown group: got %v, want not found", err)
	}
	if _, err := bundle.db.DeliveryTarget(ctx, "0193a5a0-0000-7000-8000-000000000000", "auth", "create_user"); !errors.Is(err, gateway.ErrNotFound) {
		t.Errorf("unknown event of a known group: got %v, want not found", err)
	}
}

// Deliveries that start together share event reads: one event alone or
// many in one statement, each caller getting its own.
func TestDeliveryTargetConcurrentReads(t *testing.T) {
	t.Parallel()
	ctx, bundle := setup(t, postgres.WithDeliveryTargetTTL(time.Hour))
	l := gateway.ListenerDeclaration{Name: "create_user", Events: []string{"customers.new_customer"}, Path: "/e"}
	register(ctx, t, bundle.db, registration("a1", "auth", nil, l))
	ids := make([]string, 48)
	for i := range ids {
		ev, _ := fire(ctx, t, bundle.db, "customers", "new_customer", fmt.Sprintf(`{"n": %d}`, i))
		ids[i] = ev.ID
	}
	// A missing event in the same reads is not found, and fails only itself.
	ids = append(ids, "0193a5a0-0000-7000-8000-000000000000")
	if _, err := bundle.db.DeliveryTarget(ctx, ids[0], "auth", "create_user"); err != nil {
		t.Fatal(err) // the group is cached: what follows reads only events
	}
	// Events cannot be read until the lock goes: the first reads wait, one
	// event each, and the deliveries arriving meanwhile queue for the next.
	// The lock and the watch on it hold connections of their own, taken
	// before the reads can take the pool's others.
	watch, err := bundle.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Release()
	lock, err := bundle.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lock.Rollback(ctx) }()
	if _, err := lock.Exec(ctx, `LOCK TABLE lightbus_event IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			target, err := bundle.db.DeliveryTarget(ctx, id, "auth", "create_user")
			switch {
			case i == len(ids)-1:
				if !errors.Is(err, gateway.ErrNotFound) {
					errs[i] = fmt.Errorf("missing event: got %v, want not found", err)
				}
			case err != nil:
				errs[i] = err
			case target.Event.ID != id || string(target.Event.Params) != fmt.Sprintf(`{"n": %d}`, i):
				errs[i] = fmt.Errorf("event %d: got %s %s", i, target.Event.ID, target.Event.Params)
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var waiting int
		if err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
			WHERE c.relname = 'lightbus_event' AND NOT l.granted`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			var activity string
			_ = watch.QueryRow(ctx, `SELECT string_agg(state || ' ' || coalesce(wait_event_type, '-') || ' ' || left(query, 60), E'\n')
				FROM pg_stat_activity WHERE datname = current_database()`).Scan(&activity)
			t.Fatalf("no event read waited for the lock; sessions:\n%s", activity)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the other deliveries queue behind the waiting reads
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if target, err := bundle.db.DeliveryTarget(ctx, strings.ToUpper(ids[0]), "auth", "create_user"); err != nil || target.Event.ID != ids[0] {
		t.Errorf("event id in capitals: %+v, %v; want event %s", target, err, ids[0])
	}
	if _, err := bundle.db.DeliveryTarget(ctx, "not-a-uuid", "auth", "create_user"); !errors.Is(err, gateway.ErrNotFound) {
		t.Errorf("malformed event id: %v, want not found", err)
	}
}

func TestDeliveryTargetCache(t *testing.T) {
	t.Parallel()
	ctx, bundle := setup(t, postgres.WithDeliveryTargetTTL(time.Hour))

	l := gateway.ListenerDeclaration{Name: "create_user", Events: []string{"customers.new_customer"}, Path: "/e"}
	res := register(ctx, t, bundle.db, registration("a1", "auth", nil, l))
	secret := res.Listeners[0].Secret
	ev1, _ := fire(ctx, t, bundle.db, "customers", "new_customer", `{"n": 1}`)
	ev2, _ := fire(ctx, t, bundle.db, "customers", "new_customer", `{"n": 2}`)
	if _, err := bundle.db.DeliveryTarget(ctx, ev1.ID, "auth", "create_user"); err != nil {
		t.Fatal(err)
	}

	// Changed behind the store's back (as by another replica): the cached
	// group is still used, with each delivery's own event.
	if _, err := bundle.pool.Exec(ctx, `UPDATE lightbus_listener SET secret = 'whsec_changed' WHERE service = 'auth'`); err != nil {
		t.Fatal(err)
	}
	target, err := bundle.db.DeliveryTarget(ctx, ev2.ID, "auth", "create_user")
	if err != nil || target.Secret != secret || target.Event.ID != ev2.ID || string(target.Event.Params) != `{"n": 2}` {
		t.Fatalf("cached group: %+v, %v; want the cached secret and event 2", target, err)
	}

	// A worker's lease is kept with the group: once it has ended the
	// endpoint is not used; once every one has, the group is read again.
	exec := func(sql string) {
		t.Helper()
		if _, err := bundle.pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	exec(`UPDATE lightbus_worker SET expires_at = now() + interval '1 second'`)
	a1Set := time.Now()                                             // a1's lease ends by a1Set+1s, and not before the read below
	register(ctx, t, bundle.db, registration("a2", "auth", nil, l)) // a registration drops the cache
	exec(`UPDATE lightbus_worker SET expires_at = now() + interval '5 seconds' WHERE id = 'a2'`)
	target, err = bundle.db.DeliveryTarget(ctx, ev1.ID, "auth", "create_user")
	readAt := time.Now() // a2's lease ends by readAt+5s
	if err != nil || target.Secret != "whsec_changed" || len(target.Endpoints) != 2 {
		t.Fatalf("after a registration: %+v, %v; want the group read again, two endpoints", target, err)
	}
	exec(`UPDATE lightbus_listener SET secret = 'whsec_third' WHERE service = 'auth'`)
	time.Sleep(time.Until(a1Set.Add(1200 * time.Millisecond)))
	target, err = bundle.db.DeliveryTarget(ctx, ev1.ID, "auth", "create_user")
	if err != nil || target.Secret != "whsec_changed" || len(target.Endpoints) != 1 || target.Endpoints[0].WorkerID != "a2" {
		t.Fatalf("after a1's lease ended: %+v, %v; want the cached group without a1", target, err)
	}
	time.Sleep(time.Until(readAt.Add(5200 * time.Millisecond)))
	target, err = bundle.db.DeliveryTarget(ctx, ev1.ID, "auth", "create_user")
	if err != nil || target.Secret != "whsec_third" || len(target.Endpoints) != 0 {
		t.Fatalf("after both leases ended: %+v, %v; want the group read again, no endpoint", target, err)
	}
}

func TestEventBytesWithBackslashes(t *testing.T) {
	t.Parallel()
	ctx, bundle := setup(t)

	// Backslashes and escaped quotes must round-trip byte for byte (a
	// text-to-bytea cast would read them as escapes and fail).
	params := `{"q": "a\"b\\c \u00e9"}`
	l := gateway.ListenerDeclaration{Name: "all", Events: []string{"shop.*"}, Path: "/h"}
	register(ctx, t, bundle.db, registration("w1", "audit", nil, l))
	ev, _ := fire(ctx, t, bundle.db, "shop", "order_placed", params)
	got, err := bundle.db.GetEvent(ctx, ev.ID)
	if err != nil || string(got.Params) != params {
		t.Fatalf("GetEvent = %s, %v; want %s", got.Params, err, params)
	}
	target, err := bundle.db.DeliveryTarget(ctx, ev.ID, "audit", "all")
	if err != nil || string(target.Event.Params) != params {
		t.Fatalf("DeliveryTarget params = %s, %v", target.Event.Params, err)
	}
	events, err := bundle.db.ListEvents(ctx, gateway.EventQuery{Limit: 10})
	if err != nil || len(events) != 1 || string(events[0].Params) != params {
		t.Fatalf("ListEvents = %+v, %v", events, err)
	}
}

func TestFireIdempotent(t *testing.T) {
	t.Parallel()

	newEvent := func(t *testing.T, api, name, params, key string) *gateway.Event {
		ev, err := gateway.NewEvent(api, name, json.RawMessage(params))
		if err != nil {
			t.Fatal(err)
		}
		ev.IdempotencyKey = key
		return ev
	}

	t.Run("RepeatReturnsTheFirstEvent", func(t *testing.T) {
		t.Parallel()
		ctx, bundle := setup(t)
		register(ctx, t, bundle.db, registration("m1", "mail", nil,
			gateway.ListenerDeclaration{Name: "all", Events: []string{"shop.*"}, Path: "/e"}))

		first, err := bundle.db.FireEvent(ctx, newEvent(t, "shop", "order_placed", `{"n": 1}`, "k1"), time.Hour)
		if err != nil || first.Repeat || first.Deliveries != 1 {
			t.Fatalf("first fire = %+v, %v", first, err)
		}
		again, err := bundle.db.FireEvent(ctx, newEvent(t, "shop", "order_placed", `{"n": 1}`, "k1"), time.Hour)
		if err != nil || !again.Repeat || again.ID != first.ID || again.Deliveries != 1 || !again.CreatedAt.Equal(first.CreatedAt) {
			t.Fatalf("repeat = %+v, %v; want the first %+v", again, err, first)
		}
		// Keys are scoped per API.
		other, err := bundle.db.FireEvent(ctx, newEvent(t, "billing", "order_placed", `{"n": 1}`, "k1"), time.Hour)
		if err != nil || other.Repeat {
			t.Fatalf("same key, other API = %+v, %v", other, err)
		}
		// Other parameters under the same key are a conflict.
		_, err = bundle.db.FireEvent(ctx, newEvent(t, "shop", "order_placed", `{"n": 2}`, "k1"), time.Hour)
		if gateway.ErrorCode(err) != gateway.EConflict {
			t.Fatalf("same key, other params: %v, want a conflict", err)
		}
		var events, jobs int
		bundle.pool.QueryRow(ctx, `SELECT count(*) FROM lightbus_event`).Scan(&events)
		bundle.pool.QueryRow(ctx, `SELECT count(*) FROM river_job`).Scan(&jobs)
		if events != 2 || jobs != 1 {
			t.Fatalf("%d events and %d deliveries stored, want 2 and 1", events, jobs)
		}
	})

	t.Run("ConcurrentRepeatsStoreOneEvent", func(t *testing.T) {
		t.Parallel()
		ctx, bundle := setup(t)
		register(ctx, t, bundle.db, registration("m1", "mail", nil,
			gateway.ListenerDeclaration{Name: "all", Events: []string{"shop.*"}, Path: "/e"}))

		const n = 16
		results := make(chan *gateway.FireResult, n)
		errs := make(chan error, n)
		start := make(chan struct{})
		for range n {
			go func() {
				<-start
				res, err := bundle.db.FireEvent(ctx, newEvent(t, "shop", "order_placed", `{}`, "race"), time.Hour)
				results <- res
				errs <- err
			}()
		}
		close(start)
		ids := map[string]bool{}
		repeats := 0
		for range n {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
			res := <-results
			ids[res.ID] = true
			if res.Repeat {
				repeats++
			}
		}
		var events, jobs int
		bundle.pool.QueryRow(ctx, `SELECT count(*) FROM lightbus_event`).Scan(&events)
		bundle.pool.QueryRow(ctx, `SELECT count(*) FROM river_job`).Scan(&jobs)
		if len(ids) != 1 || repeats != n-1 || events != 1 || jobs != 1 {
			t.Fatalf("%d ids, %d repeats, %d events, %d deliveries: want 1, %d, 1, 1", len(ids), repeats, events, jobs, n-1)
		}
	})

	t.Run("KeyReleasedAfterTheWindow", func(t *testing.T) {
		t.Parallel()
		ctx, bundle := setup(t)

		first, err := bundle.db.FireEvent(ctx, newEvent(t, "shop", "order_placed", `{}`, "old"), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bundle.pool.Exec(ctx, `UPDATE lightbus_event SET created_at = now() - interval '2 hours'`); err != nil {
			t.Fatal(err)
		}
		again, err := bundle.db.FireEvent(ctx, newEvent(t, "shop", "order_placed", `{"other": true}`, "old"), time.Hour)
		if err != nil || again.Repeat || again.ID == first.ID {
			t.Fatalf("fire after the window = %+v, %v; want a new event", again, err)
		}
		var holder string
		bundle.pool.QueryRow(ctx, `SELECT id::text FROM lightbus_event WHERE idempotency_key = 'old'`).Scan(&holder)
		if holder != again.ID {
			t.Fatalf("key held by %s, want the new event %s", holder, again.ID)
		}
	})
}

func TestPruneEvents(t *testing.T) {
	t.Parallel()
	ctx, bundle := setup(t)
	register(ctx, t, bundle.db, registration("m1", "mail", nil,
		gateway.ListenerDeclaration{Name: "all", Events: []string{"shop.*"}, Path: "/e"}))

	done, _ := fire(ctx, t, bundle.db, "shop", "done", `{}`)
	pending, _ := fire(ctx, t, bundle.db, "shop", "pending", `{}`)
	dead, _ := fire(ctx, t, bundle.db, "shop", "dead", `{}`)
	quiet, _ := fire(ctx, t, bundle.db, "other", "nobody_listens", `{}`)
	recent, _ := fire(ctx, t, bundle.db, "shop", "recent", `{}`)
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := bundle.pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	exec(`UPDATE river_job SET state = 'completed', finalized_at = now() WHERE args->>'event_id' = $1`, done.ID)
	exec(`UPDATE river_job SET state = 'discarded', finalized_at = now() WHERE args->>'event_id' = $1`, dead.ID)
	exec(`UPDATE lightbus_event SET created_at = now() - interval '2 hours' WHERE id <> $1`, recent.ID)

	remaining := func() map[string]bool {
		rows, _ := bundle.pool.Query(ctx, `SELECT id::text FROM lightbus_event`)
		ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]bool{}
		for _, id := range ids {
			m[id] = true
		}
		return m
	}
	cutoff := time.Now().Add(-time.Hour)
	total := 0
	for {
		n, err := bundle.db.PruneEvents(ctx, cutoff, 1, false)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		total += n
	}
	left := remaining()
	if total != 2 || left[done.ID] || left[quiet.ID] || !left[pending.ID] || !left[dead.ID] || !left[recent.ID] {
		t.Fatalf("pruned %d; left %v: want the delivered and the unsubscribed old events gone, the rest kept", total, left)
	}

	n, err := bundle.db.PruneEvents(ctx, cutoff, 100, true)
	if err != nil || n != 2 {
		t.Fatalf("pruning undelivered = %d, %v; want 2", n, err)
	}
	if left := remaining(); len(left) != 1 || !left[recent.ID] {
		t.Fatalf("left %v, want only the recent event", left)
	}
}

// A transaction stores its events with an INSERT each when it has few and
// with one COPY when it has many; either way every event is stored as
// fired, with one delivery per subscribed group.
func TestFireEventsStoresEveryEvent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		n     int
		keyed bool // every third event has an idempotency key
	}{{3, false}, {40, false}, {3, true}, {60, true}} {
		n := tc.n
		t.Run(fmt.Sprintf("%d events, keys %v", n, tc.keyed), func(t *testing.T) {
			t.Parallel()
			ctx, bundle := setup(t)
			register(ctx, t, bundle.db, registration("a1", "auth", nil,
				gateway.ListenerDeclaration{Name: "create_user", Events: []string{"customers.new_customer"}, Path: "/e"},
				gateway.ListenerDeclaration{Name: "audit", Events: []string{"customers.*"}, Path: "/a"}))
			evs := make([]*gateway.Event, n)
			for i := range evs {
				name := "new_customer" // two groups
				if i%2 == 1 {
					name = "left" // only audit
				}
				ev, err := gateway.NewEvent("customers", name, json.RawMessage(fmt.Sprintf(`{"n": %d, "s": "é\\u00e9"}`, i)))
				if err != nil {
					t.Fatal(err)
				}
				if tc.keyed && i%3 == 0 {
					ev.IdempotencyKey = fmt.Sprintf("k%d", i)
				}
				evs[i] = ev
			}
			results, err := bundle.db.FireEvents(ctx, evs, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			for i, ev := range evs {
				want := 2 - i%2
				if results[i].ID != ev.ID || results[i].Deliveries != want {
					t.Errorf("result %d = %+v, want %s with %d deliveries", i, results[i], ev.ID, want)
				}
				got, err := bundle.db.GetEvent(ctx, ev.ID)
				if err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
				if got.API != ev.API || got.Name != ev.Name || string(got.Params) != string(ev.Params) ||
					!got.CreatedAt.Equal(ev.CreatedAt) || len(got.Deliveries) != want {
					t.Errorf("event %d stored as %+v, want %+v with %d deliveries", i, got, ev, want)
				}
			}
		})
	}
}

// A keyed fire that finds its key held by its own event (stored by a shared
// transaction whose COMMIT answer was lost, then retried) is answered as
// stored, not as a repeat; another fire with the key is a repeat.
func TestFireFindsItsOwnEvent(t *testing.T) {
	t.Parallel()
	ctx, bundle := setup(t)
	ev, err := gateway.NewEvent("customers", "new_customer", json.RawMessage(`{"n": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	ev.IdempotencyKey = "k1"
	if _, err := bundle.db.FireEvent(ctx, ev, time.Hour); err != nil {
		t.Fatal(err)
	}
	res, err := bundle.db.FireEvent(ctx, ev, time.Hour)
	if err != nil || res.Repeat || res.ID != ev.ID {
		t.Errorf("the same fire again: %+v, %v; want its event, not a repeat", res, err)
	}
	other, err := gateway.NewEvent("customers", "new_customer", json.RawMessage(`{"n": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	other.IdempotencyKey = "k1"
	res, err = bundle.db.FireEvent(ctx, other, time.Hour)
	if err != nil || !res.Repeat || res.ID != ev.ID {
		t.Errorf("another fire with the key: %+v, %v; want a repeat of %s", res, err, ev.ID)
	}
}

// countRows runs a count(*) query.
func countRows(ctx context.Context, t *testing.T, pool *pgxpool.Pool, query string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(ctx, query).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestEventBytesEveryFirePath: whatever path stores an event — a lone fire,
// a few events in one statement, many by COPY, with and without keys — its
// parameters are kept as the caller sent them: whitespace, key order,
// duplicate keys, escapes and numbers' spelling (params is json, not jsonb).
func TestEventBytesEveryFirePath(t *testing.T) {
	t.Parallel()
	ctx, bundle := setup(t)
	register(ctx, t, bundle.db, registration("w1", "audit", nil,
		gateway.ListenerDeclaration{Name: "all", Events: []string{"shop.*"}, Path: "/h"}))

	odd := []string{
		`{"b": 1,   "a": 2}`,
		`{"a": 1, "a": 2}`,
		`{"n": 1.50, "e": 1E3, "z": -0}`,
		`{"q": "a\"b\\c \u00e9 \u0000"}`,
		"{\n\t\"x\" : [ 1 , 2 ]\n}",
	}
	for _, size := range []int{1, 3, 20} {
		for _, keyed := range []bool{false, true} {
			var evs []*gateway.Event
			for i := range size {
				ev, err := gateway.NewEvent("shop", "order_placed", json.RawMessage(odd[i%len(odd)]))
				if err != nil {
					t.Fatal(err)
				}
				if keyed {
					ev.IdempotencyKey = fmt.Sprintf("k-%d-%d", size, i)
				}
				evs = append(evs, ev)
			}
			if _, err := bundle.db.FireEvents(ctx, evs, time.Hour); err != nil {
				t.Fatalf("FireEvents(%d, keyed %v): %v", size, keyed, err)
			}
			for i, ev := range evs {
				got, err := bundle.db.GetEvent(ctx, ev.ID)
				if err != nil {
					t.Fatal(err)
				}
				if want := odd[i%len(odd)]; string(got.Params) != want {
					t.Errorf("%d events (keyed %v), event %d: stored %s, want the exact bytes %s", size, keyed, i, got.Params, want)
				}
			}
		}
	}
}
