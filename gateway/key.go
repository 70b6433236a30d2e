package gateway

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// TokenPrefix starts every API key's token.
const TokenPrefix = "lb_"

// Token length bounds, after the prefix. A generated token has 43
// characters (32 random bytes in base64url).
const (
	minTokenSecret = 32
	maxTokenSecret = 200
)

// BootstrapKeyName is the name of the admin key that
// LIGHTBUS_BOOTSTRAP_TOKEN makes at start (Service.Bootstrap).
const BootstrapKeyName = "bootstrap"

// KeyCacheTTL is how long a replica trusts what it looked up about a token
// (its key and scopes, or that it is unknown or revoked): a key revoked
// through another replica is refused here within it.
const KeyCacheTTL = 500 * time.Millisecond

// APIKey is an API key as stored and listed. Its token is shown once, when
// it is created; only the token's SHA-256 is stored.
type APIKey struct {
	Name      string     `json:"name"`
	Scopes    []string   `json:"scopes"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// CreatedKey is a new key with its token, the only time the token is seen.
type CreatedKey struct {
	APIKey
	Token string `json:"token"`
}

// KeyStore keeps API keys by name, with the SHA-256 of their tokens.
type KeyStore interface {
	// CreateKey stores key (Name, Scopes) with the hash of its token and
	// returns it as stored. Returns an EConflict error when a key of that
	// name exists, revoked or not.
	CreateKey(ctx context.Context, key *APIKey, hash []byte) (*APIKey, error)

	// EnsureKey creates key with hash unless a key of its name exists, and
	// returns the stored key and its hash: key's, or the existing key's.
	EnsureKey(ctx context.Context, key *APIKey, hash []byte) (*APIKey, []byte, error)

	// KeyByHash returns the key whose token has the SHA-256 hash, revoked
	// or not, with its stored hash, or ErrNotFound.
	KeyByHash(ctx context.Context, hash []byte) (*APIKey, []byte, error)

	// ListKeys lists every key by name, revoked ones included.
	ListKeys(ctx context.Context) ([]APIKey, error)

	// RevokeKey marks the key revoked from now on; a revoked key stays
	// revoked (revoking it again changes nothing). Returns ErrNotFound for
	// an unknown name.
	RevokeKey(ctx context.Context, name string) error
}

// NewToken returns a new random token: "lb_" and 32 random bytes in
// base64url (43 characters).
func NewToken() string {
	var p [32]byte
	_, _ = rand.Read(p[:]) // crypto/rand.Read never fails
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(p[:])
}

// ValidateToken returns an EInvalid error unless token is "lb_" followed by
// 32 to 200 characters of A-Z a-z 0-9 _ - (base64url).
func ValidateToken(token string) error {
	if !wellFormedToken(token) {
		return Errorf(EInvalid, "a token is %q followed by %d to %d of A-Z a-z 0-9 _ -", TokenPrefix, minTokenSecret, maxTokenSecret)
	}
	return nil
}

func wellFormedToken(token string) bool {
	secret, ok := strings.CutPrefix(token, TokenPrefix)
	if !ok || len(secret) < minTokenSecret || len(secret) > maxTokenSecret {
		return false
	}
	for i := 0; i < len(secret); i++ {
		c := secret[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// hashToken returns the SHA-256 of a well-formed token without allocating.
func hashToken(token string) [sha256.Size]byte {
	var buf [len(TokenPrefix) + maxTokenSecret]byte
	n := copy(buf[:], token)
	return sha256.Sum256(buf[:n])
}

// ValidateKeyName returns an EInvalid error unless name matches
// [A-Za-z0-9._-]{1,128}.
func ValidateKeyName(name string) error {
	if !workerIDRE.MatchString(name) { // the same form as a worker id
		return Errorf(EInvalid, "invalid key name %q: want 1 to 128 of A-Z a-z 0-9 . _ -", name)
	}
	return nil
}

// CreateKey makes a key named name with scopes (each validated, see
// ParseScope) and a new random token, returned once: only its hash is
// stored. Needs admin. Errors: EInvalid, EConflict (the name is taken, also
// by a revoked key: names are never reused), EForbidden, EUnavailable.
func (s *Service) CreateKey(ctx context.Context, name string, scopes []string) (*CreatedKey, error) {
	if err := s.authorize(ctx, ScopeAdmin, ""); err != nil {
		return nil, err
	}
	if err := ValidateKeyName(name); err != nil {
		return nil, err
	}
	parsed, err := ParseScopes(scopes)
	if err != nil {
		return nil, err
	}
	key := &APIKey{Name: name, Scopes: make([]string, len(parsed))}
	for i, sc := range parsed {
		key.Scopes[i] = sc.String()
	}
	if s.cfg.Keys == nil {
		return nil, Errorf(EUnavailable, "this gateway stores no keys")
	}
	token := NewToken()
	hash := hashToken(token)
	var stored *APIKey
	err = s.bounded(ctx, func(ctx context.Context) (err error) {
		stored, err = s.cfg.Keys.CreateKey(ctx, key, hash[:])
		return err
	})
	if ErrorCode(err) == EConflict {
		return nil, Errorf(EConflict, "a key named %q exists (names of revoked keys are not reused)", name)
	}
	if err != nil {
		return nil, err
	}
	s.logger.InfoContext(ctx, "API key created", slog.String("key", name), slog.String("scopes", strings.Join(key.Scopes, " ")))
	return &CreatedKey{APIKey: *stored, Token: token}, nil
}

// Keys lists every API key, revoked ones included, never their tokens.
// Needs admin. Errors: EForbidden, EUnavailable.
func (s *Service) Keys(ctx context.Context) ([]APIKey, error) {
	if err := s.authorize(ctx, ScopeAdmin, ""); err != nil {
		return nil, err
	}
	if s.cfg.Keys == nil {
		return []APIKey{}, nil
	}
	var keys []APIKey
	err := s.bounded(ctx, func(ctx context.Context) (err error) {
		keys, err = s.cfg.Keys.ListKeys(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	if keys == nil {
		keys = []APIKey{}
	}
	return keys, nil
}

// RevokeKey revokes the key named name: this replica refuses it at once,
// the others within KeyCacheTTL. Revoking a revoked key again succeeds and
// changes nothing. Needs admin. Errors: EInvalid, ENotFound (no such key),
// EForbidden, EUnavailable.
func (s *Service) RevokeKey(ctx context.Context, name string) error {
	if err := s.authorize(ctx, ScopeAdmin, ""); err != nil {
		return err
	}
	if err := ValidateKeyName(name); err != nil {
		return err
	}
	if s.cfg.Keys == nil {
		return Errorf(ENotFound, "no key named %q", name)
	}
	err := s.bounded(ctx, func(ctx context.Context) error { return s.cfg.Keys.RevokeKey(ctx, name) })
	if ErrorCode(err) == ENotFound {
		return Errorf(ENotFound, "no key named %q", name)
	}
	if err != nil {
		return err
	}
	s.keys.forget(name)
	s.logger.InfoContext(ctx, "API key revoked", slog.String("key", name))
	return nil
}

// Bootstrap makes sure an admin key named "bootstrap" with token exists,
// creating it when no key has that name (LIGHTBUS_BOOTSTRAP_TOKEN). When a
// bootstrap key exists with another token, or was revoked, it is left as it
// is and a warning is logged: a revoked bootstrap key is never brought
// back. Errors: EInvalid (a malformed token), EUnavailable.
func (s *Service) Bootstrap(ctx context.Context, token string) error {
	if err := ValidateToken(token); err != nil {
		return err
	}
	if s.cfg.Keys == nil {
		return Errorf(EUnavailable, "this gateway stores no keys")
	}
	hash := hashToken(token)
	var stored *APIKey
	var storedHash []byte
	err := s.bounded(ctx, func(ctx context.Context) (err error) {
		stored, storedHash, err = s.cfg.Keys.EnsureKey(ctx, &APIKey{Name: BootstrapKeyName, Scopes: []string{ScopeAdmin}}, hash[:])
		return err
	})
	switch {
	case err != nil:
		return err
	case subtle.ConstantTimeCompare(storedHash, hash[:]) != 1:
		s.logger.WarnContext(ctx, "LIGHTBUS_BOOTSTRAP_TOKEN is not the token of the existing bootstrap key: it is not used", slog.String("key", BootstrapKeyName))
	case stored.RevokedAt != nil:
		s.logger.WarnContext(ctx, "the bootstrap key was revoked: LIGHTBUS_BOOTSTRAP_TOKEN is not used", slog.String("key", BootstrapKeyName))
	}
	return nil
}

// Authentication failures. Unknown and revoked tokens get the same answer.
var (
	errMalformedToken = &Error{Code: EUnauthorized, Message: "the API key is malformed: want Authorization: Bearer lb_..."}
	errUnknownToken   = &Error{Code: EUnauthorized, Message: "the API key is unknown or revoked"}
)

// Authenticate returns the principal of token (the key's name and
// scopes). What it learns about a token, known or not, is cached for
// KeyCacheTTL, so that most requests cost no database round trip. Errors:
// EUnauthorized (missing, malformed, unknown or revoked), EUnavailable.
func (s *Service) Authenticate(ctx context.Context, token string) (*Principal, error) {
	if token == "" {
		return nil, errNoPrincipal
	}
	if !wellFormedToken(token) {
		return nil, errMalformedToken
	}
	hash := hashToken(token)
	e := s.keys.entry(hash)
	if p, ok := e.fresh(time.Now()); ok {
		return principalOrUnknown(p)
	}
	// One look-up per token at a time: the others wait for its answer.
	e.mu.Lock()
	defer e.mu.Unlock()
	start := time.Now()
	if p, ok := e.fresh(start); ok {
		return principalOrUnknown(p)
	}
	p, err := s.lookUpKey(ctx, hash)
	if err != nil {
		return nil, err
	}
	// The answer is as old as the look-up's start: a key revoked after it
	// began is refused within KeyCacheTTL of its revocation.
	e.state.Store(&keyState{principal: p, expires: start.Add(KeyCacheTTL)})
	return principalOrUnknown(p)
}

func principalOrUnknown(p *Principal) (*Principal, error) {
	if p == nil {
		return nil, errUnknownToken
	}
	return p, nil
}

// lookUpKey returns the principal of the live key whose token hashes to
// hash, nil for an unknown or revoked one. hash is passed by value so that
// only this slow path puts it on the heap.
func (s *Service) lookUpKey(ctx context.Context, hash [sha256.Size]byte) (*Principal, error) {
	if s.cfg.Keys == nil {
		return nil, nil
	}
	var key *APIKey
	var stored []byte
	err := s.bounded(ctx, func(ctx context.Context) (err error) {
		key, stored, err = s.cfg.Keys.KeyByHash(ctx, hash[:])
		return err
	})
	switch {
	case ErrorCode(err) == ENotFound:
		return nil, nil
	case err != nil:
		return nil, err
	case key.RevokedAt != nil || subtle.ConstantTimeCompare(stored, hash[:]) != 1:
		return nil, nil
	}
	p := &Principal{Key: key.Name}
	for _, raw := range key.Scopes {
		sc, err := ParseScope(raw)
		if err != nil {
			// Validated when the key was made; a scope this gateway does not
			// know grants nothing.
			s.logger.WarnContext(ctx, "API key has a scope this gateway does not know", slog.String("key", key.Name), slog.String("scope", raw))
			continue
		}
		p.Scopes = append(p.Scopes, sc)
	}
	return p, nil
}

// maxCachedTokens bounds the key cache: past it, expired entries are
// dropped, and if that is not enough, all of them.
const maxCachedTokens = 10000

// keyCache is what a replica knows about the tokens it was sent, by their
// SHA-256.
type keyCache struct {
	mu      sync.RWMutex
	entries map[[sha256.Size]byte]*keyEntry
}

// keyEntry is one token's cached look-up.
type keyEntry struct {
	mu    sync.Mutex // held while the token is looked up
	state atomic.Pointer[keyState]
}

// keyState is a look-up's answer: the principal, nil for an unknown or
// revoked token, until expires.
type keyState struct {
	principal *Principal
	expires   time.Time
}

func newKeyCache() *keyCache {
	return &keyCache{entries: map[[sha256.Size]byte]*keyEntry{}}
}

// fresh returns the cached principal and true while the entry is fresh.
func (e *keyEntry) fresh(now time.Time) (*Principal, bool) {
	st := e.state.Load()
	if st == nil || !now.Before(st.expires) {
		return nil, false
	}
	return st.principal, true
}

// entry returns the entry of hash, adding it when missing.
func (c *keyCache) entry(hash [sha256.Size]byte) *keyEntry {
	c.mu.RLock()
	e := c.entries[hash]
	c.mu.RUnlock()
	if e != nil {
		return e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e = c.entries[hash]; e != nil {
		return e
	}
	if len(c.entries) >= maxCachedTokens {
		now := time.Now()
		for h, old := range c.entries {
			if _, ok := old.fresh(now); !ok && old.mu.TryLock() {
				delete(c.entries, h)
				old.mu.Unlock()
			}
		}
		if len(c.entries) >= maxCachedTokens {
			clear(c.entries)
		}
	}
	e = &keyEntry{}
	c.entries[hash] = e
	return e
}

// forget drops what is cached about the key named name, so that this
// replica refuses it at once after revoking it.
func (c *keyCache) forget(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for h, e := range c.entries {
		if st := e.state.Load(); st != nil && st.principal != nil && st.principal.Key == name {
			delete(c.entries, h)
		}
	}
}
