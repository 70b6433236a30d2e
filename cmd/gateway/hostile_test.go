package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway/dispatch"
)

// hostileCase is one request a client may send on purpose or by mistake.
type hostileCase struct {
	method, path, body string
	header             map[string]string
	// status is the answer it must get; 0 means 400.
	status int
}

// Hostile input the gateway's own rules must refuse before anything reaches
// the database or a worker, each case in one word: what it is.
func hostileCases() map[string]hostileCase {
	const (
		event  = "/v1/events/hostile/happened"
		typed  = "/v1/events/typed/counted"
		rpc    = "/v1/rpc/hostile/echo"
		worker = "/v1/workers/w-hostile"
		group  = "/v1/listeners/hostile/log"
		schema = "/v1/schema/hostile"
		eid    = "01936f6e-0000-7000-8000-000000000000"
	)
	deep := func(n int) string { return strings.Repeat(`{"a":`, n) + "1" + strings.Repeat("}", n) }
	long := strings.Repeat("a", 10000)
	q := func(k, v string) string { return "?" + url.Values{k: {v}}.Encode() }
	reg := func(listener string) string {
		return `{"service":"hostile","base_url":"http://127.0.0.1:1","listeners":[` + listener + `]}`
	}
	many := func(n int, item string) string { return strings.TrimSuffix(strings.Repeat(item+",", n), ",") }

	// JSON that parses but that Postgres, a schema or a client cannot take.
	bodies := map[string]string{
		"invalid UTF-8":            "{\"a\":\"\xff\"}",
		"overlong UTF-8":           "{\"a\":\"\xc0\xaf\"}",
		"UTF-8 surrogate":          "{\"a\":\"\xed\xa0\x80\"}",
		"invalid UTF-8 key":        "{\"\xfe\":1}",
		"huge exponent":            `{"a":1e1000000}`,
		"tiny exponent":            `{"a":-1e-1000000}`,
		"long number":              `{"a":1` + strings.Repeat("0", 200) + `}`,
		"too deep":                 deep(65),
		"deeper than Go allows":    deep(10001),
		"trailing NUL":             "{\"a\":1}\x00",
		"byte order mark":          "\xef\xbb\xbf{}",
		"two values":               `{"a":1}{"b":2}`,
		"NaN":                      `{"a":NaN}`,
		"raw control character":    "{\"a\":\"\x01\"}",
		"not an object":            `[1]`,
		"escaped NUL outside JSON": `\u0000`,
	}
	cases := map[string]hostileCase{}
	for what, body := range bodies {
		cases["fire: "+what] = hostileCase{method: "POST", path: event, body: body}
		cases["typed fire: "+what] = hostileCase{method: "POST", path: typed, body: body}
		cases["call: "+what] = hostileCase{method: "POST", path: rpc, body: body}
		cases["batch params: "+what] = hostileCase{method: "POST", path: "/v1/events", body: `[{"api":"hostile","event":"happened","params":` + body + `}]`}
		cases["registration: "+what] = hostileCase{method: "PUT", path: worker, body: body}
		cases["schema: "+what] = hostileCase{method: "PUT", path: schema, body: body}
		cases["replay: "+what] = hostileCase{method: "POST", path: group + "/replay", body: body}
		cases["redrive: "+what] = hostileCase{method: "POST", path: group + "/redrive", body: body}
	}
	for name, c := range map[string]hostileCase{
		// Fires: names, headers, size.
		"fire: long API":                {method: "POST", path: "/v1/events/" + long + "/happened", body: `{}`},
		"fire: NUL in API":              {method: "POST", path: "/v1/events/a%00b/happened", body: `{}`},
		"fire: invalid UTF-8 event":     {method: "POST", path: "/v1/events/hostile/%FF", body: `{}`},
		"fire: long idempotency key":    {method: "POST", path: event, body: `{}`, header: map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}},
		"fire: tab in idempotency key":  {method: "POST", path: event, body: `{}`, header: map[string]string{"Idempotency-Key": "a\tb"}},
		"fire: UTF-8 idempotency key":   {method: "POST", path: event, body: `{}`, header: map[string]string{"Idempotency-Key": "clé"}},
		"fire: body over the limit":     {method: "POST", path: event, body: `{"a":"` + strings.Repeat("x", 1<<20) + `"}`, status: 413},
		"typed fire: integer too large": {method: "POST", path: typed, body: `{"n":1e1000}`},
		"typed fire: beyond big.Rat":    {method: "POST", path: typed, body: `{"m":1e10000000}`},

		// Batches.
		"batch: empty":               {method: "POST", path: "/v1/events", body: `[]`},
		"batch: too many events":     {method: "POST", path: "/v1/events", body: "[" + many(1001, `{"api":"hostile","event":"happened","params":{}}`) + "]"},
		"batch: NUL in API":          {method: "POST", path: "/v1/events", body: `[{"api":"hostile\u0000","event":"happened","params":{}}]`},
		"batch: NUL idempotency key": {method: "POST", path: "/v1/events", body: `[{"api":"hostile","event":"happened","params":{},"idempotency_key":"\u0000"}]`},
		"batch: null params":         {method: "POST", path: "/v1/events", body: `[{"api":"hostile","event":"happened","params":null}]`},
		"batch: null item":           {method: "POST", path: "/v1/events", body: `[null]`},
		"batch: too deep":            {method: "POST", path: "/v1/events", body: `[{"api":"hostile","event":"happened","params":` + deep(63) + `}]`},
		"batch: trailing data":       {method: "POST", path: "/v1/events", body: `[{"api":"hostile","event":"happened","params":{}}] x`},

		// Event listings and look-ups.
		"events: year -1":           {method: "GET", path: "/v1/events" + q("since", "0000-01-01T00:00:00+23:59")},
		"events: year 10000":        {method: "GET", path: "/v1/events" + q("until", "9999-12-31T23:59:59-23:59")},
		"events: year 300000":       {method: "GET", path: "/v1/events" + q("since", "300000-01-01T00:00:00Z")},
		"events: NUL time":          {method: "GET", path: "/v1/events" + q("since", "\x00")},
		"events: huge limit":        {method: "GET", path: "/v1/events" + q("limit", "99999999999999999999")},
		"events: negative limit":    {method: "GET", path: "/v1/events" + q("limit", "-1")},
		"events: NUL API":           {method: "GET", path: "/v1/events" + q("api", "a\x00")},
		"events: long event":        {method: "GET", path: "/v1/events" + q("event", long)},
		"events: cursor not an id":  {method: "GET", path: "/v1/events" + q("before", "\xff")},
		"event: URN id":             {method: "GET", path: "/v1/events/urn:uuid:" + eid, status: 404},
		"event: braced id":          {method: "GET", path: "/v1/events/%7B" + eid + "%7D", status: 404},
		"event: id without hyphens": {method: "GET", path: "/v1/events/" + strings.ReplaceAll(eid, "-", ""), status: 404},
		"event: NUL id":             {method: "GET", path: "/v1/events/%00"},
		"events: URN cursor":        {method: "GET", path: "/v1/events" + q("before", "urn:uuid:"+eid), status: 200},

		// RPCs.
		"call: NaN timeout":      {method: "POST", path: rpc, body: `{}`, header: map[string]string{"Lightbus-Timeout": "NaN"}},
		"call: infinite timeout": {method: "POST", path: rpc, body: `{}`, header: map[string]string{"Lightbus-Timeout": "Inf"}},
		"call: huge timeout":     {method: "POST", path: rpc, body: `{}`, header: map[string]string{"Lightbus-Timeout": "1e300"}},
		"call: overflow timeout": {method: "POST", path: rpc, body: `{}`, header: map[string]string{"Lightbus-Timeout": "9223372036.9"}},
		"call: zero timeout":     {method: "POST", path: rpc, body: `{}`, header: map[string]string{"Lightbus-Timeout": "-0"}},
		"call: long method":      {method: "POST", path: "/v1/rpc/hostile/" + long, body: `{}`},

		// Registrations.
		"worker: long id":              {method: "PUT", path: "/v1/workers/" + long, body: reg("")},
		"worker: NUL id":               {method: "PUT", path: "/v1/workers/a%00b", body: reg("")},
		"worker: delete with NUL id":   {method: "DELETE", path: "/v1/workers/a%00b"},
		"registration: long base URL":  {method: "PUT", path: worker, body: `{"service":"hostile","base_url":"http://h/` + long + `"}`},
		"registration: NUL base URL":   {method: "PUT", path: worker, body: `{"service":"hostile","base_url":"http://h/\u0000"}`},
		"registration: NUL service":    {method: "PUT", path: worker, body: `{"service":"hostile\u0000","base_url":"http://h"}`},
		"registration: NUL instance":   {method: "PUT", path: worker, body: `{"service":"hostile","base_url":"http://h","instance_id":"a\u0000"}`},
		"registration: long instance":  {method: "PUT", path: worker, body: `{"service":"hostile","base_url":"http://h","instance_id":"` + long + `"}`},
		"registration: lease overflow": {method: "PUT", path: worker, body: `{"service":"hostile","base_url":"http://h","lease_ttl_ms":288230376151726488}`},
		"registration: lease negative": {method: "PUT", path: worker, body: `{"service":"hostile","base_url":"http://h","lease_ttl_ms":-1}`},
		"registration: lease float":    {method: "PUT", path: worker, body: `{"service":"hostile","base_url":"http://h","lease_ttl_ms":1e30}`},
		"registration: RPC timeout overflow": {method: "PUT", path: worker,
			body: `{"service":"hostile","base_url":"http://h","apis":[{"name":"hostile","rpcs":[{"name":"echo","timeout_ms":9223372036854}]}]}`},
		"registration: too many APIs": {method: "PUT", path: worker,
			body: `{"service":"hostile","base_url":"http://h","apis":[` + manyAPIs(101) + `]}`},
		"registration: too many events": {method: "PUT", path: worker,
			body: `{"service":"hostile","base_url":"http://h","apis":[{"name":"hostile","events":[` + manyNamed(1001, "e") + `]}]}`},
		"registration: too many RPCs": {method: "PUT", path: worker,
			body: `{"service":"hostile","base_url":"http://h","apis":[{"name":"hostile","rpcs":[` + manyNamed(1001, "r") + `]}]}`},
		"registration: too many listeners": {method: "PUT", path: worker, body: reg(manyListeners(101))},
		"registration: too many subscriptions": {method: "PUT", path: worker,
			body: reg(`{"name":"log","path":"/l","events":[` + many(101, `"hostile.happened"`) + `]}`)},
		"registration: NUL path":          {method: "PUT", path: worker, body: reg(`{"name":"log","path":"/\u0000","events":["hostile.happened"]}`)},
		"registration: control char path": {method: "PUT", path: worker, body: reg(`{"name":"log","path":"/\u007f","events":["hostile.happened"]}`)},
		"registration: long path":         {method: "PUT", path: worker, body: reg(`{"name":"log","path":"/` + long + `","events":["hostile.happened"]}`)},
		"registration: bad escape path":   {method: "PUT", path: worker, body: reg(`{"name":"log","path":"/%zz","events":["hostile.happened"]}`)},
		"registration: since year -1": {method: "PUT", path: worker,
			body: reg(`{"name":"log","path":"/l","events":["hostile.happened"],"since":"0000-01-01T00:00:00+23:59"}`)},
		"registration: since year 10000": {method: "PUT", path: worker,
			body: reg(`{"name":"log","path":"/l","events":["hostile.happened"],"since":"9999-12-31T23:59:59-23:59"}`)},
		"registration: NUL listener": {method: "PUT", path: worker, body: reg(`{"name":"log\u0000","path":"/l","events":["hostile.happened"]}`)},
		"registration: huge policy": {method: "PUT", path: worker,
			body: reg(`{"name":"log","path":"/l","events":["hostile.happened"],"policy":{"max_attempts":9223372036854775807}}`)},
		"registration: schema too deep": {method: "PUT", path: worker,
			body: `{"service":"hostile","base_url":"http://h","apis":[{"name":"hostile","events":[{"name":"e","params_schema":` + deep(60) + `}]}]}`},
		"registration: schema huge number": {method: "PUT", path: worker,
			body: `{"service":"hostile","base_url":"http://h","apis":[{"name":"hostile","events":[{"name":"e","params_schema":{"maximum":1e999999}}]}]}`},

		// API owners.
		"owner: NUL API":  {method: "DELETE", path: "/v1/apis/a%00/owner"},
		"owner: long API": {method: "DELETE", path: "/v1/apis/" + long + "/owner"},

		// Listener groups, dead letters, replays, deliveries.
		"listener: delete NUL":        {method: "DELETE", path: "/v1/listeners/hostile/a%00"},
		"listener: delete long":       {method: "DELETE", path: "/v1/listeners/" + long + "/log"},
		"dead: year -1":               {method: "GET", path: group + "/dead" + q("since", "0000-01-01T00:00:00+23:59")},
		"dead: year 10000":            {method: "GET", path: group + "/dead" + q("until", "9999-12-31T23:59:59-23:59")},
		"dead: cursor overflow":       {method: "GET", path: group + "/dead" + q("before", "9223372036854775808")},
		"dead: negative cursor":       {method: "GET", path: group + "/dead" + q("before", "-1")},
		"dead: huge limit":            {method: "GET", path: group + "/dead" + q("limit", "1001")},
		"redrive: year -1":            {method: "POST", path: group + "/redrive", body: `{"since":"0000-01-01T00:00:00+23:59"}`},
		"redrive: NUL API":            {method: "POST", path: group + "/redrive", body: `{"api":"a\u0000"}`},
		"redrive: unknown member":     {method: "POST", path: group + "/redrive", body: `{"nope":1}`},
		"replay: year -1":             {method: "POST", path: group + "/replay", body: `{"since":"0000-01-01T00:00:00+23:59"}`},
		"replay: year 10000":          {method: "POST", path: group + "/replay", body: `{"since":"9999-12-31T23:59:59-23:59"}`},
		"replay: NUL since":           {method: "POST", path: group + "/replay", body: `{"since":"\u0000"}`},
		"replay: long since":          {method: "POST", path: group + "/replay", body: `{"since":"` + long + `"}`},
		"delivery: id overflow":       {method: "GET", path: "/v1/deliveries/9223372036854775808"},
		"delivery: negative id":       {method: "GET", path: "/v1/deliveries/-1"},
		"delivery: NUL id":            {method: "POST", path: "/v1/deliveries/%00/redrive"},
		"delivery: redrive overflow":  {method: "POST", path: "/v1/deliveries/99999999999999999999/redrive"},
		"delivery: redrive not found": {method: "POST", path: "/v1/deliveries/9223372036854775807/redrive", status: 404},

		// Schemas.
		"schema: version beyond int32": {method: "GET", path: schema + q("version", "2147483648")},
		"schema: version overflow":     {method: "GET", path: schema + q("version", "99999999999999999999")},
		"schema: version negative":     {method: "GET", path: schema + q("version", "-1")},
		"schema: NUL API":              {method: "GET", path: "/v1/schema/a%00/versions"},
		"schema: long API":             {method: "PUT", path: "/v1/schema/" + long, body: `{}`},
		"schema: NUL service":          {method: "PUT", path: schema, body: `{"service":"a\u0000"}`},
		"schema: too many events":      {method: "PUT", path: schema, body: `{"events":{` + manyMembers(1001) + `}}`},
		"schema: too many RPCs":        {method: "PUT", path: schema, body: `{"rpcs":{` + manyMembers(1001) + `}}`},
		"schema: number in schema":     {method: "PUT", path: schema, body: `{"events":{"e":{"params_schema":{"maximum":1e999999}}}}`},
		"schema: bad pattern":          {method: "PUT", path: schema, body: `{"events":{"e":{"params_schema":{"pattern":"("}}}}`},
		"schema: remote reference":     {method: "PUT", path: schema, body: `{"events":{"e":{"params_schema":{"$ref":"http://127.0.0.1:1/s.json"}}}}`},
		"schema: too deep":             {method: "PUT", path: schema, body: `{"events":{"e":{"params_schema":` + deep(62) + `}}}`},
		"schema: invalid UTF-8 name":   {method: "PUT", path: schema, body: "{\"events\":{\"\xff\":{}}}"},
	} {
		cases[name] = c
	}
	return cases
}

func manyNamed(n int, prefix string) string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(`{"name":"%s%d"}`, prefix, i)
	}
	return strings.Join(items, ",")
}

func manyAPIs(n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(`{"name":"api%d"}`, i)
	}
	return strings.Join(items, ",")
}

func manyListeners(n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(`{"name":"l%d","path":"/l","events":["hostile.happened"]}`, i)
	}
	return strings.Join(items, ",")
}

func manyMembers(n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(`"m%d":{}`, i)
	}
	return strings.Join(items, ",")
}

// storedCounts counts the rows of every table a request can write, and
// the jobs a request can queue (not River's periodic pruning).
func storedCounts(t *testing.T, gw *testGateway) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for _, table := range []string{"lightbus_event", "lightbus_worker", "lightbus_api", "lightbus_listener",
		"lightbus_subscription", "lightbus_endpoint", "lightbus_replay", "lightbus_schema", "lightbus_worker_schema",
		"river_job WHERE kind IN ('" + dispatch.DeliveryKind + "', '" + dispatch.ReplayKind + "')"} {
		var n int
		if err := gw.app.pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		counts[table] = n
	}
	return counts
}

// Every request a client can make with hostile input — on every route that
// takes a body, a header or parameters — is answered 4xx problem+json, never
// 5xx, stores nothing and reaches no worker.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, func(c *Config) { c.MaxBodyBytes = 1 << 20; c.MaxBatchBytes = 4 << 20 })

	var reached atomic.Int32
	w := rpcWorker(t, "w1", func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"result":{}}`)
	})
	body := fmt.Sprintf(`{"service":"hostile","base_url":%q,"lease_ttl_ms":60000,
		"apis":[{"name":"hostile","events":[{"name":"happened"}],"rpcs":[{"name":"echo"}]}],
		"listeners":[{"name":"log","path":"/log","events":["hostile.happened"]}]}`, w.URL)
	if resp := gw.do(t, "PUT", "/v1/workers/w1", body, nil, nil); resp.StatusCode != 200 {
		t.Fatalf("register: %d", resp.StatusCode)
	}
	schema := `{"events":{"counted":{"params_schema":{"type":"object","properties":{"n":{"type":"integer","maximum":10},"m":{"maximum":10}}}}}}`
	if resp := gw.do(t, "PUT", "/v1/schema/typed", schema, nil, nil); resp.StatusCode != 201 {
		t.Fatalf("publish schema: %d", resp.StatusCode)
	}
	before := storedCounts(t, gw)
	calls := reached.Load()

	for name, c := range hostileCases() {
		want := c.status
		if want == 0 {
			want = http.StatusBadRequest
		}
		resp := gw.do(t, c.method, c.path, c.body, c.header, nil)
		data, _ := io.ReadAll(resp.Body)
		if want < 300 {
			if resp.StatusCode != want {
				t.Errorf("%s: %d %.300s, want %d", name, resp.StatusCode, data, want)
			}
			continue
		}
		var p problem
		if err := json.Unmarshal(data, &p); err != nil || resp.StatusCode != want || p.Status != want ||
			resp.Header.Get("Content-Type") != "application/problem+json" || p.Detail == "" {
			t.Errorf("%s: %d %s %.300s, want a %d problem", name, resp.StatusCode, resp.Header.Get("Content-Type"), data, want)
		}
	}

	if after := storedCounts(t, gw); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("hostile requests stored something: before %v, after %v", before, after)
	}
	if n := reached.Load(); n != calls {
		t.Errorf("hostile calls reached the worker %d times", n-calls)
	}
}

// What JSON allows and Postgres keeps is accepted and comes back as sent:
// an escaped NUL, a lone surrogate escape, a number jsonb could not hold
// but json keeps, nesting up to the limit.
func TestHostileInputAccepted(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, nil)

	for _, params := range []string{
		`{"a":"\u0000"}`,
		`{"a":"\ud800"}`,
		`{"a":1e400,"b":-1e-400}`,
		`{"a":"é ☃ 𝄞"}`,
		strings.Repeat(`{"a":`, 63) + "1" + strings.Repeat("}", 63),
		`{"a":` + strings.Repeat("9", 100) + `}`,
	} {
		var res fireResult
		if resp := gw.do(t, "POST", "/v1/events/edge/accepted", params, nil, &res); resp.StatusCode != http.StatusAccepted {
			t.Errorf("%.80s: %d", params, resp.StatusCode)
			continue
		}
		var stored string
		if err := gw.app.pool.QueryRow(context.Background(), `SELECT params::text FROM lightbus_event WHERE id = $1`, res.ID).Scan(&stored); err != nil || stored != params {
			t.Errorf("%.80s: stored %.80s (%v)", params, stored, err)
		}
	}
}

// What net/http refuses before a handler runs (malformed requests, headers
// over LIGHTBUS_MAX_HEADER_BYTES) is a plain 4xx, and the connection is
// closed rather than left for a slow client.
func TestHostileHTTP(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, func(c *Config) { c.MaxHeaderBytes = 8 << 10 })
	addr := strings.TrimPrefix(gw.URL, "http://")

	for name, raw := range map[string]string{
		"NUL in a header":      "POST /v1/events/a/b HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a\x00b\r\nContent-Length: 2\r\n\r\n{}",
		"header over the max":  "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + strings.Repeat("p", 32<<10) + "\r\n\r\n",
		"NUL in the path":      "GET /v1/events/\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
		"invalid content size": "POST /v1/events/a/b HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, raw); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Errorf("%s: %v", name, err)
		} else if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Errorf("%s: %d, want a 4xx", name, resp.StatusCode)
		}
		conn.Close()
	}
}

// The server's timeouts cut off a client that sends its body too slowly,
// but never an RPC that takes longer than the read timeout: the write
// timeout is derived from the longest RPC.
func TestServerTimeouts(t *testing.T) {
	t.Parallel()
	gw := startGateway(t, func(c *Config) {
		c.ReadHeaderTimeout = 500 * time.Millisecond
		c.ReadTimeout = time.Second
		c.DBTimeout = time.Second
		c.RPCMaxTimeout = 5 * time.Second
	})
	serveAuth(t, gw, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(3 * time.Second) // longer than the read and database timeouts together
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"result":"slow"}`)
	})
	if resp := gw.do(t, "POST", "/v1/rpc/auth/check_password", `{}`, map[string]string{"Lightbus-Timeout": "4s"}, nil); resp.StatusCode != 200 {
		t.Fatalf("an RPC of 3s with a read timeout of 1s: %d, want 200", resp.StatusCode)
	}

	// A body that trickles in is cut off at the read timeout.
	conn, err := net.Dial("tcp", strings.TrimPrefix(gw.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	if _, err := io.WriteString(conn, "POST /v1/events/a/b HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil && resp.StatusCode < 400 {
		t.Fatalf("a body that never arrives: %d, want a 4xx or a closed connection", resp.StatusCode)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a body that never arrives held the connection %s", d)
	}
}
