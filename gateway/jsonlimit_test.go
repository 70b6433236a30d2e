package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckJSON(t *testing.T) {
	t.Parallel()

	deep := func(n int) string { return strings.Repeat(`[`, n) + strings.Repeat(`]`, n) }
	for data, want := range map[string]string{
		`{}`:                                   "",
		deep(MaxJSONDepth):                     "",
		`{"a":"[[[[{{{{"}`:                     "",
		`{"a":"\"[[["}`:                        "",
		`{"a":"é ☃ 𝄞","b":"\u0000\ud800"}`:     "",
		`{"a":1e400,"b":-1E-400,"c":2.5e+400}`: "",
		`{"a":1e0000000000400}`:                "",
		`[` + strings.Repeat("9", 100) + `]`:   "",
		`{"true":true,"e":false,"E":null}`:     "",
		deep(MaxJSONDepth + 1):                 "nests deeper than 64 levels",
		`{"a":` + deep(MaxJSONDepth) + `}`:     "nests deeper than 64 levels",
		`[` + strings.Repeat("9", 101) + `]`:   "holds a number longer than 100 characters",
		`{"a":1e401}`:                          "holds a number whose exponent is beyond ±400",
		`{"a":-1e-1000000}`:                    "holds a number whose exponent is beyond ±400",
		`{"a":1E+99999999999999999999999}`:     "holds a number whose exponent is beyond ±400",
		"{\"a\":\"\xff\"}":                     "is not valid UTF-8",
		"{\"\xc0\xaf\":1}":                     "is not valid UTF-8",
		"{\"a\":\"\xed\xa0\x80\"}":             "is not valid UTF-8",
		"{\"a\":\"\\\xff\"}":                   "is not valid UTF-8",
		"\xff":                                 "is not valid UTF-8",
	} {
		err := CheckJSON("the body", []byte(data))
		switch {
		case want == "" && err != nil:
			t.Errorf("%.60s: %v, want accepted", data, err)
		case want != "" && (ErrorCode(err) != EInvalid || !strings.Contains(ErrorMessage(err), "the body "+want)):
			t.Errorf("%.60s: %v, want invalid: %s", data, err, want)
		}
	}
}

// The fire path checks parameters with CheckJSON too.
func TestValidateParamsLimits(t *testing.T) {
	t.Parallel()

	for _, params := range []string{
		strings.Repeat(`{"a":`, MaxJSONDepth+1) + "1" + strings.Repeat(`}`, MaxJSONDepth+1),
		`{"a":1e1000000}`,
		"{\"a\":\"\xff\"}",
	} {
		if err := ValidateParams(json.RawMessage(params)); ErrorCode(err) != EInvalid {
			t.Errorf("%.60s: %v, want invalid", params, err)
		}
	}
}

// jsonLimitsOf is CheckJSON the slow way, with encoding/json's tokenizer:
// whether valid JSON data keeps every bound.
func jsonLimitsOf(t *testing.T, data []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	depth := 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("tokenize valid JSON %q: %v", data, err)
		}
		switch tok := tok.(type) {
		case json.Delim:
			if tok == '{' || tok == '[' {
				if depth++; depth > MaxJSONDepth {
					return false
				}
			} else {
				depth--
			}
		case json.Number:
			if len(tok) > MaxNumberLen {
				return false
			}
			if i := strings.IndexAny(string(tok), "eE"); i >= 0 {
				exp, err := strconv.Atoi(strings.TrimPrefix(string(tok[i+1:]), "+"))
				if err != nil || exp > MaxNumberExponent || exp < -MaxNumberExponent {
					return false
				}
			}
		}
	}
	return utf8.Valid(data)
}

// FuzzCheckJSON checks CheckJSON against a tokenizer on valid JSON, and
// that it never panics on anything else.
func FuzzCheckJSON(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"name": "Sally"}`, `{"user":"sally","email":"sally@example.com","plan":"pro","tags":["a","b"],"n":12}`,
		`[[[[1]]]]`, `{"a":"\"}{"}`, `{"a":-0.5e-7,"b":1E+400,"c":1e401}`, `{"a":"\u0000\ud800"}`,
		"{\"a\":\"\xff\"}", `"\\"`, `-`, `1e`, `[1e-]`, `"unterminated`, `{"a":` + strings.Repeat("1", 120) + `}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		err := CheckJSON("the body", data)
		if err != nil && ErrorCode(err) != EInvalid {
			t.Fatalf("%q: %v, want invalid", data, err)
		}
		if !json.Valid(data) {
			return
		}
		if want := jsonLimitsOf(t, data); want != (err == nil) {
			t.Fatalf("%q: CheckJSON says %v, the tokenizer says within bounds: %v", data, err, want)
		}
	})
}
