package gateway

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
)

// EventFilter selects events for a listing or a stream. Every set field
// must match (AND).
type EventFilter struct {
	// API and Event are names ("auth", "user_registered") or globs where
	// "*" stands for any run of characters ("auth.*", "*.user_*"); empty
	// or "*" matches all.
	API   string
	Event string
	Since time.Time // inclusive; zero for no bound
	Until time.Time // exclusive; zero for no bound
	// Where are conditions on the parameters, all of which must hold.
	Where []Condition
}

// Filter bounds.
const (
	// MaxPatternLen is the longest API or event pattern.
	MaxPatternLen = 255
	// MaxConditions is the most where conditions one request may hold.
	MaxConditions = 8
	// MaxPathDepth is the most segments a condition's path may have.
	MaxPathDepth = 8
	// MaxPathSegmentLen is the longest segment of a condition's path.
	MaxPathSegmentLen = 64
	// MaxConditionValueLen is the longest value of a condition, in bytes.
	MaxConditionValueLen = 256
)

// Condition operators.
const (
	OpEq = "="  // JSON equality
	OpNe = "!=" // absent, or not JSON-equal
	OpGt = ">"  // a number greater than
	OpGe = ">=" // a number greater than or equal to
	OpLt = "<"  // a number less than
	OpLe = "<=" // a number less than or equal to
)

// Condition is one test on an event's parameters: the value at Path
// compared with Value by Op.
type Condition struct {
	// Path is the keys (or, into arrays, the indexes) leading to the value
	// tested, from the parameters object down: "address.city" is
	// {"address", "city"}.
	Path []string
	// Op is one of OpEq, OpNe, OpGt, OpGe, OpLt, OpLe.
	Op string
	// Value is the JSON value compared with: for OpEq and OpNe the
	// condition's value when it is JSON (a number, true, false, null, a
	// quoted string, an array or object), else that text as a JSON string;
	// for the numeric operators a JSON number.
	Value json.RawMessage
}

// Numeric reports whether c compares numbers.
func (c Condition) Numeric() bool {
	switch c.Op {
	case OpGt, OpGe, OpLt, OpLe:
		return true
	}
	return false
}

// String returns c as written in a where parameter.
func (c Condition) String() string {
	return strings.Join(c.Path, ".") + c.Op + string(c.Value)
}

// ParseCondition parses one where condition: PATH OP VALUE, where PATH is
// dot-separated segments of letters, digits, '_' and '-' (a segment of
// digits indexes an array, or names a key of an object), OP is one of
// = != > >= < <=, and VALUE is the rest. Errors: EInvalid, naming what is
// wrong.
func ParseCondition(s string) (Condition, error) {
	i := strings.IndexAny(s, "!=<>")
	if i < 0 {
		return Condition{}, Errorf(EInvalid, "where %q: want PATH=VALUE, or the operators != > >= < <=", clip(s))
	}
	path, rest := s[:i], s[i:]
	var c Condition
	for _, op := range []string{OpNe, OpGe, OpLe, OpEq, OpGt, OpLt} {
		if strings.HasPrefix(rest, op) {
			c.Op = op
			break
		}
	}
	if c.Op == "" {
		return Condition{}, Errorf(EInvalid, "where %q: '!' must be followed by '='", clip(s))
	}
	value := rest[len(c.Op):]
	if path == "" {
		return Condition{}, Errorf(EInvalid, "where %q: the path before %s is empty", clip(s), c.Op)
	}
	segs := strings.Split(path, ".")
	if len(segs) > MaxPathDepth {
		return Condition{}, Errorf(EInvalid, "where %q: the path has %d segments, at most %d allowed", clip(s), len(segs), MaxPathDepth)
	}
	for _, seg := range segs {
		if seg == "" || len(seg) > MaxPathSegmentLen || !pathSegment(seg) {
			return Condition{}, Errorf(EInvalid, "where %q: path segment %q: want 1 to %d letters, digits, '_' or '-'", clip(s), clip(seg), MaxPathSegmentLen)
		}
	}
	c.Path = segs
	if len(value) > MaxConditionValueLen {
		return Condition{}, Errorf(EInvalid, "where %q: the value is %d bytes, at most %d allowed", clip(s), len(value), MaxConditionValueLen)
	}
	if c.Numeric() {
		f, err := strconv.ParseFloat(value, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || !json.Valid([]byte(value)) {
			return Condition{}, Errorf(EInvalid, "where %q: %s compares numbers: want a JSON number after it", clip(s), c.Op)
		}
		if err := CheckJSON("the where value", []byte(value)); err != nil {
			return Condition{}, err
		}
		c.Value = json.RawMessage(value)
		return c, nil
	}
	if json.Valid([]byte(value)) && value != "" && strings.TrimSpace(value) == value {
		if err := CheckJSON("the where value", []byte(value)); err != nil {
			return Condition{}, err
		}
		c.Value = json.RawMessage(value)
		return c, nil
	}
	b, err := json.Marshal(value)
	if err != nil {
		return Condition{}, Errorf(EInvalid, "where %q: the value cannot be read", clip(s))
	}
	c.Value = b
	return c, nil
}

func pathSegment(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c == '-', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		default:
			return false
		}
	}
	return true
}

// clip shortens s for an error message and makes it valid UTF-8.
func clip(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}

// ParseConditions parses each where condition (ParseCondition), at most
// MaxConditions of them.
func ParseConditions(where []string) ([]Condition, error) {
	if len(where) > MaxConditions {
		return nil, Errorf(EInvalid, "%d where conditions: at most %d allowed", len(where), MaxConditions)
	}
	var conds []Condition
	for _, w := range where {
		c, err := ParseCondition(w)
		if err != nil {
			return nil, err
		}
		conds = append(conds, c)
	}
	return conds, nil
}

// validPatternOf checks a name pattern of what ("api" or "event"): a name,
// or a glob of name characters and '*'.
func validPatternOf(what, p string) error {
	if p == "" || p == "*" {
		return nil
	}
	if len(p) > MaxPatternLen {
		return Errorf(EInvalid, "%s pattern is %d characters, at most %d allowed", what, len(p), MaxPatternLen)
	}
	if !strings.Contains(p, "*") {
		if what == "api" {
			return ValidateAPIName(p)
		}
		return ValidateIdent(what, p)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '*', c == '_', c == '.' && what == "api", 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		default:
			return Errorf(EInvalid, "%s pattern %q: want name characters (letters, digits, '_'%s) and '*'", what, clip(p), map[bool]string{true: ", '.'"}[what == "api"])
		}
	}
	return nil
}

// Validate checks the patterns and conditions.
func (f *EventFilter) Validate() error {
	if err := validPatternOf("api", f.API); err != nil {
		return err
	}
	if err := validPatternOf("event", f.Event); err != nil {
		return err
	}
	if len(f.Where) > MaxConditions {
		return Errorf(EInvalid, "%d where conditions: at most %d allowed", len(f.Where), MaxConditions)
	}
	if f.API == "*" {
		f.API = ""
	}
	if f.Event == "*" {
		f.Event = ""
	}
	return nil
}

// GlobToLike translates a name glob to a LIKE pattern (escape character
// '\'): '%', '_' and '\' stand for themselves, '*' for any run of
// characters.
func GlobToLike(glob string) string {
	var b strings.Builder
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; c {
		case '%', '_', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '*':
			b.WriteByte('%')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// IsGlob reports whether a name pattern has a wildcard.
func IsGlob(p string) bool { return strings.Contains(p, "*") }
