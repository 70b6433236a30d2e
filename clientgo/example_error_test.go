package lightbus_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
)

// The domain errors of the auth service, declared once in its bus package,
// which both the service and its callers import.
var (
	ErrUserExists    = lightbus.NewError("UserExists", "the user exists already")
	ErrUsernameTaken = lightbus.NewError("UsernameTaken", "the username is reserved")
)

type createUserParams struct {
	Username string `json:"username"`
}

var createUser = lightbus.NewRPC[createUserParams, bool]("accounts", "create_user")

// A service's domain errors: the handler returns (or wraps) a declared
// *RemoteError, and the caller tests for it with errors.Is, across the
// gateway. Joined with ErrInvalidParams, the answer is 400 invalid and
// keeps the error's type.
func ExampleNewError() {
	// The accounts service's worker.
	accounts := lightbus.MustCreate(lightbus.WithService("accounts"))
	createUser.Handle(accounts, func(ctx context.Context, p createUserParams) (bool, error) {
		switch p.Username {
		case "admin":
			return false, fmt.Errorf("%w: %s", ErrUserExists, p.Username)
		case "root":
			return false, fmt.Errorf("%w: %w", lightbus.ErrInvalidParams, ErrUsernameTaken)
		}
		return true, nil
	})
	ctx, stop := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- accounts.Run(ctx) }()
	defer func() { stop(); <-stopped }()

	// A caller.
	bus := lightbus.MustCreate()
	for _, username := range []string{"admin", "root", "sally"} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := createUser.Call(ctx, bus, createUserParams{Username: username})
		cancel()
		var lerr *lightbus.Error
		switch {
		case errors.Is(err, ErrUserExists) && errors.As(err, &lerr):
			fmt.Printf("%s: exists already (%s)\n", username, lerr.Message)
		case errors.Is(err, ErrUsernameTaken):
			fmt.Println(username+": taken; the caller's fault:", lightbus.IsCode(err, lightbus.CodeInvalid))
		case errors.Is(err, lightbus.ErrUnavailable), errors.Is(err, lightbus.ErrTimeout):
			fmt.Println(username + ": try again later")
		case err != nil:
			fmt.Println(username+":", err)
		default:
			fmt.Println(username + ": created")
		}
	}
	// Output:
	// admin: exists already (the user exists already: admin)
	// root: taken; the caller's fault: true
	// sally: created
}
