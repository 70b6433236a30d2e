package gateway

import "unicode/utf8"

// Bounds on every JSON body a client sends (parameters, batches,
// registrations, schema documents, filters). JSON allows more; these keep
// each body within what Postgres stores, what a schema validator compares
// cheaply and what a listener in any language can decode. docs/PROTOCOL.md
// lists them as limits a client can rely on.
const (
	// MaxJSONDepth is how deeply objects and arrays may nest in a body,
	// counting its outermost value: {"a":{"b":[1]}} nests 3 deep.
	MaxJSONDepth = 64
	// MaxNumberLen is the longest number a body may hold, in characters.
	MaxNumberLen = 100
	// MaxNumberExponent bounds the exponent of a number (the digits after
	// e or E): 1e400 and 1e-400 are accepted, 1e401 is not.
	MaxNumberExponent = 400
)

// CheckJSON returns an EInvalid error, naming data as what ("the body"),
// when data nests deeper than MaxJSONDepth, holds a number longer than
// MaxNumberLen or with an exponent beyond MaxNumberExponent, or is not
// valid UTF-8. It is one pass over the bytes with no allocation, meant for
// data that is valid JSON (json.Valid); on other data it returns nil or
// one of these errors, and never panics.
func CheckJSON(what string, data []byte) error {
	depth := 0
	for i := 0; i < len(data); i++ {
		switch jsonByteClass[data[i]] {
		case 0:
		case '"':
			i = stringEnd(data, i)
		case '{':
			if depth++; depth > MaxJSONDepth {
				return Errorf(EInvalid, "%s nests deeper than %d levels", what, MaxJSONDepth)
			}
		case '}':
			depth--
		case '0':
			start, exp := i, -1
			for ; i < len(data) && isNumberByte(data[i]); i++ {
				if data[i] == 'e' || data[i] == 'E' {
					exp = i
				}
			}
			if i-start > MaxNumberLen {
				return Errorf(EInvalid, "%s holds a number longer than %d characters", what, MaxNumberLen)
			}
			if exp >= 0 && exponentBeyond(data[exp+1:i], MaxNumberExponent) {
				return Errorf(EInvalid, "%s holds a number whose exponent is beyond ±%d", what, MaxNumberExponent)
			}
			i-- // the loop's i++ moves to the byte after the number
		}
	}
	if !utf8.Valid(data) {
		return Errorf(EInvalid, "%s is not valid UTF-8", what)
	}
	return nil
}

// stringEnd returns the index of the quote that ends the string opened at
// data[open], or len(data) when none does.
func stringEnd(data []byte, open int) int {
	for i := open + 1; i < len(data); i++ {
		switch data[i] {
		case '"':
			return i
		case '\\':
			i++ // the escaped byte cannot end the string
		}
	}
	return len(data)
}

// jsonByteClass sorts the bytes CheckJSON looks at: '"' starts a string,
// '{' opens an object or array, '}' closes one and '0' starts a number; 0
// is any other byte.
var jsonByteClass = [256]byte{'"': '"', '{': '{', '[': '{', '}': '}', ']': '}',
	'-': '0', '0': '0', '1': '0', '2': '0', '3': '0', '4': '0', '5': '0', '6': '0', '7': '0', '8': '0', '9': '0'}

// isNumberByte reports whether c may appear in a JSON number.
func isNumberByte(c byte) bool {
	return '0' <= c && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// exponentBeyond reports whether the exponent digits in b (after an
// optional sign) make a number greater than limit.
func exponentBeyond(b []byte, limit int) bool {
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		b = b[1:]
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return false // not a number: the JSON check says so
		}
		if n = n*10 + int(c-'0'); n > limit {
			return true
		}
	}
	return false
}
