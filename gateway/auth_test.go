package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseScope(t *testing.T) {
	t.Parallel()

	for _, s := range []string{"fire:billing", "fire:billing.*", "fire:*", "call:support.case", "serve:a.b.*", "listen:*", "read", "admin"} {
		sc, err := ParseScope(s)
		if err != nil {
			t.Errorf("ParseScope(%q): %v", s, err)
			continue
		}
		if sc.String() != s {
			t.Errorf("ParseScope(%q).String() = %q", s, sc.String())
		}
	}
	for _, s := range []string{
		"", "fire", "fire:", "burn:billing", "read:*", "admin:billing", "fire:billing*", "fire:*.billing",
		"fire:billing.", "fire:.*", "fire:billing.**", "fire:bil ling", "Fire:billing", "fire:billing:x", "call:9lives",
	} {
		if _, err := ParseScope(s); ErrorCode(err) != EInvalid {
			t.Errorf("ParseScope(%q) = %v, want invalid", s, err)
		}
	}
	if _, err := ParseScopes(nil); ErrorCode(err) != EInvalid {
		t.Errorf("no scopes: %v, want invalid", err)
	}
	got, err := ParseScopes([]string{"read", "fire:a", "read"})
	if err != nil || len(got) != 2 || got[0].String() != "read" || got[1].String() != "fire:a" {
		t.Errorf("ParseScopes with a repeat = %v, %v", got, err)
	}
}

func TestScopeMatching(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		scope, action, api string
		want               bool
	}{
		{"fire:billing", "fire", "billing", true},
		{"fire:billing", "fire", "billing.invoices", false},
		{"fire:billing", "fire", "billingx", false},
		{"fire:billing", "fire", "bill", false},
		{"fire:billing", "call", "billing", false},
		// A prefix wildcard covers the APIs under the prefix, not the
		// prefix's own API.
		{"fire:billing.*", "fire", "billing.invoices", true},
		{"fire:billing.*", "fire", "billing.invoices.eu", true},
		{"fire:billing.*", "fire", "billing", false},
		{"fire:billing.*", "fire", "billingx.a", false},
		{"fire:billing.*", "fire", "other.billing.a", false},
		{"fire:*", "fire", "anything.at.all", true},
		{"fire:*", "call", "billing", false},
		{"call:auth", "call", "auth", true},
		{"serve:auth", "serve", "auth", true},
		{"serve:auth", "listen", "auth", false},
		{"listen:shop.*", "listen", "shop.orders", true},
		{"read", "read", "", true},
		{"read", "fire", "billing", false},
		{"read", "admin", "", false},
		{"admin", "fire", "billing", true},
		{"admin", "read", "", true},
		{"admin", "admin", "", true},
	} {
		sc, err := ParseScope(tc.scope)
		if err != nil {
			t.Fatal(err)
		}
		if got := sc.Allows(tc.action, tc.api); got != tc.want {
			t.Errorf("%s allows %s on %q = %v, want %v", tc.scope, tc.action, tc.api, got, tc.want)
		}
	}
	// A pattern scope without a pattern (not made by ParseScope) allows
	// nothing.
	if (Scope{Action: ScopeFire}).Allows(ScopeFire, "billing") {
		t.Error("fire with no pattern allows firing")
	}
}

// countingStores counts the calls that reach the event and worker stores.
type countingStores struct {
	EventStore
	WorkerStore
	calls atomic.Int32
}

func (s *countingStores) FireEvent(ctx context.Context, ev *Event, window time.Duration) (*FireResult, error) {
	s.calls.Add(1)
	return &FireResult{ID: ev.ID}, nil
}

func (s *countingStores) FireEvents(ctx context.Context, evs []*Event, window time.Duration) ([]*FireResult, error) {
	s.calls.Add(1)
	out := make([]*FireResult, len(evs))
	for i, ev := range evs {
		out[i] = &FireResult{ID: ev.ID}
	}
	return out, nil
}

func (s *countingStores) RegisterWorker(ctx context.Context, reg *Registration, newSecret func() string, maxAttempts int) (*RegistrationResult, error) {
	s.calls.Add(1)
	return &RegistrationResult{}, nil
}

func (s *countingStores) DeregisterWorker(ctx context.Context, id string) error {
	s.calls.Add(1)
	return nil
}

func principalWith(t *testing.T, scopes ...string) context.Context {
	t.Helper()
	parsed, err := ParseScopes(scopes)
	if err != nil {
		t.Fatal(err)
	}
	return WithPrincipal(context.Background(), &Principal{Key: "k", Scopes: parsed})
}

// The service checks each operation's scope against the principal, and
// refuses before the store is touched.
func TestServiceAuthorization(t *testing.T) {
	t.Parallel()

	st := &countingStores{}
	s := NewService(ServiceConfig{Events: st, Workers: st, RequireAuth: true})
	fire := func(ctx context.Context) error {
		ev, err := NewEvent("billing", "charged", json.RawMessage(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Fire(ctx, ev)
		return err
	}
	batch := func(ctx context.Context) error {
		_, err := s.FireBatch(ctx, []BatchItem{
			{API: "billing", Event: "charged", Params: json.RawMessage(`{}`)},
			{API: "shop", Event: "sold", Params: json.RawMessage(`{}`)},
		})
		return err
	}
	register := func(reg Registration) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			reg.WorkerID, reg.Service, reg.BaseURL = "w1", "billing", "http://127.0.0.1:1"
			_, err := s.Register(ctx, &reg)
			return err
		}
	}
	serve := register(Registration{APIs: []APIDeclaration{{Name: "billing"}}})
	listen := register(Registration{Listeners: []ListenerDeclaration{{Name: "l", Events: []string{"billing.charged", "shop.*"}, Path: "/l"}}})
	bare := register(Registration{})
	tasks := register(Registration{Tasks: []TaskDeclaration{{Name: "sweep", Kind: TaskEvery, Spec: "1m0s"}}})
	reportRun := func(ctx context.Context) error {
		return s.ReportTaskRun(ctx, &TaskRun{Service: "billing", Task: "sweep", WorkerID: "w1", Tick: time.Now()})
	}
	deregister := func(ctx context.Context) error { return s.Deregister(ctx, "w1") }
	deleteGroup := func(ctx context.Context) error { return s.DeleteListener(ctx, "billing", "l") }
	createKey := func(ctx context.Context) error { _, err := s.CreateKey(ctx, "k2", []string{"read"}); return err }

	for _, tc := range []struct {
		name   string
		op     func(context.Context) error
		scopes []string
		want   string // "" allowed (whatever the store then says), else the error's message
	}{
		{"fire allowed", fire, []string{"fire:billing"}, ""},
		{"fire by wildcard", fire, []string{"fire:*"}, ""},
		{"fire by admin", fire, []string{"admin"}, ""},
		{"fire of another API", fire, []string{"fire:shop", "call:billing"}, "this key lacks the scope fire:billing"},
		{"batch allowed", batch, []string{"fire:billing", "fire:shop"}, ""},
		{"batch with one API missing", batch, []string{"fire:billing"}, "this key lacks the scope fire:shop"},
		{"serve allowed", serve, []string{"serve:billing"}, ""},
		{"serve without the scope", serve, []string{"listen:*", "fire:billing"}, "this key lacks the scope serve:billing"},
		{"listen allowed", listen, []string{"listen:billing", "listen:shop"}, ""},
		{"listen missing one event's API", listen, []string{"listen:billing"}, "this key lacks the scope listen:shop"},
		{"bare registration with listen", bare, []string{"listen:x"}, ""},
		{"bare registration with fire", bare, []string{"fire:*"}, "this key lacks a serve or listen scope"},
		{"tasks with serve on the service", tasks, []string{"serve:billing"}, ""},
		{"tasks without serve on the service", tasks, []string{"serve:shop", "listen:*"}, "this key lacks the scope serve:billing"},
		{"task run without serve on the service", reportRun, []string{"serve:shop", "read"}, "this key lacks the scope serve:billing"},
		{"deregister with serve", deregister, []string{"serve:other"}, ""},
		{"deregister with read", deregister, []string{"read"}, "this key lacks a serve or listen scope"},
		{"delete a group without admin", deleteGroup, []string{"read", "listen:*"}, "this key lacks the scope admin"},
		{"create a key without admin", createKey, []string{"read", "fire:*"}, "this key lacks the scope admin"},
	} {
		st.calls.Store(0)
		err := tc.op(principalWith(t, tc.scopes...))
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v, want it allowed", tc.name, err)
			}
			continue
		}
		if ErrorCode(err) != EForbidden || ErrorMessage(err) != tc.want {
			t.Errorf("%s: %v, want forbidden: %s", tc.name, err, tc.want)
		}
		if st.calls.Load() != 0 {
			t.Errorf("%s: refused, yet the store was called", tc.name)
		}
	}

	// Without a principal nothing is allowed; with authentication off
	// everything is.
	if err := fire(context.Background()); ErrorCode(err) != EUnauthorized {
		t.Errorf("fire without a principal: %v, want unauthorized", err)
	}
	open := NewService(ServiceConfig{Events: st})
	ev, _ := NewEvent("billing", "charged", json.RawMessage(`{}`))
	if _, err := open.Fire(context.Background(), ev); err != nil {
		t.Errorf("fire with authentication off: %v", err)
	}
	if _, err := open.Keys(context.Background()); err != nil {
		t.Errorf("keys with authentication off: %v", err)
	}
}

// Every read is refused without read, and every admin operation without
// admin.
func TestServiceReadAndAdminScopes(t *testing.T) {
	t.Parallel()

	s := NewService(ServiceConfig{RequireAuth: true}) // no store: a refused call never gets to one
	reads := map[string]func(context.Context) error{
		"ListEvents": func(ctx context.Context) error { _, _, err := s.ListEvents(ctx, EventQuery{Limit: 1}); return err },
		"Event": func(ctx context.Context) error {
			_, err := s.Event(ctx, "0193a000-0000-7000-8000-000000000000")
			return err
		},
		"Workers":   func(ctx context.Context) error { _, err := s.Workers(ctx); return err },
		"Listeners": func(ctx context.Context) error { _, err := s.Listeners(ctx); return err },
		"Dead": func(ctx context.Context) error {
			_, _, err := s.Dead(ctx, DeadQuery{Service: "a", Listener: "b", Limit: 1})
			return err
		},
		"Delivery":       func(ctx context.Context) error { _, err := s.Delivery(ctx, 1); return err },
		"Schemas":        func(ctx context.Context) error { _, err := s.Schemas(ctx); return err },
		"Schema":         func(ctx context.Context) error { _, err := s.Schema(ctx, "a", 0); return err },
		"SchemaVersions": func(ctx context.Context) error { _, err := s.SchemaVersions(ctx, "a"); return err },
		"OpenStream": func(ctx context.Context) error {
			st, err := s.OpenStream(ctx, StreamQuery{})
			if err == nil {
				st.Close()
			}
			return err
		},
	}
	admins := map[string]func(context.Context) error{
		"DeleteListener": func(ctx context.Context) error { return s.DeleteListener(ctx, "a", "b") },
		"RedriveDead": func(ctx context.Context) error {
			_, err := s.RedriveDead(ctx, DeadQuery{Service: "a", Listener: "b"})
			return err
		},
		"RedriveDelivery": func(ctx context.Context) error { _, err := s.RedriveDelivery(ctx, 1); return err },
		"Replay":          func(ctx context.Context) error { _, err := s.Replay(ctx, "a", "b", "earliest"); return err },
		"PublishSchema": func(ctx context.Context) error {
			_, _, err := s.PublishSchema(ctx, "a", &SchemaDocument{}, "")
			return err
		},
		"CreateKey":  func(ctx context.Context) error { _, err := s.CreateKey(ctx, "k", []string{"read"}); return err },
		"Keys":       func(ctx context.Context) error { _, err := s.Keys(ctx); return err },
		"RevokeKey":  func(ctx context.Context) error { return s.RevokeKey(ctx, "k") },
		"ReleaseAPI": func(ctx context.Context) error { return s.ReleaseAPI(ctx, "a") },
		"RiverUI":    s.AuthorizeRiverUI,
	}
	// try runs op; reaching the (missing) store means it was not refused.
	try := func(op func(context.Context) error, ctx context.Context) (err error) {
		defer func() {
			if recover() != nil {
				err = errors.New("not refused: it reached the store")
			}
		}()
		return op(ctx)
	}
	everything := principalWith(t, "fire:*", "call:*", "serve:*", "listen:*")
	for name, op := range reads {
		if err := try(op, everything); ErrorCode(err) != EForbidden || !strings.HasSuffix(ErrorMessage(err), "scope read") {
			t.Errorf("%s without read: %v", name, err)
		}
	}
	reader := principalWith(t, "read")
	for name, op := range admins {
		if err := try(op, reader); ErrorCode(err) != EForbidden || !strings.HasSuffix(ErrorMessage(err), "scope admin") {
			t.Errorf("%s without admin: %v", name, err)
		}
	}
}
