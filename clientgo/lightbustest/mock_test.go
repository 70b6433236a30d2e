package lightbustest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/clientgo/lightbustest"
)

// fakeT records what a MockBus reports to its test, and runs its cleanups
// when asked.
type fakeT struct {
	testing.TB
	mu       sync.Mutex
	errors   []string
	cleanups []func()
}

func (f *fakeT) Helper() {}
func (f *fakeT) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}
func (f *fakeT) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }

// end runs the cleanups, as the end of a test does, and returns the
// failures reported.
func (f *fakeT) end() []string {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	return f.errors
}

type registeredParams struct {
	Username string `json:"username"`
	Email    string `json:"email"`
}

var userRegistered = lightbus.NewEvent[registeredParams]("auth", "user_registered")

type checkParams struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

var checkPassword = lightbus.NewRPC[checkParams, bool]("auth", "check_password")

func TestMockBus(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("RecordsAndAnswers", func(t *testing.T) {
		t.Parallel()
		ft := &fakeT{TB: t}
		mock := lightbustest.NewMockBus(ft)
		mock.OnCall("auth.check_password").WithParams(map[string]any{"username": "admin", "password": "secret"}).Return(true)
		mock.OnCall("auth.check_password").Return(false)
		mock.OnFire("auth.user_registered")

		ok, err := checkPassword.Call(ctx, mock, checkParams{Username: "admin", Password: "secret"})
		if err != nil || !ok {
			t.Errorf("admin: %v %v, want true", ok, err)
		}
		ok, err = checkPassword.Call(ctx, mock, checkParams{Username: "sally", Password: "x"})
		if err != nil || ok {
			t.Errorf("sally: %v %v, want false", ok, err)
		}
		res, err := userRegistered.Fire(ctx, mock, registeredParams{Username: "sally", Email: "sally@example.com"})
		if err != nil || res.ID == "" || res.API != "auth" || res.Event != "user_registered" {
			t.Errorf("fire: %+v %v", res, err)
		}
		// JSON equality: member order and number forms do not matter.
		mock.AssertFired(ft, "auth.user_registered", `ignored`) // a string: never equal to an object
		mock.AssertFired(t, "auth.user_registered", map[string]any{"email": "sally@example.com", "username": "sally"})
		mock.AssertCalled(t, "auth.check_password", 2)
		mock.AssertCalledWith(t, "auth.check_password", map[string]string{"password": "x", "username": "sally"})
		mock.AssertNotFired(t, "auth.user_deleted")
		if got := ft.end(); len(got) != 1 || !strings.Contains(got[0], `no fire of auth.user_registered with "ignored"; 1 with: {"email":"sally@example.com","username":"sally"}`) {
			t.Errorf("failures = %q, want the one wrong AssertFired", got)
		}
	})

	t.Run("Unmocked", func(t *testing.T) {
		t.Parallel()
		ft := &fakeT{TB: t}
		mock := lightbustest.NewMockBus(ft)
		mock.OnFire("auth.user_registered").WithParams(map[string]string{"username": "sally", "email": "s@example.com"})
		err := mock.Call(ctx, "auth.create_user", map[string]string{"username": "bob"}, nil)
		if err == nil || !strings.Contains(err.Error(), "unexpected call auth.create_user") {
			t.Errorf("unmocked call = %v, want an error", err)
		}
		_, err = mock.Fire(ctx, "auth.user_registered", map[string]string{"username": "bob", "email": "b@example.com"})
		if err == nil {
			t.Error("fire with other parameters succeeded")
		}
		if len(mock.Records()) != 0 {
			t.Errorf("records = %v, want none", mock.Records())
		}
		got := ft.end()
		if len(got) != 2 || !strings.Contains(got[0], `unexpected call auth.create_user with {"username":"bob"}`) ||
			!strings.Contains(got[1], `unexpected fire auth.user_registered with {"email":"b@example.com","username":"bob"}`) {
			t.Errorf("failures = %q, want the unmocked call and fire", got)
		}
	})

	t.Run("Times", func(t *testing.T) {
		t.Parallel()
		ft := &fakeT{TB: t}
		mock := lightbustest.NewMockBus(ft)
		mock.OnCall("auth.check_password").Return(true).Times(1)
		mock.OnCall("auth.create_user").Times(2)
		for i, want := range []bool{true, false} {
			var ok bool
			err := mock.Call(ctx, "auth.check_password", nil, &ok)
			if want != (err == nil) {
				t.Errorf("call %d: %v, want success %v", i+1, err, want)
			}
		}
		if err := mock.Call(ctx, "auth.create_user", nil, nil); err != nil {
			t.Error(err)
		}
		got := ft.end()
		if len(got) != 2 || !strings.Contains(got[0], "unexpected call auth.check_password") || !strings.Contains(got[1], "call auth.create_user: want 2, got 1") {
			t.Errorf("failures = %q, want the extra check_password and the missing create_user", got)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		t.Parallel()
		errUserExists := lightbus.NewError("UserExists", "the user exists already")
		mock := lightbustest.NewMockBus(t)
		mock.OnCall("auth.create_user").WithParams(map[string]string{"username": "admin"}).ReturnError(errUserExists)
		mock.OnCall("auth.create_user").WithParams(map[string]string{"username": ""}).ReturnError(fmt.Errorf("%w: no username", lightbus.ErrInvalidParams))
		mock.OnCall("auth.create_user").ReturnError(&lightbus.Error{Status: 503, Code: lightbus.CodeNoWorker})
		mock.OnFire("auth.user_registered").ReturnError(errors.New("gateway down"))

		err := mock.Call(ctx, "auth.create_user", map[string]string{"username": "admin"}, nil)
		var lerr *lightbus.Error
		if !errors.Is(err, errUserExists) || !errors.As(err, &lerr) || lerr.Code != lightbus.CodeRemoteError || lerr.ErrorType != "UserExists" {
			t.Errorf("domain error: %#v, want remote_error UserExists", err)
		}
		err = mock.Call(ctx, "auth.create_user", map[string]string{"username": ""}, nil)
		if !lightbus.IsCode(err, lightbus.CodeInvalid) || errors.Is(err, lightbus.ErrInvalidParams) {
			t.Errorf("invalid params: %v, want the caller's *Error with code invalid", err)
		}
		err = mock.Call(ctx, "auth.create_user", map[string]string{"username": "bob"}, nil)
		if !errors.Is(err, lightbus.ErrUnavailable) || !lightbus.IsCode(err, lightbus.CodeNoWorker) {
			t.Errorf("gateway error: %v, want no_worker as given", err)
		}
		if _, err := userRegistered.Fire(ctx, mock, registeredParams{Username: "bob", Email: "b@example.com"}); err == nil || !strings.Contains(err.Error(), "gateway down") {
			t.Errorf("fire = %v, want the mocked error", err)
		}
		mock.AssertCalled(t, "auth.create_user", 3)
		mock.AssertNotFired(t, "auth.user_registered")
	})

	t.Run("SchemaChecked", func(t *testing.T) {
		t.Parallel()
		mock := lightbustest.NewMockBus(t)
		// The typed handle checks parameters against its schema before the
		// mock sees them, as it does before sending to the gateway.
		type roleParams struct {
			Role string `json:"role" jsonschema:"enum=admin,enum=user"`
		}
		setRole := lightbus.NewRPC[roleParams, bool]("auth", "set_role")
		_, err := setRole.Call(ctx, mock, roleParams{Role: "root"})
		var lerr *lightbus.Error
		if !errors.As(err, &lerr) || lerr.Code != lightbus.CodeValidation || len(lerr.Violations) != 1 || lerr.Violations[0].Pointer != "/role" {
			t.Errorf("call = %v, want a validation error on /role before the mock", err)
		}
	})

	t.Run("BatchAllOrNone", func(t *testing.T) {
		t.Parallel()
		ft := &fakeT{TB: t}
		mock := lightbustest.NewMockBus(ft)
		mock.OnFire("auth.user_registered")
		_, err := mock.FireBatch(ctx, []lightbus.BatchEvent{
			{Name: "auth.user_registered", Params: map[string]string{"username": "a"}},
			{Name: "auth.user_deleted", Params: map[string]string{"username": "b"}},
		})
		if err == nil || len(mock.Records()) != 0 {
			t.Errorf("batch with an unmocked event: %v, records %v; want an error and none", err, mock.Records())
		}
		if got := ft.end(); len(got) != 1 {
			t.Errorf("failures = %q, want the unmocked event", got)
		}
	})
}

// TestMockFailingFireCounts checks that a fire failing as mocked uses its
// mock, so that the next fire finds the next one.
func TestMockFailingFireCounts(t *testing.T) {
	t.Parallel()
	mock := lightbustest.NewMockBus(t)
	mock.OnFire("auth.user_registered").ReturnError(errors.New("gateway down")).Times(1)
	mock.OnFire("auth.user_registered").Times(1)
	if _, err := mock.Fire(t.Context(), "auth.user_registered", nil); err == nil {
		t.Error("first fire succeeded, want the mocked error")
	}
	if _, err := mock.Fire(t.Context(), "auth.user_registered", nil); err != nil {
		t.Errorf("second fire: %v", err)
	}
	if got := mock.Fired("auth.user_registered"); len(got) != 1 {
		t.Errorf("fired %d, want the one that succeeded", len(got))
	}
}
