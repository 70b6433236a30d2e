// Package bus is the bus package of the example "auth" service: it creates
// the service's Bus and sets up what the service provides. `lightbus run`
// in examples/auth runs it as a worker, which
//
//   - answers the RPCs auth.check_password and auth.create_user, and
//   - fires the event auth.user_registered whenever create_user adds a user,
//   - logs how many users it has every minute: a scheduled task that runs
//     in one worker of the service, however many run.
//
// Users live in memory; "admin" (password "secret") exists from the start.
package bus

import (
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"sync"
	"time"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
)

// CheckPasswordParams are the parameters of auth.check_password.
type CheckPasswordParams struct {
	Username string `json:"username"` // the user to check
	Password string `json:"password"` // the password to check
}

// CreateUserParams are the parameters of auth.create_user.
type CreateUserParams struct {
	Username string `json:"username"`           // the new user's name, required
	Email    string `json:"email"`              // the new user's email, required
	Password string `json:"password,omitempty"` // none: the user cannot log in until one is set
}

// CreateUserResult is the result of auth.create_user.
type CreateUserResult struct {
	// Username is the user's name.
	Username string `json:"username"`
	// Created is false when the user existed already.
	Created bool `json:"created"`
}

// UserRegisteredParams are the parameters of auth.user_registered.
type UserRegisteredParams struct {
	Username string `json:"username"` // the new user's name
	Email    string `json:"email"`    // the new user's email
}

// The auth API: two RPCs and an event.
var (
	// CheckPassword reports whether a username and password match.
	CheckPassword = lightbus.NewRPC[CheckPasswordParams, bool]("auth", "check_password")
	// CreateUser adds a user, unless one with the username exists.
	CreateUser = lightbus.NewRPC[CreateUserParams, CreateUserResult]("auth", "create_user")
	// UserRegistered is fired once for each user CreateUser adds.
	UserRegistered = lightbus.NewEvent[UserRegisteredParams]("auth", "user_registered")
)

// ErrMissingFields is the error of auth.create_user without a username or
// an email: the caller's fault (400 invalid), with error_type
// "MissingFields". Callers test for it with errors.Is(err,
// bus.ErrMissingFields), through the gateway as in tests.
var ErrMissingFields = lightbus.NewError("MissingFields", "username and email are required")

// Bus is the auth service's bus, configured from the environment
// (LIGHTBUS_URL, ...).
var Bus = New()

// New returns a Bus of service "auth" serving the auth API with its own
// user store; opts add to or override the defaults (tests pass
// lightbus.WithURL, for instance).
func New(opts ...lightbus.Option) *lightbus.Bus {
	bus := lightbus.MustCreate(append([]lightbus.Option{lightbus.WithService("auth")}, opts...)...)
	s := newService(bus, bus.Logger())
	CheckPassword.Handle(bus, s.checkPassword)
	CreateUser.Handle(bus, s.createUser)
	UserRegistered.Declare(bus)
	bus.Every(time.Minute, s.countUsers, lightbus.TaskName("count_users"))
	return bus
}

// user is a stored user. (An example: a real service stores a password
// hash, not the password.)
type user struct {
	email, password string
}

// service is the auth service's handlers. It fires its events through a
// lightbus.Client: the service's Bus, or a mock in unit tests.
type service struct {
	events lightbus.Client
	log    *slog.Logger

	mu    sync.Mutex
	users map[string]user // by username
}

// newService returns the handlers with their user store, holding admin.
func newService(events lightbus.Client, log *slog.Logger) *service {
	return &service{events: events, log: log, users: map[string]user{"admin": {email: "admin@example.com", password: "secret"}}}
}

// countUsers is the count_users task: the gateway elects one worker of
// the service to run it each minute, and another takes over if it stops.
func (s *service) countUsers(ctx context.Context) error {
	s.mu.Lock()
	n := len(s.users)
	s.mu.Unlock()
	s.log.InfoContext(ctx, "auth: users", "count", n)
	return nil
}

func (s *service) checkPassword(ctx context.Context, p CheckPasswordParams) (bool, error) {
	s.mu.Lock()
	u, ok := s.users[p.Username]
	s.mu.Unlock()
	valid := ok && u.password != "" && subtle.ConstantTimeCompare([]byte(u.password), []byte(p.Password)) == 1
	s.log.Info("auth: checked a password", "username", p.Username, "valid", valid)
	return valid, nil
}

func (s *service) createUser(ctx context.Context, p CreateUserParams) (CreateUserResult, error) {
	if p.Username == "" || p.Email == "" {
		return CreateUserResult{}, fmt.Errorf("%w: %w", lightbus.ErrInvalidParams, ErrMissingFields)
	}
	s.mu.Lock()
	if _, exists := s.users[p.Username]; exists {
		s.mu.Unlock()
		s.log.Info("auth: user exists already", "username", p.Username)
		return CreateUserResult{Username: p.Username, Created: false}, nil
	}
	s.users[p.Username] = user{email: p.Email, password: p.Password}
	s.mu.Unlock()

	// The same key on every try of this user's event: a retried create_user
	// does not fire it twice.
	res, err := UserRegistered.Fire(ctx, s.events, UserRegisteredParams{Username: p.Username, Email: p.Email},
		lightbus.IdempotencyKey("auth.user_registered:"+p.Username))
	if err != nil {
		// Forget the user so that the caller's retry creates it and fires again.
		s.mu.Lock()
		delete(s.users, p.Username)
		s.mu.Unlock()
		return CreateUserResult{}, fmt.Errorf("announcing user %s: %w", p.Username, err)
	}
	s.log.Info("auth: user created", "username", p.Username, "email", p.Email, "event_id", res.ID)
	return CreateUserResult{Username: p.Username, Created: true}, nil
}
