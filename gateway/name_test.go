package gateway

import "testing"

func TestValidateNames(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		name string
		err  error
	}{
		{"auth", ValidateAPIName("auth")},
		{"support.case", ValidateAPIName("support.case")},
		{"_x.Y9", ValidateAPIName("_x.Y9")},
		{"ident", ValidateIdent("event", "user_registered")},
		{"worker id", ValidateWorkerID("auth-host.1_2")},
	} {
		if tc.err != nil {
			t.Errorf("%s: unexpected error %v", tc.name, tc.err)
		}
	}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"empty API", ValidateAPIName("")},
		{"leading dot", ValidateAPIName(".auth")},
		{"double dot", ValidateAPIName("a..b")},
		{"digit first", ValidateAPIName("9a")},
		{"dash", ValidateAPIName("my-api")},
		{"long", ValidateAPIName(string(make([]byte, 201)))},
		{"dotted ident", ValidateIdent("event", "a.b")},
		{"empty ident", ValidateIdent("event", "")},
		{"worker slash", ValidateWorkerID("a/b")},
		{"worker empty", ValidateWorkerID("")},
	} {
		if ErrorCode(tc.err) != EInvalid {
			t.Errorf("%s: got %v, want an invalid error", tc.name, tc.err)
		}
	}
}

func TestSplitQualified(t *testing.T) {
	t.Parallel()

	for in, want := range map[string][2]string{
		"auth.user_registered": {"auth", "user_registered"},
		"support.case.opened":  {"support.case", "opened"},
		"customers.*":          {"customers", "*"},
	} {
		api, member, err := SplitQualified("event", in)
		if err != nil || api != want[0] || member != want[1] {
			t.Errorf("SplitQualified(%q) = %q, %q, %v; want %q, %q", in, api, member, err, want[0], want[1])
		}
	}
	for _, in := range []string{"auth", ".x", "auth.", "auth.bad-name", "*.x"} {
		if _, _, err := SplitQualified("event", in); ErrorCode(err) != EInvalid {
			t.Errorf("SplitQualified(%q): got %v, want invalid", in, err)
		}
	}
	if _, _, err := SplitQualified("rpc", "auth.*"); ErrorCode(err) != EInvalid {
		t.Errorf("a wildcard RPC: got %v, want invalid", err)
	}
}
