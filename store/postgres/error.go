package postgres

import (
	"context"
	"errors"
	"io"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lightbus-go/lightbus/gateway"
)

// translate turns a database error into a gateway error. It is the one place
// where pgx errors are interpreted, by SQLSTATE code, never by message text.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var gerr *gateway.Error
	if errors.As(err, &gerr) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return gateway.WrapError(gateway.ENotFound, err, "not found")
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		// Also when connecting timed out (LIGHTBUS_DB_CONNECT_TIMEOUT): the
		// database is unreachable, which is not the request's own deadline.
		return gateway.WrapError(gateway.EUnavailable, err, gateway.ErrUnavailable.Message)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == "23505": // unique_violation
			return gateway.WrapError(gateway.EConflict, err, "already exists")
		case pgErr.Code == "40001", pgErr.Code == "40P01": // serialization_failure, deadlock_detected
			return gateway.WrapError(gateway.EUnavailable, err, "the database asked to retry; try again")
		case pgErr.Code == "08P01": // protocol_violation
			// In the simple protocol (default_query_exec_mode=simple_protocol,
			// for poolers) the arguments travel inside the statement's text,
			// and a NUL in a string ends it early: the request's value, which
			// a retry would send again, not an unavailable database.
			return gateway.WrapError(gateway.EInvalid, err, "the request holds a value the database cannot store")
		case len(pgErr.Code) == 5 && (pgErr.Code[:2] == "08" || pgErr.Code[:2] == "53" || pgErr.Code[:2] == "57"):
			// connection exception, insufficient resources, operator intervention
			return gateway.WrapError(gateway.EUnavailable, err, gateway.ErrUnavailable.Message)
		case len(pgErr.Code) == 5 && (pgErr.Code[:2] == "22" || pgErr.Code[:2] == "54"):
			// Data exception (22P05 unsupported Unicode escape, 22021
			// invalid byte sequence, 22003 numeric out of range, 22008
			// datetime overflow...) and program limit exceeded (54001 stack
			// depth): a value of the request Postgres cannot take. Package
			// gateway's rules should refuse it first; this is the last line
			// of defence, so that it is never a 500.
			return gateway.WrapError(gateway.EInvalid, err, "the request holds a value the database cannot store")
		}
		return gateway.WrapError(gateway.EInternal, err, "database error")
	}
	var netErr net.Error
	if errors.As(err, &netErr) || pgconn.SafeToRetry(err) ||
		// The connection went away mid-request: the outcome is unknown and the
		// caller may retry (with an Idempotency-Key for fires).
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, pgconn.ErrConnClosed) {
		return gateway.WrapError(gateway.EUnavailable, err, gateway.ErrUnavailable.Message)
	}
	return gateway.WrapError(gateway.EInternal, err, "database error")
}
