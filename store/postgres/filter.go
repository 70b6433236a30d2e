package postgres

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/lightbus-go/lightbus/gateway"
)

// filterExecMode runs the statements of listings and streams unprepared
// (the unnamed statement), so that each is planned for its values: a
// cached statement switches to a generic plan after five runs, and the
// generic plan of a where equality walks the whole table for a rare value
// (2 s on a million events) because a common one is best served that way
// (docs/INSPECTING.md). Planning costs well under a millisecond.
const filterExecMode = pgx.QueryExecModeExec

// conds collects a query's conditions and their arguments; every value is
// a bound parameter, never part of the SQL text.
type conds struct {
	where []string
	args  []any
}

// add appends cond, in which each %d is replaced by the number of the
// next argument, in the order of vs.
func (c *conds) add(cond string, vs ...any) {
	nums := make([]any, len(vs))
	for i, v := range vs {
		c.args = append(c.args, v)
		nums[i] = len(c.args)
	}
	c.where = append(c.where, fmt.Sprintf(cond, nums...))
}

// arg appends v and returns its placeholder.
func (c *conds) arg(v any) string {
	c.args = append(c.args, v)
	return fmt.Sprintf("$%d", len(c.args))
}

// sql returns " WHERE ..." or "".
func (c *conds) sql() string {
	if len(c.where) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(c.where, " AND ")
}

// filter adds f's conditions: a name is an equality test (the
// (api, name, id) index), a glob a LIKE with '%' and '_' escaped; a where
// equality a containment test (@>, the GIN index) and
// the exact value at its path (#>), since containment also holds for a
// value inside a longer array; a numeric comparison reads the value at its
// path as numeric only when it is a JSON number. The parameters are read
// as jsonb through lightbus_params_jsonb (migration 00007), the expression
// of the GIN index, which is NULL for the rare JSON that jsonb cannot
// hold: such an event matches no condition but !=.
func (c *conds) filter(f gateway.EventFilter) {
	c.names(f)
	c.conditions(f.Where)
}

// names adds f's name patterns and time range (see filter).
func (c *conds) names(f gateway.EventFilter) {
	name := func(col, p string) {
		switch {
		case p == "":
		case gateway.IsGlob(p):
			c.add(col+" LIKE $%d", gateway.GlobToLike(p))
		default:
			c.add(col+" = $%d", p)
		}
	}
	name("api", f.API)
	name("name", f.Event)
	if !f.Since.IsZero() {
		c.add("created_at >= $%d", f.Since)
	}
	if !f.Until.IsZero() {
		c.add("created_at < $%d", f.Until)
	}
}

// conditions adds where conditions on the parameters (see filter).
func (c *conds) conditions(where []gateway.Condition) {
	for _, cond := range where {
		path := c.arg(cond.Path)
		at := "(lightbus_params_jsonb(params) #> " + path + "::text[])"
		switch {
		case cond.Op == gateway.OpEq:
			eq := "(" + at + " = " + c.arg(string(cond.Value)) + "::jsonb)"
			if doc, ok := containment(cond); ok {
				eq = "(lightbus_params_jsonb(params) @> " + c.arg(doc) + "::jsonb AND " + eq + ")"
			}
			c.where = append(c.where, eq)
		case cond.Op == gateway.OpNe:
			c.where = append(c.where, "("+at+" IS DISTINCT FROM "+c.arg(string(cond.Value))+"::jsonb)")
		case cond.Numeric():
			c.where = append(c.where, "(CASE WHEN jsonb_typeof("+at+") = 'number' THEN "+at+"::numeric "+cond.Op+" "+c.arg(string(cond.Value))+"::numeric END)")
		}
	}
}

// containment returns the JSON document {"a":{"b":value}} that an event's
// parameters contain when the condition a.b=value holds, for the GIN
// index. A path with a segment of digits may index an array, which
// containment cannot express: no document then.
func containment(c gateway.Condition) (string, bool) {
	doc := c.Value
	for i := len(c.Path) - 1; i >= 0; i-- {
		seg := c.Path[i]
		if strings.Trim(seg, "0123456789") == "" {
			return "", false
		}
		b, err := json.Marshal(map[string]json.RawMessage{seg: doc})
		if err != nil {
			return "", false
		}
		doc = b
	}
	return string(doc), true
}
