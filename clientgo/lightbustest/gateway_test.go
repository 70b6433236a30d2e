package lightbustest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/clientgo/lightbustest"
)

func TestMain(m *testing.M) { lightbustest.Main(m) }

// TestGateway runs a worker against a private gateway: an RPC answered, a
// handler's refusal with its error type, and a fired event delivered.
func TestGateway(t *testing.T) {
	t.Parallel()
	gw := lightbustest.StartGateway(t)

	errReserved := lightbus.NewError("ReservedUsername", "the username is reserved")
	delivered := make(chan registeredParams, 1)
	bus := lightbus.MustCreate(append(gw.Options(), lightbus.WithService("auth"))...)
	checkPassword.Handle(bus, func(ctx context.Context, p checkParams) (bool, error) {
		if p.Username == "root" {
			return false, fmt.Errorf("%w: %w", lightbus.ErrInvalidParams, errReserved)
		}
		return p.Username == "admin" && p.Password == "secret", nil
	})
	userRegistered.Declare(bus)
	userRegistered.Listen(bus, "welcome", func(ctx context.Context, ev lightbus.EventMessage, p registeredParams) error {
		delivered <- p
		return nil
	})
	gw.Run(t, bus)

	client := gw.Client(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	ok, err := checkPassword.Call(ctx, client, checkParams{Username: "admin", Password: "secret"})
	if err != nil || !ok {
		t.Errorf("check_password: %v %v, want true", ok, err)
	}
	_, err = checkPassword.Call(ctx, client, checkParams{Username: "root"})
	var lerr *lightbus.Error
	if !errors.Is(err, errReserved) || !errors.As(err, &lerr) || lerr.Status != 400 || lerr.Code != lightbus.CodeInvalid {
		t.Errorf("check_password as root: %v, want 400 invalid with error type ReservedUsername", err)
	}

	want := registeredParams{Username: "sally", Email: "sally@example.com"}
	if _, err := userRegistered.Fire(ctx, client, want); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-delivered:
		if got != want {
			t.Errorf("delivered %+v, want %+v", got, want)
		}
	case <-ctx.Done():
		t.Fatal("the event was not delivered within a minute")
	}
}

// TestGatewaysArePrivate checks that two tests' gateways share nothing: a
// worker of one is not seen by the other.
func TestGatewaysArePrivate(t *testing.T) {
	t.Parallel()
	a, b := lightbustest.StartGateway(t), lightbustest.StartGateway(t)
	bus := lightbus.MustCreate(append(a.Options(), lightbus.WithService("auth"))...)
	checkPassword.Handle(bus, func(ctx context.Context, p checkParams) (bool, error) { return true, nil })
	a.Run(t, bus)
	workers, err := b.Client(t).Workers(t.Context())
	if err != nil || len(workers) != 0 {
		t.Errorf("the other gateway lists %v (%v), want no worker", workers, err)
	}
	if a.URL == b.URL || a.Token == b.Token {
		t.Errorf("two gateways share a URL or token: %+v %+v", a, b)
	}
}
