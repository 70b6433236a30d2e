package bus

import (
	"errors"
	"log/slog"
	"testing"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/clientgo/lightbustest"
)

// The handlers' rules, with a mock bus for what they fire.
func TestCreateUser(t *testing.T) {
	t.Parallel()
	ctx := t.Context()

	t.Run("FiresUserRegisteredOnce", func(t *testing.T) {
		t.Parallel()
		mock := lightbustest.NewMockBus(t)
		mock.OnFire("auth.user_registered").Times(1)
		s := newService(mock, slog.New(slog.DiscardHandler))

		for _, want := range []bool{true, false} { // created, then found
			res, err := s.createUser(ctx, CreateUserParams{Username: "sally", Email: "sally@example.com", Password: "pw"})
			if err != nil || res != (CreateUserResult{Username: "sally", Created: want}) {
				t.Errorf("create_user = %+v %v, want created %v", res, err, want)
			}
		}
		mock.AssertFired(t, "auth.user_registered", UserRegisteredParams{Username: "sally", Email: "sally@example.com"})
		if ok, _ := s.checkPassword(ctx, CheckPasswordParams{Username: "sally", Password: "pw"}); !ok {
			t.Error("the new user's password does not check")
		}
	})

	t.Run("FailedFireForgetsTheUser", func(t *testing.T) {
		t.Parallel()
		mock := lightbustest.NewMockBus(t)
		mock.OnFire("auth.user_registered").ReturnError(errors.New("gateway down")).Times(1)
		mock.OnFire("auth.user_registered").Times(1)
		s := newService(mock, slog.New(slog.DiscardHandler))

		p := CreateUserParams{Username: "bob", Email: "bob@example.com"}
		if _, err := s.createUser(ctx, p); err == nil {
			t.Fatal("create_user succeeded although its event was not fired")
		}
		// The caller's retry creates the user and fires the event.
		if res, err := s.createUser(ctx, p); err != nil || !res.Created {
			t.Errorf("retried create_user = %+v %v, want created", res, err)
		}
		mock.AssertFired(t, "auth.user_registered", map[string]string{"username": "bob", "email": "bob@example.com"})
	})

	t.Run("MissingFields", func(t *testing.T) {
		t.Parallel()
		mock := lightbustest.NewMockBus(t) // nothing mocked: nothing may be fired
		s := newService(mock, slog.New(slog.DiscardHandler))
		_, err := s.createUser(ctx, CreateUserParams{Username: "x"})
		if !errors.Is(err, ErrMissingFields) || !errors.Is(err, lightbus.ErrInvalidParams) {
			t.Errorf("create_user without email = %v, want ErrMissingFields and ErrInvalidParams", err)
		}
	})
}

// The handlers as the gateway reaches them: through the worker, with the
// error a caller sees.
func TestHandlers(t *testing.T) {
	t.Parallel()
	bus := New(lightbus.WithURL("http://127.0.0.1:1"), lightbus.WithLogger(slog.New(slog.DiscardHandler)))

	var ok bool
	if err := lightbustest.Invoke(t, bus, "auth.check_password", CheckPasswordParams{Username: "admin", Password: "secret"}, &ok); err != nil || !ok {
		t.Errorf("check_password admin = %v %v, want true", ok, err)
	}
	err := lightbustest.Invoke(t, bus, "auth.create_user", map[string]string{"username": "x"}, nil)
	var lerr *lightbus.Error
	if !errors.Is(err, ErrMissingFields) || !errors.As(err, &lerr) || lerr.Code != lightbus.CodeInvalid {
		t.Errorf("create_user without email = %v, want 400 invalid MissingFields", err)
	}
}
