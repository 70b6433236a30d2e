package lightbustest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
)

// MockBus is a [lightbus.Client] that records what the code under test
// fires and calls, answers calls with canned results and errors, and needs
// every fire and call mocked first: anything else returns an error and
// fails the test when it ends. Create one with [NewMockBus]; it is safe for
// concurrent use.
//
//	mock := lightbustest.NewMockBus(t)
//	mock.OnCall("auth.check_password").Return(true)
//	mock.OnFire("auth.user_registered")
//	... code under test, given mock as its lightbus.Client ...
//	mock.AssertFired(t, "auth.user_registered", map[string]any{"username": "sally", "email": "sally@example.com"})
//	mock.AssertCalled(t, "auth.check_password", 1)
//
// Parameters are recorded as the JSON they encode to and compared by JSON
// equality (object member order and number formatting do not matter).
// Results go through JSON too, so a call decodes a canned value as it would
// the gateway's answer. The typed handles check parameters against their
// schema before reaching the mock, as they do before reaching the gateway.
type MockBus struct {
	t testing.TB

	mu         sync.Mutex
	mocks      []*Mock
	records    []Record
	unexpected []string
}

var _ lightbus.Client = (*MockBus)(nil)

// Record is one fire or call the code under test made.
type Record struct {
	// Kind is "fire" or "call".
	Kind string
	// Name is the event or RPC, e.g. "auth.user_registered".
	Name string
	// Params are the parameters, as JSON.
	Params json.RawMessage
}

// Mock is one expectation of a [MockBus], made by [MockBus.OnCall] or
// [MockBus.OnFire] and refined by its methods, which return it for
// chaining. A fire or call uses the first mock, in the order made, whose
// name and parameters match and that has calls left.
type Mock struct {
	kind, name string
	params     json.RawMessage // nil: any
	result     json.RawMessage // for a call: what it returns
	err        error
	times      int // 0: any number
	used       int
}

// NewMockBus returns an empty MockBus. When t ends it fails t for each
// fire or call that was not mocked and for each mock with [Mock.Times] that
// was used fewer times.
func NewMockBus(t testing.TB) *MockBus {
	t.Helper()
	m := &MockBus{t: t}
	t.Cleanup(m.check)
	return m
}

// check reports what went wrong, when the test ends.
func (m *MockBus) check() {
	m.t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range m.unexpected {
		m.t.Errorf("lightbustest: %s", u)
	}
	for _, mk := range m.mocks {
		if mk.times > 0 && mk.used < mk.times {
			m.t.Errorf("lightbustest: %s: want %d, got %d", mk, mk.times, mk.used)
		}
	}
}

// OnCall mocks the RPC name ("auth.check_password"): calls get a null
// result until [Mock.Return] or [Mock.ReturnError] says otherwise.
func (m *MockBus) OnCall(name string) *Mock {
	return m.add(&Mock{kind: "call", name: name, result: json.RawMessage("null")})
}

// OnFire mocks the event name ("auth.user_registered"): fires succeed,
// unless [Mock.ReturnError] says otherwise.
func (m *MockBus) OnFire(name string) *Mock {
	return m.add(&Mock{kind: "fire", name: name})
}

func (m *MockBus) add(mk *Mock) *Mock {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mocks = append(m.mocks, mk)
	return mk
}

// String describes the mock, e.g. `call auth.check_password with {"username":"admin"}`.
func (mk *Mock) String() string {
	s := mk.kind + " " + mk.name
	if mk.params != nil {
		s += " with " + string(mk.params)
	}
	return s
}

// Return makes the mocked call answer result, which must encode to JSON; it
// is decoded into the caller's result as the gateway's answer would be. It
// panics on a fire mock, or when result does not encode.
func (mk *Mock) Return(result any) *Mock {
	if mk.kind != "call" {
		panic("lightbustest: Return on " + mk.String() + ": only a call returns a result")
	}
	data, err := json.Marshal(result)
	if err != nil {
		panic(fmt.Sprintf("lightbustest: Return on %s: %v", mk, err))
	}
	mk.result = data
	return mk
}

// ReturnError makes the mocked call or fire fail with err. For a call, an
// error that is not already a gateway answer (*lightbus.Error) or a
// transport failure (*lightbus.TransportError) is returned as the gateway
// would return a handler's error (see [lightbus.HandlerError]): a
// lightbus.NewError value arrives as remote_error with its error_type, one
// wrapping lightbus.ErrInvalidParams as invalid. For a fire, err is
// returned as it is.
func (mk *Mock) ReturnError(err error) *Mock {
	mk.err = err
	return mk
}

// Times limits the mock to n uses and makes the test fail, when it ends,
// if it was used fewer times. Further fires or calls look for another mock.
func (mk *Mock) Times(n int) *Mock {
	if n < 1 {
		panic("lightbustest: Times: want at least 1")
	}
	mk.times = n
	return mk
}

// WithParams makes the mock match only fires or calls whose parameters are
// JSON-equal to params. It panics when params do not encode to JSON.
func (mk *Mock) WithParams(params any) *Mock {
	data, err := canonical(params)
	if err != nil {
		panic(fmt.Sprintf("lightbustest: WithParams on %s: %v", mk, err))
	}
	mk.params = data
	return mk
}

// Fire records a fire of name and answers as its mock says; an unmocked
// event is an error, and fails the test when it ends.
func (m *MockBus) Fire(ctx context.Context, name string, params any, opts ...lightbus.CallOption) (lightbus.FireResult, error) {
	res, err := m.FireBatch(ctx, []lightbus.BatchEvent{{Name: name, Params: params}})
	if err != nil {
		return lightbus.FireResult{}, err
	}
	return res[0], nil
}

// FireBatch fires each event as [MockBus.Fire] does, all or none: when one
// is unmocked or its mock fails, none is recorded.
func (m *MockBus) FireBatch(ctx context.Context, events []lightbus.BatchEvent) ([]lightbus.FireResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	recs := make([]Record, len(events))
	for i, e := range events {
		data, err := encodeParams(e.Params)
		if err != nil {
			return nil, fmt.Errorf("lightbus: fire %s: %w", e.Name, err)
		}
		recs[i] = Record{Kind: "fire", Name: e.Name, Params: data}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var picked []*Mock
	for _, r := range recs {
		mk := m.match(r, picked)
		if mk == nil {
			return nil, m.unmocked(r)
		}
		if mk.err != nil {
			mk.used++ // the mock answered, though no event is stored
			return nil, fmt.Errorf("lightbus: fire %s: %w", r.Name, mk.err)
		}
		picked = append(picked, mk)
	}
	results := make([]lightbus.FireResult, len(recs))
	now := time.Now().UTC()
	for i, r := range recs {
		picked[i].used++
		m.records = append(m.records, r)
		api, event, _ := strings.Cut(r.Name, ".")
		results[i] = lightbus.FireResult{ID: newID(), API: api, Event: event, CreatedAt: now}
	}
	return results, nil
}

// Call records a call of name and answers as its mock says; an unmocked
// RPC is an error, and fails the test when it ends.
func (m *MockBus) Call(ctx context.Context, name string, params, result any, opts ...lightbus.CallOption) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("lightbus: call %s: %w", name, err)
	}
	data, err := encodeParams(params)
	if err != nil {
		return fmt.Errorf("lightbus: call %s: %w", name, err)
	}
	r := Record{Kind: "call", Name: name, Params: data}
	m.mu.Lock()
	mk := m.match(r, nil)
	if mk == nil {
		err := m.unmocked(r)
		m.mu.Unlock()
		return err
	}
	mk.used++
	m.records = append(m.records, r)
	answer, failure := mk.result, mk.err
	m.mu.Unlock()
	if failure != nil {
		var lerr *lightbus.Error
		var terr *lightbus.TransportError
		if !errors.As(failure, &lerr) && !errors.As(failure, &terr) {
			failure = lightbus.HandlerError(name, failure)
		}
		return fmt.Errorf("lightbus: call %s: %w", name, failure)
	}
	if result == nil {
		return nil
	}
	if err := json.Unmarshal(answer, result); err != nil {
		return fmt.Errorf("lightbus: call %s: decoding the result %s: %w", name, answer, err)
	}
	return nil
}

// match returns the first mock for r with uses left (counting those in
// picked, already taken by this batch), or nil. m.mu is held.
func (m *MockBus) match(r Record, picked []*Mock) *Mock {
	for _, mk := range m.mocks {
		if mk.kind != r.Kind || mk.name != r.Name || (mk.params != nil && !jsonEqual(mk.params, r.Params)) {
			continue
		}
		used := mk.used
		for _, p := range picked {
			if p == mk {
				used++
			}
		}
		if mk.times == 0 || used < mk.times {
			return mk
		}
	}
	return nil
}

// unmocked notes r for the end of the test and returns its error. m.mu is
// held.
func (m *MockBus) unmocked(r Record) error {
	msg := fmt.Sprintf("unexpected %s %s with %s: no mock matches (mock it with On%s)", r.Kind, r.Name, r.Params, strings.ToUpper(r.Kind[:1])+r.Kind[1:])
	m.unexpected = append(m.unexpected, msg)
	return errors.New("lightbustest: " + msg)
}

// Records returns every fire and call recorded so far, in order: calls
// that failed as mocked are recorded (they reached the handler), fires
// that failed are not (no event was stored), and unmocked ones are not.
func (m *MockBus) Records() []Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Record(nil), m.records...)
}

// Fired returns the parameters of each recorded fire of event name, in
// order; fires that failed as mocked are not recorded.
func (m *MockBus) Fired(name string) []json.RawMessage { return m.params("fire", name) }

// Calls returns the parameters of each recorded call of the RPC name, in
// order (calls that failed as mocked included).
func (m *MockBus) Calls(name string) []json.RawMessage { return m.params("call", name) }

func (m *MockBus) params(kind, name string) []json.RawMessage {
	var out []json.RawMessage
	for _, r := range m.Records() {
		if r.Kind == kind && r.Name == name {
			out = append(out, r.Params)
		}
	}
	return out
}

// AssertFired fails t unless the event name was fired with parameters
// JSON-equal to params.
func (m *MockBus) AssertFired(t testing.TB, name string, params any) {
	t.Helper()
	m.assertWith(t, "fire", name, params)
}

// AssertCalledWith fails t unless the RPC name was called with parameters
// JSON-equal to params.
func (m *MockBus) AssertCalledWith(t testing.TB, name string, params any) {
	t.Helper()
	m.assertWith(t, "call", name, params)
}

func (m *MockBus) assertWith(t testing.TB, kind, name string, params any) {
	t.Helper()
	want, err := canonical(params)
	if err != nil {
		t.Fatalf("lightbustest: %s %s: the expected parameters do not encode: %v", kind, name, err)
	}
	got := m.params(kind, name)
	for _, p := range got {
		if jsonEqual(p, want) {
			return
		}
	}
	var seen []string
	for _, p := range got {
		seen = append(seen, string(p))
	}
	t.Errorf("lightbustest: no %s of %s with %s; %d with: %s", kind, name, want, len(got), strings.Join(seen, ", "))
}

// AssertNotFired fails t if the event name was fired.
func (m *MockBus) AssertNotFired(t testing.TB, name string) {
	t.Helper()
	if got := m.Fired(name); len(got) > 0 {
		t.Errorf("lightbustest: %s was fired %d times, want none; first with %s", name, len(got), got[0])
	}
}

// AssertCalled fails t unless the RPC name was called exactly n times.
func (m *MockBus) AssertCalled(t testing.TB, name string, n int) {
	t.Helper()
	if got := m.Calls(name); len(got) != n {
		t.Errorf("lightbustest: %s was called %d times, want %d", name, len(got), n)
	}
}

// encodeParams encodes params as a fire or call sends them: a JSON object,
// nil giving {}.
func encodeParams(params any) (json.RawMessage, error) {
	if params == nil {
		return json.RawMessage("{}"), nil
	}
	data, err := canonical(params)
	if err != nil {
		return nil, fmt.Errorf("encoding the parameters: %w", err)
	}
	if string(data) == "null" {
		return json.RawMessage("{}"), nil
	}
	if data[0] != '{' {
		return nil, fmt.Errorf("the parameters must be a JSON object, got %s", data)
	}
	return data, nil
}

// canonical encodes v, then decodes and encodes it again, so that equal
// JSON values give equal bytes (members sorted, numbers as float64: 1 and
// 1.0 are equal).
func canonical(v any) (json.RawMessage, error) {
	data, ok := v.(json.RawMessage)
	if !ok {
		var err error
		if data, err = json.Marshal(v); err != nil {
			return nil, err
		}
	}
	var decoded any
	if err := json.Unmarshal(data, &decoded); err != nil {
		return nil, err
	}
	return json.Marshal(decoded)
}

// jsonEqual reports whether a and b, both from canonical, are equal.
func jsonEqual(a, b json.RawMessage) bool { return bytes.Equal(a, b) }

// newID returns a random id for a mocked fire.
func newID() string {
	p := make([]byte, 16)
	_, _ = rand.Read(p)
	return hex.EncodeToString(p)
}
