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
