package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lightbus-go/lightbus/gateway"
)

func TestTranslateLostConnection(t *testing.T) {
	t.Parallel()

	for _, err := range []error{
		io.ErrUnexpectedEOF,
		fmt.Errorf("commit: %w", io.EOF),
		fmt.Errorf("read: %w", net.ErrClosed),
		fmt.Errorf("query: %w", pgconn.ErrConnClosed),
		&pgconn.PgError{Code: "57P01"}, // admin_shutdown
		connectTimeout(t),
	} {
		var gerr *gateway.Error
		if got := translate(err); !errors.As(got, &gerr) || gerr.Code != gateway.EUnavailable {
			t.Errorf("translate(%v) = %v, want an unavailable error", err, got)
		}
	}
	var gerr *gateway.Error
	if got := translate(errors.New("something else")); !errors.As(got, &gerr) || gerr.Code != gateway.EInternal {
		t.Errorf("translate(other) = %v, want internal", got)
	}
}

// connectTimeout returns the error of a connection attempt that timed out.
func connectTimeout(t *testing.T) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	cfg, err := pgconn.ParseConfig("postgres://postgres@" + ln.Addr().String() + "/x?sslmode=disable&connect_timeout=1")
	if err != nil {
		t.Fatal(err)
	}
	_, err = pgconn.ConnectConfig(context.Background(), cfg)
	if err == nil {
		t.Fatal("connect to a silent server: want an error")
	}
	return err
}

// A value Postgres refuses (class 22, data exception; class 54, program
// limit exceeded) is the request's fault: invalid, with a generic message.
func TestTranslateDataException(t *testing.T) {
	t.Parallel()

	for _, code := range []string{"22P05", "22003", "22008", "22021", "22P02", "54001", "08P01"} {
		err := fmt.Errorf("insert: %w", &pgconn.PgError{Code: code, Message: "secret detail"})
		got := translate(err)
		var gerr *gateway.Error
		if !errors.As(got, &gerr) || gerr.Code != gateway.EInvalid || gerr.Message != "the request holds a value the database cannot store" {
			t.Errorf("translate(%s) = %v, want invalid with a generic message", code, got)
		}
	}
	for _, code := range []string{"23503", "42P01", "XX000"} { // foreign key, undefined table, internal
		var gerr *gateway.Error
		if got := translate(&pgconn.PgError{Code: code}); !errors.As(got, &gerr) || gerr.Code != gateway.EInternal {
			t.Errorf("translate(%s) = %v, want internal", code, got)
		}
	}
}
