package postgres_test

import (
	"bytes"
	"crypto/sha256"
	"sync"
	"testing"

	"github.com/lightbus-go/lightbus/gateway"
)

func TestKeys(t *testing.T) {
	t.Parallel()
	ctx, bundle := setup(t)
	db := bundle.db
	hash := func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

	created, err := db.CreateKey(ctx, &gateway.APIKey{Name: "ci", Scopes: []string{"fire:shop.*", "read"}}, hash("ci"))
	if err != nil || created.Name != "ci" || len(created.Scopes) != 2 || created.CreatedAt.IsZero() || created.RevokedAt != nil {
		t.Fatalf("CreateKey = %+v, %v", created, err)
	}
	if _, err := db.CreateKey(ctx, &gateway.APIKey{Name: "ci", Scopes: []string{"read"}}, hash("other")); gateway.ErrorCode(err) != gateway.EConflict {
		t.Errorf("a second key named ci: %v, want a conflict", err)
	}
	if _, err := db.CreateKey(ctx, &gateway.APIKey{Name: "x", Scopes: []string{"read"}}, []byte("not a hash")); err == nil {
		t.Error("a hash of the wrong length was stored")
	}
	key, stored, err := db.KeyByHash(ctx, hash("ci"))
	if err != nil || key.Name != "ci" || key.Scopes[0] != "fire:shop.*" || !bytes.Equal(stored, hash("ci")) {
		t.Fatalf("KeyByHash = %+v, %x, %v", key, stored, err)
	}
	if _, _, err := db.KeyByHash(ctx, hash("nobody")); gateway.ErrorCode(err) != gateway.ENotFound {
		t.Errorf("KeyByHash of an unknown hash: %v, want not found", err)
	}

	// Replicas starting together with the same bootstrap key make one.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			k, h, err := db.EnsureKey(ctx, &gateway.APIKey{Name: "bootstrap", Scopes: []string{"admin"}}, hash("boot"))
			if err != nil || k.Name != "bootstrap" || !bytes.Equal(h, hash("boot")) {
				t.Errorf("EnsureKey = %+v, %x, %v", k, h, err)
			}
		})
	}
	wg.Wait()
	// An existing key is returned as it is, with its own hash.
	k, h, err := db.EnsureKey(ctx, &gateway.APIKey{Name: "bootstrap", Scopes: []string{"read"}}, hash("another"))
	if err != nil || k.Scopes[0] != "admin" || !bytes.Equal(h, hash("boot")) {
		t.Errorf("EnsureKey of an existing key = %+v, %x, %v", k, h, err)
	}

	if err := db.RevokeKey(ctx, "ci"); err != nil {
		t.Fatal(err)
	}
	first, _, err := db.KeyByHash(ctx, hash("ci"))
	if err != nil || first.RevokedAt == nil {
		t.Fatalf("after RevokeKey: %+v, %v", first, err)
	}
	if err := db.RevokeKey(ctx, "ci"); err != nil {
		t.Errorf("revoking twice: %v", err)
	}
	again, _, _ := db.KeyByHash(ctx, hash("ci"))
	if !again.RevokedAt.Equal(*first.RevokedAt) {
		t.Errorf("revoking again moved revoked_at from %s to %s", first.RevokedAt, again.RevokedAt)
	}
	if err := db.RevokeKey(ctx, "nobody"); gateway.ErrorCode(err) != gateway.ENotFound {
		t.Errorf("revoking an unknown key: %v, want not found", err)
	}
	keys, err := db.ListKeys(ctx)
	if err != nil || len(keys) != 2 || keys[0].Name != "bootstrap" || keys[1].Name != "ci" || keys[1].RevokedAt == nil {
		t.Errorf("ListKeys = %+v, %v", keys, err)
	}
}
