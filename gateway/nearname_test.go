package gateway

import "testing"

func TestEditDistance(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"auth", "auth", 0},
		{"", "ab", 2},
		{"user_registred", "user_registered", 1},   // insertion
		{"user_registereds", "user_registered", 1}, // deletion
		{"user_registerad", "user_registered", 1},  // substitution
		{"user_regsitered", "user_registered", 1},  // swap
		{"ahtu", "auth", 2},                        // swap and swap
		{"ca", "abc", 3},                           // OSA: no edit of an edited substring
		{"kitten", "sitting", 3},
		{"a", "abcdef", 5}, // far apart in length: the length difference
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := editDistance(tc.b, tc.a); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestNearestName(t *testing.T) {
	t.Parallel()
	names := []string{"user_registered", "user_deleted", "password_reset", "auth", "austh"}
	for _, tc := range []struct{ name, want string }{
		{"user_registred", "user_registered"},
		{"user_delted", "user_deleted"},
		{"user_registered", ""}, // itself is no suggestion
		{"order_placed", ""},
		{"aut", "auth"}, // auth and austh both near: the closest
		{"autsh", "austh"},
		{"ausht", "austh"},
	} {
		if got := nearestName(tc.name, names); got != tc.want {
			t.Errorf("nearestName(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := didYouMean("user_registred", names); got != `; did you mean "user_registered"?` {
		t.Errorf("didYouMean = %q", got)
	}
	if got := didYouMean("zzz", names); got != "" {
		t.Errorf("didYouMean = %q", got)
	}
}
