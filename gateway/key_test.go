package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memKeys is a KeyStore in memory that counts look-ups by hash.
type memKeys struct {
	mu      sync.Mutex
	keys    map[string]*APIKey
	hashes  map[string][]byte
	lookups atomic.Int32
	delay   time.Duration // each look-up takes this long
	fail    atomic.Bool   // look-ups fail as an unreachable database would
}

func newMemKeys() *memKeys {
	return &memKeys{keys: map[string]*APIKey{}, hashes: map[string][]byte{}}
}

func (m *memKeys) CreateKey(ctx context.Context, key *APIKey, hash []byte) (*APIKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys[key.Name] != nil {
		return nil, Errorf(EConflict, "already exists")
	}
	k := &APIKey{Name: key.Name, Scopes: key.Scopes, CreatedAt: time.Now()}
	m.keys[key.Name], m.hashes[key.Name] = k, bytes.Clone(hash)
	return k, nil
}

func (m *memKeys) EnsureKey(ctx context.Context, key *APIKey, hash []byte) (*APIKey, []byte, error) {
	if _, err := m.CreateKey(ctx, key, hash); err != nil && ErrorCode(err) != EConflict {
		return nil, nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.keys[key.Name], m.hashes[key.Name], nil
}

func (m *memKeys) KeyByHash(ctx context.Context, hash []byte) (*APIKey, []byte, error) {
	m.lookups.Add(1)
	time.Sleep(m.delay)
	if m.fail.Load() {
		return nil, nil, ErrUnavailable
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, h := range m.hashes {
		if bytes.Equal(h, hash) {
			k := *m.keys[name]
			return &k, h, nil
		}
	}
	return nil, nil, ErrNotFound
}

func (m *memKeys) ListKeys(ctx context.Context) ([]APIKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []APIKey
	for _, k := range m.keys {
		out = append(out, *k)
	}
	return out, nil
}

func (m *memKeys) RevokeKey(ctx context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := m.keys[name]
	if k == nil {
		return ErrNotFound
	}
	if k.RevokedAt == nil {
		now := time.Now()
		k.RevokedAt = &now
	}
	return nil
}

// revokeElsewhere revokes a key as another replica would: behind this
// service's back.
func (m *memKeys) revokeElsewhere(t *testing.T, name string) {
	t.Helper()
	if err := m.RevokeKey(context.Background(), name); err != nil {
		t.Fatal(err)
	}
}

func TestTokens(t *testing.T) {
	t.Parallel()

	a, b := NewToken(), NewToken()
	if a == b || !strings.HasPrefix(a, "lb_") || len(a) != 3+43 || ValidateToken(a) != nil {
		t.Fatalf("NewToken gave %q and %q", a, b)
	}
	for _, bad := range []string{"", "lb_", "lb_short", "xx_" + a[3:], "lb_" + strings.Repeat("a", 31), "lb_" + strings.Repeat("a", 201),
		"lb_" + strings.Repeat("a", 31) + "=", "lb_" + strings.Repeat("a", 31) + " ", "Bearer " + a} {
		if ValidateToken(bad) == nil {
			t.Errorf("ValidateToken(%q) accepted it", bad)
		}
	}
	for _, good := range []string{"lb_" + strings.Repeat("a", 32), "lb_" + strings.Repeat("Z-_9", 50)} {
		if err := ValidateToken(good); err != nil {
			t.Errorf("ValidateToken(%q): %v", good, err)
		}
	}
	if h := hashToken(a); h != sha256.Sum256([]byte(a)) {
		t.Error("hashToken is not the SHA-256 of the token")
	}
}

func TestCreateKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	keys := newMemKeys()
	s := NewService(ServiceConfig{Keys: keys})

	created, err := s.CreateKey(ctx, "billing-worker", []string{"serve:billing", "fire:billing.*", "serve:billing"})
	if err != nil {
		t.Fatal(err)
	}
	if ValidateToken(created.Token) != nil || strings.Join(created.Scopes, " ") != "serve:billing fire:billing.*" {
		t.Fatalf("created %+v", created)
	}
	// Only the token's hash is stored.
	if h := sha256.Sum256([]byte(created.Token)); !bytes.Equal(keys.hashes["billing-worker"], h[:]) {
		t.Error("the stored hash is not the token's SHA-256")
	}
	if _, err := s.CreateKey(ctx, "billing-worker", []string{"read"}); ErrorCode(err) != EConflict {
		t.Errorf("a second key of the same name: %v, want a conflict", err)
	}
	for name, scopes := range map[string][]string{
		"bad name!": {"read"},
		"":          {"read"},
		"no-scopes": nil,
		"bad-scope": {"read", "delete:*"},
		"bad-glob":  {"fire:billing*"},
	} {
		if _, err := s.CreateKey(ctx, name, scopes); ErrorCode(err) != EInvalid {
			t.Errorf("CreateKey(%q, %q): %v, want invalid", name, scopes, err)
		}
	}
	if len(keys.keys) != 1 {
		t.Errorf("%d keys stored, want 1", len(keys.keys))
	}
}

// A key is looked up once per KeyCacheTTL at most, known or not.
func TestAuthenticateCaches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	keys := newMemKeys()
	s := NewService(ServiceConfig{Keys: keys, RequireAuth: true})
	created, err := s.CreateKey(WithPrincipal(ctx, &Principal{Scopes: []Scope{{Action: ScopeAdmin}}}), "ci", []string{"fire:shop"})
	if err != nil {
		t.Fatal(err)
	}

	for range 3 {
		p, err := s.Authenticate(ctx, created.Token)
		if err != nil || p.Key != "ci" || !p.Allows(ScopeFire, "shop") || p.Allows(ScopeFire, "billing") {
			t.Fatalf("Authenticate = %+v, %v", p, err)
		}
	}
	unknown := NewToken()
	for range 3 {
		if _, err := s.Authenticate(ctx, unknown); ErrorCode(err) != EUnauthorized {
			t.Fatalf("an unknown token: %v", err)
		}
	}
	if n := keys.lookups.Load(); n != 2 {
		t.Errorf("%d look-ups for two tokens, each used three times within the TTL; want 2", n)
	}
	// Malformed and missing tokens never reach the store.
	for _, bad := range []string{"", "lb_short", "not a token at all but long enough to be one, surely"} {
		if _, err := s.Authenticate(ctx, bad); ErrorCode(err) != EUnauthorized {
			t.Errorf("Authenticate(%q): %v", bad, err)
		}
	}
	if n := keys.lookups.Load(); n != 2 {
		t.Errorf("malformed tokens were looked up (%d look-ups)", n)
	}
	// Revoked through another replica: refused once the cache expires, at
	// most 500 ms later.
	keys.revokeElsewhere(t, "ci")
	time.Sleep(550 * time.Millisecond)
	if _, err := s.Authenticate(ctx, created.Token); ErrorCode(err) != EUnauthorized {
		t.Errorf("a revoked key after the cache's TTL: %v", err)
	}
}

// A cached key costs the fire path no allocation. AllocsPerRun cannot run
// in parallel.
func TestAuthenticateAllocations(t *testing.T) {
	ctx := context.Background()
	s := NewService(ServiceConfig{Keys: newMemKeys()})
	created, err := s.CreateKey(ctx, "ci", []string{"fire:*"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, created.Token); err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(100, func() { _, _ = s.Authenticate(ctx, created.Token) }); allocs != 0 {
		t.Errorf("a cached Authenticate allocates %.0f times", allocs)
	}
}

// Revoking through this service refuses the key at once.
func TestRevokeKeyForgetsAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	keys := newMemKeys()
	s := NewService(ServiceConfig{Keys: keys})
	created, err := s.CreateKey(ctx, "ci", []string{"read"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, created.Token); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeKey(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, created.Token); ErrorCode(err) != EUnauthorized {
		t.Errorf("just revoked here: %v, want unauthorized at once", err)
	}
	if err := s.RevokeKey(ctx, "ci"); err != nil {
		t.Errorf("revoking twice: %v, want nil", err)
	}
	if err := s.RevokeKey(ctx, "nobody"); ErrorCode(err) != ENotFound {
		t.Errorf("revoking an unknown key: %v, want not_found", err)
	}
}

// Concurrent requests with an uncached token share one look-up, and a
// failed look-up is not cached.
func TestAuthenticateLooksUpOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	keys := newMemKeys()
	keys.delay = 50 * time.Millisecond
	s := NewService(ServiceConfig{Keys: keys})
	created, err := s.CreateKey(ctx, "ci", []string{"read"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := s.Authenticate(ctx, created.Token); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := keys.lookups.Load(); n != 1 {
		t.Errorf("%d look-ups for 20 concurrent requests, want 1", n)
	}

	other, err := s.CreateKey(ctx, "other", []string{"read"})
	if err != nil {
		t.Fatal(err)
	}
	keys.fail.Store(true)
	if _, err := s.Authenticate(ctx, other.Token); ErrorCode(err) != EUnavailable {
		t.Fatalf("with the database down: %v, want unavailable", err)
	}
	keys.fail.Store(false)
	if _, err := s.Authenticate(ctx, other.Token); err != nil {
		t.Errorf("after the database came back: %v (a failure was cached)", err)
	}
}

func TestBootstrap(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	keys := newMemKeys()
	var log bytes.Buffer
	s := NewService(ServiceConfig{Keys: keys, Logger: slog.New(slog.NewTextHandler(&log, nil))})
	token := "lb_" + strings.Repeat("dev", 11)

	if err := s.Bootstrap(ctx, "lb_tooshort"); ErrorCode(err) != EInvalid {
		t.Errorf("a short bootstrap token: %v", err)
	}
	for range 2 { // idempotent
		if err := s.Bootstrap(ctx, token); err != nil {
			t.Fatal(err)
		}
	}
	p, err := s.Authenticate(ctx, token)
	if err != nil || p.Key != BootstrapKeyName || !p.Allows(ScopeAdmin, "") {
		t.Fatalf("the bootstrap token: %+v, %v", p, err)
	}
	if log.Len() != 0 {
		t.Errorf("logged %q", log.String())
	}
	// Another token does not replace the bootstrap key.
	if err := s.Bootstrap(ctx, "lb_"+strings.Repeat("new", 11)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "not the token of the existing bootstrap key") {
		t.Errorf("no warning for another token: %q", log.String())
	}
	if _, err := s.Authenticate(ctx, "lb_"+strings.Repeat("new", 11)); ErrorCode(err) != EUnauthorized {
		t.Errorf("the second token works: %v", err)
	}
	// A revoked bootstrap key stays revoked.
	if err := s.RevokeKey(ctx, BootstrapKeyName); err != nil {
		t.Fatal(err)
	}
	if err := s.Bootstrap(ctx, token); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, token); ErrorCode(err) != EUnauthorized {
		t.Errorf("a revoked bootstrap key came back: %v", err)
	}
	if !strings.Contains(log.String(), "the bootstrap key was revoked") {
		t.Errorf("no warning for a revoked bootstrap key: %q", log.String())
	}
}
