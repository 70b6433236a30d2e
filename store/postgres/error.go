package postgres

import (
	"context"
	"errors"
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
		case len(pgErr.Code) == 5 && (pgErr.Code[:2] == "08" || pgErr.Code[:2] == "53" || pgErr.Code[:2] == "57"):
			// connection exception, insufficient resources, operator intervention
			return gateway.WrapError(gateway.EUnavailable, err, gateway.ErrUnavailable.Message)
		}
		return gateway.WrapError(gateway.EInternal, err, "database error")
	}
	var connErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connErr) || errors.As(err, &netErr) || pgconn.SafeToRetry(err) {
		return gateway.WrapError(gateway.EUnavailable, err, gateway.ErrUnavailable.Message)
	}
	return gateway.WrapError(gateway.EInternal, err, "database error")
}
