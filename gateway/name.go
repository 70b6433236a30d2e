package gateway

import (
	"regexp"
	"strings"

	"github.com/lightbus-go/lightbus/internal/names"
)

var workerIDRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// maxAPINameLen bounds an API name.
const maxAPINameLen = 200

// ValidateAPIName returns an EInvalid error unless name is a dotted API name
// such as "auth" or "support.case".
func ValidateAPIName(name string) error {
	if len(name) > maxAPINameLen || !names.IsAPIName(name) {
		return Errorf(EInvalid, "invalid API name %q: want identifiers joined by dots, e.g. \"auth\" or \"support.case\"", name)
	}
	return nil
}

// ValidateIdent returns an EInvalid error unless name is a single identifier
// ([A-Za-z_][A-Za-z0-9_]*); what names the kind of name for the message.
func ValidateIdent(what, name string) error {
	if len(name) > maxAPINameLen || !names.IsIdent(name) {
		return Errorf(EInvalid, "invalid %s name %q: want an identifier such as \"user_registered\"", what, name)
	}
	return nil
}

// ValidateWorkerID returns an EInvalid error unless id matches [A-Za-z0-9._-]{1,128}.
func ValidateWorkerID(id string) error {
	if !workerIDRE.MatchString(id) {
		return Errorf(EInvalid, "invalid worker id %q: want 1 to 128 of A-Z a-z 0-9 . _ -", id)
	}
	return nil
}

// SplitQualified splits "api.member" (the API name may itself contain dots)
// into the API and the member, validating both.
func SplitQualified(what, qualified string) (api, member string, err error) {
	i := strings.LastIndexByte(qualified, '.')
	if i <= 0 {
		return "", "", Errorf(EInvalid, "invalid %s %q: want \"api.%s\"", what, qualified, what)
	}
	api, member = qualified[:i], qualified[i+1:]
	if err := ValidateAPIName(api); err != nil {
		return "", "", err
	}
	if member == "*" && what == "event" {
		return api, member, nil
	}
	if err := ValidateIdent(what, member); err != nil {
		return "", "", err
	}
	return api, member, nil
}
