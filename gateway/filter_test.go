package gateway

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestParseCondition(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, path, op, value string
	}{
		{"address.city=London", "address.city", "=", `"London"`},
		{`name="30"`, "name", "=", `"30"`},
		{"age=30", "age", "=", "30"},
		{"ok=true", "ok", "=", "true"},
		{"x=", "x", "=", `""`},
		{"x= 1", "x", "=", `" 1"`},
		{"tags.0=a=b", "tags.0", "=", `"a=b"`},
		{"n!=null", "n", "!=", "null"},
		{"n>=1.5", "n", ">=", "1.5"},
		{"n<=-2e3", "n", "<=", "-2e3"},
		{"n>0", "n", ">", "0"},
		{"n<0", "n", "<", "0"},
		{"a-b_c.D9=x", "a-b_c.D9", "=", `"x"`},
	} {
		c, err := ParseCondition(tc.in)
		if err != nil {
			t.Errorf("ParseCondition(%q): %v", tc.in, err)
			continue
		}
		if strings.Join(c.Path, ".") != tc.path || c.Op != tc.op || string(c.Value) != tc.value {
			t.Errorf("ParseCondition(%q) = %q %s %s, want %s %s %s", tc.in, c.Path, c.Op, c.Value, tc.path, tc.op, tc.value)
		}
	}
	for _, in := range []string{"", "a", "=1", "a!1", "a>x", "a>1e999", "a>NaN", "a>0x1", ".a=1", "a..b=1", "a b=1",
		"a=" + strings.Repeat("x", MaxConditionValueLen+1), strings.Repeat("a.", MaxPathDepth) + "a=1", "é=1"} {
		if _, err := ParseCondition(in); ErrorCode(err) != EInvalid {
			t.Errorf("ParseCondition(%q): %v, want an invalid error", in, err)
		}
	}
}

func TestGlobToLike(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"auth.*": `auth.%`, "*.user_*": `%.user\_%`, "a%b": `a\%b`, `a\`: `a\\`} {
		if got := GlobToLike(in); got != want {
			t.Errorf("GlobToLike(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParseCondition: any where string is a condition within the bounds,
// whose value is valid JSON, or an invalid error; never a panic.
func FuzzParseCondition(f *testing.F) {
	for _, s := range []string{"address.city=London", "n>=1.5", "a!=null", "tags.0=[1,2]", "a=\xff", "a>1e400", "a=" + strings.Repeat("[", 70)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCondition(s)
		if err != nil {
			if ErrorCode(err) != EInvalid || !utf8.ValidString(ErrorMessage(err)) {
				t.Fatalf("ParseCondition(%q): %v", s, err)
			}
			return
		}
		if len(c.Path) == 0 || len(c.Path) > MaxPathDepth || !json.Valid(c.Value) {
			t.Fatalf("ParseCondition(%q) = %+v", s, c)
		}
		for _, seg := range c.Path {
			if seg == "" || len(seg) > MaxPathSegmentLen || !pathSegment(seg) {
				t.Fatalf("ParseCondition(%q): segment %q", s, seg)
			}
		}
		if c.Numeric() {
			var f float64
			if err := json.Unmarshal(c.Value, &f); err != nil {
				t.Fatalf("ParseCondition(%q): numeric value %s: %v", s, c.Value, err)
			}
		}
		if err := CheckJSON("value", c.Value); err != nil {
			t.Fatalf("ParseCondition(%q): value %s: %v", s, c.Value, err)
		}
	})
}

func TestStreamCursor(t *testing.T) {
	t.Parallel()
	c := StreamCursor{XID: 1 << 40, ID: [16]byte{1, 2, 3}, Time: time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)}
	got, err := ParseStreamCursor(c.String())
	if err != nil || got != c {
		t.Fatalf("round trip: %+v, %v, want %+v", got, err, c)
	}
	for _, s := range []string{"", "x", "AQ", c.String() + "A", "!" + c.String()[1:]} {
		if _, err := ParseStreamCursor(s); ErrorCode(err) != EInvalid {
			t.Errorf("ParseStreamCursor(%q): %v", s, err)
		}
	}
	if !(StreamCursor{XID: 2}).After(StreamCursor{XID: 1, ID: [16]byte{0xff}}) || (StreamCursor{XID: 1}).After(StreamCursor{XID: 1}) {
		t.Error("After")
	}
}
