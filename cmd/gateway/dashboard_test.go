package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/lightbus-go/lightbus/internal/testwait"
	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

// The Grafana dashboard and the Prometheus alert rules shipped in deploy/,
// and the runbook their alerts link to.
const (
	dashboardPath = "../../deploy/grafana/lightbus.json"
	alertsPath    = "../../deploy/prometheus/alerts.yml"
	operatingPath = "../../docs/OPERATING.md"
	runbookURL    = "https://github.com/lightbus-go/lightbus/blob/main/docs/OPERATING.md#"
)

// TestDashboardAndAlerts checks every query of the Grafana dashboard and
// every alert rule against the metrics a real gateway serves once events
// were fired, delivered and retried and an RPC was called: each query
// parses as PromQL, names only served metrics, and matches, groups and
// labels its legends and annotations only by labels those metrics have.
// Every lightbus_ metric served has a place on the dashboard.
func TestDashboardAndAlerts(t *testing.T) {
	t.Parallel()
	served := servedByGateway(t)

	dash := readDashboard(t)
	used := map[string]bool{}
	for _, p := range dash.check(served) {
		t.Error(p)
	}
	for _, q := range dash.queries {
		if !q.variable {
			for name := range served.metricsOf(q.expr) {
				used[served.family[name]] = true
			}
		}
	}
	for _, fam := range slices.Sorted(maps.Keys(served.families())) {
		if strings.HasPrefix(fam, "lightbus_") && !used[fam] {
			t.Errorf("%s is served but no panel of the dashboard shows it", fam)
		}
	}

	rules := readRules(t)
	for _, p := range rules.check(served, anchorsOf(t, operatingPath)) {
		t.Error(p)
	}
	if len(dash.queries) < 20 || len(rules.alerts()) < 8 {
		t.Errorf("%d dashboard queries and %d alerts: the files were not read whole", len(dash.queries), len(rules.alerts()))
	}
}

// TestDashboardCheckCatches shows the checks of TestDashboardAndAlerts
// failing on the mistakes they are there to catch, against a fixed
// exposition.
func TestDashboardCheckCatches(t *testing.T) {
	t.Parallel()
	served := servedFromText(t, `
# TYPE lightbus_deliveries_total counter
lightbus_deliveries_total{service="billing",listener="charge",outcome="delivered"} 1
# TYPE lightbus_rpc_duration_seconds histogram
lightbus_rpc_duration_seconds_bucket{api="auth",method="check",le="1"} 1
lightbus_rpc_duration_seconds_bucket{api="auth",method="check",le="+Inf"} 1
lightbus_rpc_duration_seconds_sum{api="auth",method="check"} 0.1
lightbus_rpc_duration_seconds_count{api="auth",method="check"} 1
`)
	good := []string{
		`sum by (service, listener) (rate(lightbus_deliveries_total{outcome="dead", job=~"x"}[5m]))`,
		`histogram_quantile(0.99, sum by (api, le) (rate(lightbus_rpc_duration_seconds_bucket[5m])))`,
		`rate(lightbus_rpc_duration_seconds_sum[5m]) / rate(lightbus_rpc_duration_seconds_count[5m])`,
		`{__name__="lightbus_deliveries_total", service="billing"}`,
		`up{job="lightbus"} == 0`,
	}
	for _, expr := range good {
		if p := served.checkExpr(expr); len(p) > 0 {
			t.Errorf("%s: %v", expr, p)
		}
	}
	bad := map[string]string{
		`sum(rate(lightbus_delivery_total[5m]))`:                                                 "lightbus_delivery_total is not served",
		`{__name__=~"lightbus_nothing_.*"}`:                                                      "no served metric",
		`rate(lightbus_rpc_duration_seconds[5m])`:                                                "lightbus_rpc_duration_seconds is not served",
		`lightbus_deliveries_total{outcom="dead"}`:                                               "no label outcom",
		`sum by (group) (lightbus_deliveries_total)`:                                             "no label group",
		`histogram_quantile(0.5, sum by (api) (rate(lightbus_rpc_duration_seconds_bucket[5m])))`: "without le",
		`lightbus_deliveries_total / on (api) lightbus_rpc_duration_seconds_count`:               "no label api",
		`sum(rate(lightbus_deliveries_total[5m])`:                                                "does not parse",
	}
	for expr, want := range bad {
		if p := strings.Join(served.checkExpr(expr), "; "); !strings.Contains(p, want) {
			t.Errorf("%s: problems %q, want one with %q", expr, p, want)
		}
	}

	// A panel's legend, a variable left unexpanded, a variable's query and a
	// panel on another data source.
	dash := dashboardFromJSON(t, `{"templating":{"list":[
		{"name":"datasource","type":"datasource","query":"prometheus"},
		{"name":"service","type":"query","query":{"query":"label_values(lightbus_deliveries_total, servic)"}}]},
		"panels":[{"type":"row","id":1,"collapsed":true,"panels":[
			{"id":2,"type":"timeseries","datasource":{"type":"prometheus","uid":"${datasource}"},"targets":[
				{"expr":"sum by (service) (rate(lightbus_deliveries_total{service=~\"$service\"}[$__rate_interval]))","legendFormat":"{{listener}}"},
				{"expr":"lightbus_deliveries_total{listener=~\"$listener\"}"}]},
			{"id":2,"type":"stat","datasource":{"type":"prometheus","uid":"prod"},"targets":[
				{"expr":"lightbus_deliveries_tota"}]}]}]}`)
	problems := strings.Join(dash.check(served), "\n")
	for _, want := range []string{
		`legend names label listener`,
		`unknown variable $listener`,
		`no label servic`,
		`data source prometheus "prod"`,
		`lightbus_deliveries_tota is not served`,
		`panel id 2 used twice`,
	} {
		if !strings.Contains(problems, want) {
			t.Errorf("dashboard problems\n%s\nwant one with %q", problems, want)
		}
	}

	// An alert without its runbook, one whose annotation names a label its
	// expression loses, and one whose duration does not parse.
	var rules ruleFile
	if err := yaml.Unmarshal([]byte(`
groups:
  - name: g
    rules:
      - alert: A
        expr: sum(rate(lightbus_deliveries_total[5m])) > 0
        for: 5 minutes
        labels: {severity: page}
        annotations:
          summary: "{{ $labels.service }}"
          description: "d"
          runbook_url: "`+runbookURL+`missing"
`), &rules); err != nil {
		t.Fatal(err)
	}
	problems = strings.Join(rules.check(served, map[string]bool{"present": true}), "\n")
	for _, want := range []string{`names label service`, `for "5 minutes"`, `severity "page"`, `no heading for anchor missing`} {
		if !strings.Contains(problems, want) {
			t.Errorf("rule problems\n%s\nwant one with %q", problems, want)
		}
	}
}

// servedByGateway starts a gateway, makes traffic that gives every family
// a series (a delivered event, a retried one still waiting in River, an
// RPC), and returns the series its /metrics serves.
func servedByGateway(t *testing.T) served {
	t.Helper()
	// A read pool on the same database, so that its metrics are served too.
	dbURL := pgtest.NewURL(t)
	gw := startGatewayOn(t, dbURL, func(c *Config) { c.MetricsCacheTTL, c.DatabaseReadURL = 20*time.Millisecond, dbURL })
	ok := newListener(t)
	registerGroup(t, gw, "w1", "audit", "record", ok.srv.URL, "", "shop.order_shipped")
	failing, _ := newFailingHook(t, func(w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) })
	registerGroup(t, gw, "w2", "billing", "charge", failing.srv.URL, "", "shop.order_placed")
	serveAuth(t, gw, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"result":true}`)
	})
	fireOne(t, gw, "shop", "order_shipped")
	fireOne(t, gw, "shop", "order_placed")
	if resp := gw.do(t, "POST", "/v1/rpc/auth/check_password", `{}`, nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("call: %d", resp.StatusCode)
	}

	var s served
	testwait.For(t, 30*time.Second, "deliveries, retries, an RPC and River jobs in /metrics", func() bool {
		resp := gw.do(t, "GET", "/metrics", "", nil, nil)
		s = servedFrom(t, resp.Body)
		return s.has("lightbus_fire_to_delivered_seconds_bucket") && s.has("lightbus_rpc_calls_total") &&
			s.has("lightbus_river_jobs") && s.has("lightbus_listener_lag_seconds") &&
			s.has("lightbus_delivery_duration_seconds_bucket")
	})
	return s
}

// served are the series names a gateway serves (a histogram's as
// _bucket, _sum and _count), with the label names each has (job and
// instance, which Prometheus adds, included), and up, which Prometheus
// makes of each scrape.
type served struct {
	labels map[string]map[string]bool
	family map[string]string // series name → its family's name
}

// servedFrom parses an exposition in the Prometheus text format.
func servedFrom(t *testing.T, r io.Reader) served {
	t.Helper()
	tp := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := tp.TextToMetricFamilies(r)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	s := served{labels: map[string]map[string]bool{}, family: map[string]string{}}
	add := func(fam, name string, extra ...string) map[string]bool {
		ls := map[string]bool{"job": true, "instance": true}
		for _, l := range extra {
			ls[l] = true
		}
		s.labels[name], s.family[name] = ls, fam
		return ls
	}
	add("up", "up")
	for name, f := range fams {
		var sets []map[string]bool
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			sets = append(sets, add(name, name+"_bucket", "le"), add(name, name+"_sum"), add(name, name+"_count"))
		case dto.MetricType_SUMMARY:
			sets = append(sets, add(name, name, "quantile"), add(name, name+"_sum"), add(name, name+"_count"))
		default:
			sets = append(sets, add(name, name))
		}
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				for _, ls := range sets {
					ls[lp.GetName()] = true
				}
			}
		}
	}
	return s
}

// servedFromText is servedFrom of text, its leading newlines trimmed.
func servedFromText(t *testing.T, text string) served {
	t.Helper()
	return servedFrom(t, strings.NewReader(strings.TrimLeft(text, "\n")))
}

// has reports whether the series name is served.
func (s served) has(name string) bool { return s.labels[name] != nil }

// families returns the names of the served metric families.
func (s served) families() map[string]bool {
	out := map[string]bool{}
	for _, f := range s.family {
		out[f] = true
	}
	return out
}

// metricsOf returns the served series names expr selects (none if it
// does not parse).
func (s served) metricsOf(expr string) map[string]bool {
	out := map[string]bool{}
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return out
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			for _, name := range s.names(vs) {
				out[name] = true
			}
		}
		return nil
	})
	return out
}

// names returns the served series names vs selects: its name, or those its
// __name__ matchers match.
func (s served) names(vs *parser.VectorSelector) []string {
	var out []string
	for name := range s.labels {
		if vs.Name != "" && vs.Name != name {
			continue
		}
		ok := true
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && !m.Matches(name) {
				ok = false
			}
		}
		if ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// checkExpr parses expr and returns what is wrong with it: a metric not
// served, a label matched, grouped or matched on that its metrics do not
// have, a histogram_quantile whose buckets lose le.
func (s served) checkExpr(expr string) []string {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return []string{fmt.Sprintf("%q does not parse: %v", expr, err)}
	}
	var problems []string
	bad := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%q: ", expr)+fmt.Sprintf(format, args...))
	}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			names := s.names(n)
			if len(names) == 0 {
				if n.Name != "" {
					bad("%s is not served", n.Name)
				} else {
					bad("no served metric matches %s", n)
				}
			}
			for _, name := range names {
				for _, m := range n.LabelMatchers {
					if m.Name != labels.MetricName && !s.labels[name][m.Name] {
						bad("%s has no label %s", name, m.Name)
					}
				}
			}
		case *parser.AggregateExpr:
			if !n.Without {
				s.needLabels(n.Grouping, n.Expr, bad)
			}
		case *parser.BinaryExpr:
			if vm := n.VectorMatching; vm != nil && len(vm.MatchingLabels) > 0 {
				if vm.On {
					s.needLabels(vm.MatchingLabels, n.LHS, bad)
					s.needLabels(vm.MatchingLabels, n.RHS, bad)
				}
			}
		case *parser.Call:
			if n.Func.Name == "histogram_quantile" {
				if ls := s.outputLabels(n.Args[1]); ls != nil && !ls["le"] {
					bad("histogram_quantile of %s, without le", n.Args[1])
				}
			}
		}
		return nil
	})
	return problems
}

// needLabels reports each of want that a served metric under e lacks.
func (s served) needLabels(want []string, e parser.Expr, bad func(string, ...any)) {
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			for _, name := range s.names(vs) {
				for _, l := range want {
					if !s.labels[name][l] {
						bad("%s has no label %s", name, l)
					}
				}
			}
		}
		return nil
	})
}

// outputLabels returns the label names the series of e's result may have,
// or nil when that is unknown (a metric not served).
func (s served) outputLabels(e parser.Expr) map[string]bool {
	switch e := e.(type) {
	case *parser.VectorSelector:
		names := s.names(e)
		if len(names) == 0 {
			return nil
		}
		out := map[string]bool{}
		for _, name := range names {
			maps.Copy(out, s.labels[name])
		}
		return out
	case *parser.MatrixSelector:
		return s.outputLabels(e.VectorSelector)
	case *parser.ParenExpr:
		return s.outputLabels(e.Expr)
	case *parser.UnaryExpr:
		return s.outputLabels(e.Expr)
	case *parser.SubqueryExpr:
		return s.outputLabels(e.Expr)
	case *parser.NumberLiteral, *parser.StringLiteral:
		return map[string]bool{}
	case *parser.AggregateExpr:
		in := s.outputLabels(e.Expr)
		if in == nil || e.Op == parser.TOPK || e.Op == parser.BOTTOMK || e.Op == parser.LIMITK {
			return in
		}
		out := map[string]bool{}
		for _, l := range e.Grouping {
			out[l] = true
		}
		if e.Without {
			for l := range in {
				out[l] = !out[l]
			}
			maps.DeleteFunc(out, func(_ string, keep bool) bool { return !keep })
		}
		return out
	case *parser.Call:
		switch e.Func.Name {
		case "absent", "absent_over_time":
			out := map[string]bool{}
			parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok {
					for _, m := range vs.LabelMatchers {
						if m.Type == labels.MatchEqual && m.Name != labels.MetricName {
							out[m.Name] = true
						}
					}
				}
				return nil
			})
			return out
		case "histogram_quantile":
			out := maps.Clone(s.outputLabels(e.Args[1]))
			delete(out, "le")
			return out
		}
		for _, a := range e.Args {
			if a.Type() == parser.ValueTypeVector || a.Type() == parser.ValueTypeMatrix {
				return s.outputLabels(a)
			}
		}
		return map[string]bool{}
	case *parser.BinaryExpr:
		lhs, rhs := s.outputLabels(e.LHS), s.outputLabels(e.RHS)
		if e.LHS.Type() == parser.ValueTypeScalar {
			return rhs
		}
		if e.RHS.Type() == parser.ValueTypeScalar || lhs == nil {
			return lhs
		}
		out := maps.Clone(lhs)
		if e.Op == parser.LOR && rhs != nil {
			maps.Copy(out, rhs)
			return out
		}
		if vm := e.VectorMatching; vm != nil && e.Op != parser.LAND && e.Op != parser.LUNLESS {
			switch {
			case vm.Card == parser.CardOneToOne && vm.On:
				out = map[string]bool{}
				for _, l := range vm.MatchingLabels {
					out[l] = true
				}
			case vm.Card == parser.CardOneToOne:
				for _, l := range vm.MatchingLabels {
					delete(out, l)
				}
			case vm.Card == parser.CardManyToOne && rhs != nil:
				for _, l := range vm.Include {
					out[l] = rhs[l]
				}
			case vm.Card == parser.CardOneToMany:
				out = maps.Clone(rhs)
			}
		}
		return out
	}
	return nil
}

// grafanaVar is a variable of $name, ${name} or ${name:format} form.
var grafanaVar = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]`)

// expandVars replaces the variables in s with values that keep the query
// valid: Grafana's own intervals with a duration, the dashboard's with a
// name. It returns the names of the variables it did not know.
func expandVars(s string, known map[string]bool) (string, []string) {
	var unknown []string
	out := grafanaVar.ReplaceAllStringFunc(s, func(v string) string {
		m := grafanaVar.FindStringSubmatch(v)
		name := m[1] + m[2] + m[3]
		switch {
		case name == "__rate_interval" || name == "__interval" || name == "__range":
			return "5m"
		case known[name]:
			return "value"
		}
		unknown = append(unknown, name)
		return v
	})
	return out, unknown
}

// legendLabel is a label in a legend format, {{name}}.
var legendLabel = regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)

// dashboard is the Grafana dashboard's JSON, with the queries found in it.
type dashboard struct {
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []*panel `json:"panels"`

	queries  []query
	problems []string
}

// panel is a Grafana panel, a row's with its nested panels.
type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
	} `json:"targets"`
	Panels []*panel `json:"panels"`
}

// query is a PromQL query of the dashboard, its variables expanded.
type query struct {
	where    string
	expr     string
	legend   string
	variable bool // a template variable's label_values selector
	label    string
}

// readDashboard reads the dashboard in deploy/grafana.
func readDashboard(t *testing.T) *dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	return dashboardFromJSON(t, string(b))
}

// dashboardFromJSON decodes a dashboard and collects its queries: every
// target of every panel, rows' nested panels included, and every template
// variable's query.
func dashboardFromJSON(t *testing.T, text string) *dashboard {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal([]byte(text), &d); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	known := map[string]bool{}
	for _, v := range d.Templating.List {
		known[v.Name] = true
	}
	expand := func(where, s string) string {
		out, unknown := expandVars(s, known)
		for _, v := range unknown {
			d.problems = append(d.problems, fmt.Sprintf("%s: unknown variable $%s", where, v))
		}
		return out
	}
	for _, v := range d.Templating.List {
		where := "variable " + v.Name
		switch v.Type {
		case "datasource":
			var q string
			if json.Unmarshal(v.Query, &q) != nil || q != "prometheus" {
				d.problems = append(d.problems, where+": not a Prometheus data source")
			}
		case "query":
			var q struct {
				Query string `json:"query"`
			}
			if json.Unmarshal(v.Query, &q) != nil {
				_ = json.Unmarshal(v.Query, &q.Query) // a bare string, as older dashboards have
			}
			m := regexp.MustCompile(`^label_values\((.+),\s*(\w+)\s*\)$`).FindStringSubmatch(q.Query)
			if m == nil {
				d.problems = append(d.problems, fmt.Sprintf("%s: query %q is not label_values(selector, label)", where, q.Query))
				continue
			}
			d.queries = append(d.queries, query{where: where, expr: expand(where, m[1]), variable: true, label: m[2]})
		}
	}
	ids := map[int]bool{}
	var walk func(ps []*panel)
	walk = func(ps []*panel) {
		for _, p := range ps {
			where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
			if ids[p.ID] {
				d.problems = append(d.problems, fmt.Sprintf("panel id %d used twice", p.ID))
			}
			ids[p.ID] = true
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
				ds := "none"
				if p.Datasource != nil {
					ds = fmt.Sprintf("%s %q", p.Datasource.Type, p.Datasource.UID)
				}
				d.problems = append(d.problems, fmt.Sprintf("%s: data source %s, want prometheus ${datasource}", where, ds))
			}
			if len(p.Targets) == 0 {
				d.problems = append(d.problems, where+": no query")
			}
			for i, tg := range p.Targets {
				w := fmt.Sprintf("%s target %d", where, i)
				d.queries = append(d.queries, query{where: w, expr: expand(w, tg.Expr), legend: tg.LegendFormat})
			}
		}
	}
	walk(d.Panels)
	return &d
}

// check returns what is wrong with the dashboard against the served
// metrics.
func (d *dashboard) check(s served) []string {
	problems := slices.Clone(d.problems)
	for _, q := range d.queries {
		for _, p := range s.checkExpr(q.expr) {
			problems = append(problems, q.where+": "+p)
		}
		e, err := parser.NewParser(parser.Options{}).ParseExpr(q.expr)
		if err != nil {
			continue
		}
		out := s.outputLabels(e)
		if q.variable {
			if out != nil && !out[q.label] {
				problems = append(problems, fmt.Sprintf("%s: %s has no label %s", q.where, q.expr, q.label))
			}
			continue
		}
		for _, m := range legendLabel.FindAllStringSubmatch(q.legend, -1) {
			if out != nil && !out[m[1]] {
				problems = append(problems, fmt.Sprintf("%s: legend names label %s, which %q does not keep", q.where, m[1], q.expr))
			}
		}
	}
	return problems
}

// ruleFile is a Prometheus rules file.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

// rule is an alerting rule.
type rule struct {
	Alert       string            `yaml:"alert"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

// readRules reads the alert rules in deploy/prometheus, refusing fields
// Prometheus does not know.
func readRules(t *testing.T) ruleFile {
	t.Helper()
	f, err := os.Open(alertsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rf ruleFile
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("%s: %v", alertsPath, err)
	}
	return rf
}

// alerts returns the rules of every group.
func (rf ruleFile) alerts() []rule {
	var out []rule
	for _, g := range rf.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// annotationLabel is a label an annotation template reads, $labels.name.
var annotationLabel = regexp.MustCompile(`\$labels\.(\w+)`)

// check returns what is wrong with the alert rules against the served
// metrics and the runbook's anchors.
func (rf ruleFile) check(s served, anchors map[string]bool) []string {
	var problems []string
	names := map[string]bool{}
	for _, r := range rf.alerts() {
		bad := func(format string, args ...any) {
			problems = append(problems, "alert "+r.Alert+": "+fmt.Sprintf(format, args...))
		}
		if r.Alert == "" || names[r.Alert] {
			bad("missing or repeated name")
		}
		names[r.Alert] = true
		for _, p := range s.checkExpr(r.Expr) {
			bad("%s", p)
		}
		if r.For != "" {
			if _, err := model.ParseDuration(r.For); err != nil {
				bad("for %q: %v", r.For, err)
			}
		}
		if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" {
			bad("severity %q, want critical or warning", sev)
		}
		var out map[string]bool
		if e, err := parser.NewParser(parser.Options{}).ParseExpr(r.Expr); err == nil {
			out = s.outputLabels(e)
		}
		for _, key := range []string{"summary", "description", "runbook_url"} {
			if r.Annotations[key] == "" {
				bad("no %s annotation", key)
			}
		}
		for key, text := range r.Annotations {
			// As Prometheus expands them: these variables first, and its
			// functions.
			tmpl := "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$value := .Value}}" + text
			funcs := template.FuncMap{}
			for _, f := range []string{"humanize", "humanize1024", "humanizeDuration", "humanizePercentage", "humanizeTimestamp", "title", "toUpper", "toLower", "reReplaceAll", "match", "query", "first", "value", "label"} {
				funcs[f] = func(...any) any { return nil }
			}
			if _, err := template.New(key).Funcs(funcs).Parse(tmpl); err != nil {
				bad("annotation %s: %v", key, err)
			}
			for _, m := range annotationLabel.FindAllStringSubmatch(text, -1) {
				if out != nil && !out[m[1]] {
					bad("annotation %s names label %s, which the expression does not keep", key, m[1])
				}
			}
		}
		if u := r.Annotations["runbook_url"]; u != "" {
			anchor, ok := strings.CutPrefix(u, runbookURL)
			if !ok {
				bad("runbook_url %q is not in %s", u, runbookURL)
			} else if !anchors[anchor] {
				bad("runbook_url: docs/OPERATING.md has no heading for anchor %s", anchor)
			}
		}
	}
	return problems
}

// anchorsOf returns the anchors GitHub makes of a Markdown file's
// headings: lower case, spaces to hyphens, punctuation dropped.
func anchorsOf(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for line := range strings.Lines(string(b)) {
		heading, ok := strings.CutPrefix(line, "#")
		if !ok {
			continue
		}
		heading = strings.ToLower(strings.TrimSpace(strings.TrimLeft(heading, "#")))
		var a strings.Builder
		for _, r := range heading {
			switch {
			case r == ' ' || r == '-':
				a.WriteRune('-')
			case r == '_' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9':
				a.WriteRune(r)
			}
		}
		anchors[a.String()] = true
	}
	return anchors
}
