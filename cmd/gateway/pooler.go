package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/lightbus-go/lightbus/migrations"
)

// The values of LIGHTBUS_DB_POOLER: what stands between the gateway and
// Postgres at DATABASE_URL.
const (
	// poolerNone: DATABASE_URL reaches Postgres, or a pooler in session
	// mode, which keeps a session per client connection.
	poolerNone = "none"
	// poolerTransaction: a pooler in transaction mode (PgBouncer's
	// pool_mode = transaction) lends a server connection for one
	// transaction only. Whatever outlives a transaction on a session is
	// lost: a LISTEN, a session advisory lock.
	poolerTransaction = "transaction"
)

// listenPoolConns bounds the pool on LIGHTBUS_DB_LISTEN_URL: River's
// notifier holds one connection; migrations take the lock on one and work
// on another.
const listenPoolConns = 3

// migrate applies the migrations on pool, DATABASE_URL's, or over
// LIGHTBUS_DB_LISTEN_URL when that is set: the migration lock is a session
// advisory lock, which a transaction pooler would leave held on whichever
// server connection took it. Behind a transaction pooler without a direct
// URL it only checks that none is pending, and says how to apply them.
func migrate(ctx context.Context, pool *pgxpool.Pool, cfg Config, logger *slog.Logger) error {
	if cfg.DBListenURL != "" {
		direct, err := openDirectPool(ctx, cfg)
		if err != nil {
			return err
		}
		defer direct.Close()
		return migrations.Up(ctx, direct, logger)
	}
	if cfg.DBPooler == poolerTransaction {
		if err := migrations.Check(ctx, pool); err != nil {
			return fmt.Errorf("%w: behind a transaction pooler (LIGHTBUS_DB_POOLER=transaction) the gateway migrates only over a direct connection: set LIGHTBUS_DB_LISTEN_URL, or run gateway migrate with DATABASE_URL naming Postgres itself", err)
		}
		return nil
	}
	return migrations.Up(ctx, pool, logger)
}

// openDirectPool opens a small pool on LIGHTBUS_DB_LISTEN_URL, a direct
// connection to Postgres.
func openDirectPool(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	c := cfg
	c.DBMaxConns = listenPoolConns
	pool, err := openPool(ctx, cfg.DBListenURL, c)
	if err != nil {
		return nil, fmt.Errorf("LIGHTBUS_DB_LISTEN_URL: %w", err)
	}
	return pool, nil
}

// riverDriver returns River's driver on pool; its LISTEN goes over listen
// instead when that is not nil.
func riverDriver(pool, listen *pgxpool.Pool) riverdriver.Driver[pgx.Tx] {
	d := riverpgxv5.New(pool)
	if listen == nil {
		return d
	}
	return &listenDriver{Driver: d, listen: riverpgxv5.New(listen)}
}

// listenDriver is River's pgx driver whose notifications (LISTEN, held on a
// session) come over a direct connection while its statements go through
// a transaction pooler.
type listenDriver struct {
	*riverpgxv5.Driver
	listen *riverpgxv5.Driver
}

// GetListener returns a listener on the direct connection.
func (d *listenDriver) GetListener(params *riverdriver.GetListenenerParams) riverdriver.Listener {
	return d.listen.GetListener(params)
}
