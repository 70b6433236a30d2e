package lightbus

import (
	"fmt"
	"strings"

	"github.com/lightbus-go/lightbus/internal/names"
)

// maxAPINameLen is the longest API name the gateway accepts.
const maxAPINameLen = 200

// isIdent reports whether s matches [A-Za-z_][A-Za-z0-9_]*.
func isIdent(s string) bool { return names.IsIdent(s) }

// isAPIName reports whether s is one or more identifiers joined by dots, at
// most 200 characters.
func isAPIName(s string) bool { return len(s) <= maxAPINameLen && names.IsAPIName(s) }

// isWorkerID reports whether s matches [A-Za-z0-9._-]{1,128}.
func isWorkerID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isWorkerIDByte(s[i]) {
			return false
		}
	}
	return true
}

func isWorkerIDByte(c byte) bool {
	return c == '.' || c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// splitName splits a qualified name such as "auth.check_password" or
// "support.case.open" at its last dot into the API name and the member
// (event or RPC) name. With wildcard, the member may be "*".
func splitName(kind, name string, wildcard bool) (api, member string, err error) {
	i := strings.LastIndexByte(name, '.')
	if i > 0 {
		api, member = name[:i], name[i+1:]
		if isAPIName(api) && (isIdent(member) || wildcard && member == "*") {
			return api, member, nil
		}
	}
	want := "api.name"
	if wildcard {
		want = `api.name or api.*`
	}
	return "", "", fmt.Errorf("invalid %s name %q: want %s, where api is identifiers joined by dots and name an identifier", kind, name, want)
}

// mustSplitName is splitName for registration calls, which panic on a bad
// name the way regexp.MustCompile does: it is a programming error.
func mustSplitName(kind, name string, wildcard bool) (api, member string) {
	api, member, err := splitName(kind, name, wildcard)
	if err != nil {
		panic("lightbus: " + err.Error())
	}
	return api, member
}
