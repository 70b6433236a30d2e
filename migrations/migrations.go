// Package migrations holds the gateway's database schema and applies it.
//
// Two sets of migrations make up the schema: River's own tables, applied with
// rivermigrate, and the gateway's tables, numbered SQL files in this directory
// embedded with go:embed and applied with goose's Provider. Up applies both
// under one Postgres advisory lock, so several gateway replicas can start at
// once against the same database. Never edit a migration that has been
// applied anywhere; add a new file instead.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// FS holds the gateway's own SQL migrations.
//
//go:embed *.sql
var FS embed.FS

// lockKey is the advisory lock key held while migrating ("lightbus" in ASCII).
const lockKey int64 = 0x6c6967687462_7573

// ErrPending is returned by Check when migrations remain to be applied.
var ErrPending = errors.New("database migrations are pending")

// Up applies River's migrations and then the gateway's, holding an advisory
// lock for the whole run so that concurrent callers apply them once.
func Up(ctx context.Context, pool *pgxpool.Pool, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection for migrations: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	defer func() {
		// A fresh context: the unlock must happen even when ctx is done,
		// or the session would keep the lock until the connection closes.
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockKey)
	}()

	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: logger})
	if err != nil {
		return fmt.Errorf("river migrator: %w", err)
	}
	// River logs each migration it applies.
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("apply river migrations: %w", err)
	}

	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	provider, err := newProvider(db)
	if err != nil {
		return err
	}
	results, err := provider.Up(ctx)
	if err != nil {
		return fmt.Errorf("apply lightbus migrations: %w", err)
	}
	for _, r := range results {
		logger.InfoContext(ctx, "applied migration", slog.String("file", r.Source.Path), slog.Duration("duration", r.Duration))
	}
	return nil
}

// Check returns ErrPending (wrapped) when any River or gateway migration has
// not been applied, and nil when the schema is current.
func Check(ctx context.Context, pool *pgxpool.Pool) error {
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return fmt.Errorf("river migrator: %w", err)
	}
	res, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, &rivermigrate.MigrateOpts{DryRun: true})
	if err != nil {
		return fmt.Errorf("check river migrations: %w", err)
	}
	if len(res.Versions) > 0 {
		return fmt.Errorf("%w: %d river migrations", ErrPending, len(res.Versions))
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	provider, err := newProvider(db)
	if err != nil {
		return err
	}
	pending, err := provider.HasPending(ctx)
	if err != nil {
		return fmt.Errorf("check lightbus migrations: %w", err)
	}
	if pending {
		return fmt.Errorf("%w: lightbus migrations", ErrPending)
	}
	return nil
}

func newProvider(db *sql.DB) (*goose.Provider, error) {
	provider, err := goose.NewProvider(goose.DialectPostgres, db, FS,
		goose.WithTableName("lightbus_goose_version"),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return nil, fmt.Errorf("migration provider: %w", err)
	}
	return provider, nil
}
