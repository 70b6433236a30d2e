package gateway

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"
)

func TestValidateParams(t *testing.T) {
	t.Parallel()

	for _, ok := range []string{`{}`, ` {"a":1}`, "\n{\"a\":[1,2]}\n"} {
		if err := ValidateParams(json.RawMessage(ok)); err != nil {
			t.Errorf("ValidateParams(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{``, `   `, `[1]`, `"s"`, `1`, `null`, `{"a":`, `{} {}`, `{"a":1}x`} {
		if err := ValidateParams(json.RawMessage(bad)); ErrorCode(err) != EInvalid {
			t.Errorf("ValidateParams(%q) = %v, want invalid", bad, err)
		}
	}
}

func TestNewEvent(t *testing.T) {
	t.Parallel()

	a, err := NewEvent("auth", "user_registered", json.RawMessage(`{"user":"sally"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewEvent("auth", "user_registered", json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	id, err := uuid.Parse(a.ID)
	if err != nil || id.Version() != 7 {
		t.Fatalf("event id %q: want a UUIDv7 (err %v)", a.ID, err)
	}
	if !(a.ID < b.ID) {
		t.Errorf("ids do not sort by creation: %s then %s", a.ID, b.ID)
	}
	if a.CreatedAt.Nanosecond()%1000 != 0 {
		t.Errorf("CreatedAt %v has sub-microsecond precision, which Postgres would not keep", a.CreatedAt)
	}
	if _, err := NewEvent("auth", "bad-name", json.RawMessage(`{}`)); ErrorCode(err) != EInvalid {
		t.Errorf("bad event name: got %v, want invalid", err)
	}
	if _, err := NewEvent("auth", "ok", json.RawMessage(`[]`)); ErrorCode(err) != EInvalid {
		t.Errorf("array params: got %v, want invalid", err)
	}
}
