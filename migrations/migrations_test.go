package migrations_test

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/lightbus-go/lightbus/migrations"
	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// emptySchemaPools returns n pools (as n gateway replicas would have) whose
// connections see only a new, empty schema, so migrations run as on a fresh
// database.
func emptySchemaPools(t *testing.T, n int) []*pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	admin := pgtest.New(t)
	if _, err := admin.Exec(ctx, `CREATE SCHEMA fresh`); err != nil {
		t.Fatal(err)
	}
	pools := make([]*pgxpool.Pool, n)
	for i := range pools {
		cfg := admin.Config().Copy()
		cfg.ConnConfig.RuntimeParams["search_path"] = "fresh"
		pool, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		pools[i] = pool
	}
	return pools
}

func TestUpConcurrently(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// As many as a Deployment's replicas (and a surge) starting together.
	pools := emptySchemaPools(t, 8)
	pool := pools[0]

	if err := migrations.Check(ctx, pool); !errors.Is(err, migrations.ErrPending) {
		t.Fatalf("Check on an empty schema: got %v, want ErrPending", err)
	}
	// Replicas starting together: every Up succeeds and the schema is
	// applied once.
	var wg sync.WaitGroup
	errs := make([]error, len(pools))
	for i := range errs {
		wg.Go(func() { errs[i] = migrations.Up(ctx, pools[i], nil) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Up #%d: %v", i, err)
		}
	}
	if err := migrations.Check(ctx, pool); err != nil {
		t.Fatalf("Check after Up: %v", err)
	}
	var tables int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = 'fresh' AND tablename IN ('lightbus_event', 'river_job')`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 2 {
		t.Fatalf("found %d of lightbus_event and river_job in the new schema", tables)
	}
	// Each migration was applied once, by one replica.
	files, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	var applied, distinct int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT version_id) FROM lightbus_goose_version WHERE version_id > 0`).Scan(&applied, &distinct); err != nil {
		t.Fatal(err)
	}
	if applied != len(files) || distinct != len(files) {
		t.Fatalf("%d migrations recorded (%d distinct), want each of the %d files once", applied, distinct, len(files))
	}
}

// TestAPIOwnersBackfilled: migration 4 gives every API registered before it
// an owner, the service that registered it.
func TestAPIOwnersBackfilled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := migratedTo(t, 3)
	if _, err := pool.Exec(ctx, `INSERT INTO lightbus_api (name, service, definition) VALUES
		('auth', 'auth', '{}'), ('support.case', 'support', '{}')`); err != nil {
		t.Fatal(err)
	}
	if err := migrations.Up(ctx, pool, nil); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT api || '=' || service FROM lightbus_api_owner ORDER BY api`)
	if err != nil {
		t.Fatal(err)
	}
	owners, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(owners, ",") != "auth=auth,support.case=support" {
		t.Fatalf("owners after the migration: %q", owners)
	}
}

// migratedTo returns a pool on a fresh schema with River's migrations and
// ours up to version, and the goose provider that applied ours, for a test
// of the migration after version on the data it leaves.
func migratedTo(t *testing.T, version int64) (*pgxpool.Pool, *goose.Provider) {
	t.Helper()
	ctx := context.Background()
	pool := emptySchemaPools(t, 1)[0]
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		t.Fatal(err)
	}
	db := stdlib.OpenDBFromPool(pool)
	t.Cleanup(func() { _ = db.Close() })
	provider, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS,
		goose.WithTableName("lightbus_goose_version"), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provider.UpTo(ctx, version); err != nil {
		t.Fatal(err)
	}
	return pool, provider
}
