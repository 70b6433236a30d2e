// Package names checks the names of the Lightbus protocol: identifiers and
// dotted API names. The gateway and the Go client both use it, so that they
// accept the same names.
package names

import "strings"

// IsIdent reports whether s is an identifier: [A-Za-z_][A-Za-z0-9_]*. It
// runs for every name of every fire and call, so it is a loop, not a
// regular expression (about 6 times faster: BenchmarkValidateAPIName in
// package gateway).
func IsIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// IsAPIName reports whether s is one or more identifiers joined by dots,
// such as "auth" or "support.case". It does not bound the length.
func IsAPIName(s string) bool {
	for part := range strings.SplitSeq(s, ".") {
		if !IsIdent(part) {
			return false
		}
	}
	return true
}
