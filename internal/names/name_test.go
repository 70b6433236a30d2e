package names

import (
	"regexp"
	"testing"
)

// The loops that check names accept exactly what these expressions do.
func TestNameChecksMatchTheirExpressions(t *testing.T) {
	t.Parallel()
	identRE := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	apiNameRE := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$`)
	alphabet := []byte("aZ_09.-é\x00 ")
	var names []string
	var grow func(prefix []byte)
	grow = func(prefix []byte) {
		names = append(names, string(prefix))
		if len(prefix) == 4 {
			return
		}
		for _, c := range alphabet {
			grow(append(prefix, c))
		}
	}
	grow(nil)
	for _, name := range append(names, "support.case", "a..b", ".a", "a.", "_.__", "9a", "a9.b_8") {
		if got, want := IsIdent(name), identRE.MatchString(name); got != want {
			t.Errorf("IsIdent(%q) = %v, the expression says %v", name, got, want)
		}
		if got, want := IsAPIName(name), apiNameRE.MatchString(name); got != want {
			t.Errorf("IsAPIName(%q) = %v, the expression says %v", name, got, want)
		}
	}
}
