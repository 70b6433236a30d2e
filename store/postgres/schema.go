package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lightbus-go/lightbus/gateway"
)

var _ gateway.SchemaStore = (*DB)(nil)

type schemaRow struct {
	API       string          `db:"api"`
	Version   int             `db:"version"`
	Hash      string          `db:"hash"`
	Service   string          `db:"service"`
	WorkerID  string          `db:"worker_id"`
	CreatedAt time.Time       `db:"created_at"`
	Document  json.RawMessage `db:"document"`
}

func (r *schemaRow) version() gateway.SchemaVersion {
	return gateway.SchemaVersion{API: r.API, Version: r.Version, Hash: r.Hash, Service: r.Service,
		WorkerID: r.WorkerID, CreatedAt: r.CreatedAt.UTC(), Schema: r.Document}
}

const schemaColumns = `api, version, hash, service, worker_id, created_at, document`

// currentOrder sorts the versions of an API (rows of lightbus_schema as s)
// so that its current version comes first: the newest of those a live
// worker declares (by hash) or that were published without a worker (PUT
// /v1/schema: an empty worker_id); when no live worker declares a schema for the
// API, simply the newest. So a version published by a worker that is gone
// stops being enforced on the workers still live, while a schema outlives
// all its workers. docs/SCHEMAS.md states the rule.
const currentOrder = `(s.worker_id = ''
		OR EXISTS (SELECT 1 FROM lightbus_worker_schema ws JOIN lightbus_worker w ON w.id = ws.worker_id
			WHERE ws.api = s.api AND ws.hash = s.hash AND w.expires_at > now())
		OR NOT EXISTS (SELECT 1 FROM lightbus_worker_schema ws JOIN lightbus_worker w ON w.id = ws.worker_id
			WHERE ws.api = s.api AND w.expires_at > now())) DESC, s.version DESC`

// lockAPI takes the transaction-scoped advisory lock that serialises changes
// to one API (registrations take the same lock).
func lockAPI(ctx context.Context, tx pgx.Tx, api string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('lightbus_api:' || $1))`, api)
	return err
}

// PublishSchema implements gateway.SchemaStore.
func (db *DB) PublishSchema(ctx context.Context, sv *gateway.SchemaVersion) (*gateway.SchemaVersion, bool, error) {
	var cur *gateway.SchemaVersion
	var created bool
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		if err := lockAPI(ctx, tx, sv.API); err != nil {
			return err
		}
		var err error
		cur, created, err = publishSchemaTx(ctx, tx, sv)
		return err
	})
	if err != nil {
		return nil, false, err
	}
	return cur, created, nil
}

// publishSchemaTx stores sv as the API's next version unless the current one
// (currentOrder) has the same hash. The caller holds the API's lock.
func publishSchemaTx(ctx context.Context, tx pgx.Tx, sv *gateway.SchemaVersion) (*gateway.SchemaVersion, bool, error) {
	rows, err := tx.Query(ctx, `SELECT `+schemaColumns+` FROM lightbus_schema s WHERE api = $1 ORDER BY `+currentOrder+` LIMIT 1`, sv.API)
	if err != nil {
		return nil, false, err
	}
	cur, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[schemaRow])
	next := 1
	switch {
	case err == nil:
		if cur.Hash == sv.Hash {
			v := cur.version()
			return &v, false, nil
		}
		if err := tx.QueryRow(ctx, `SELECT max(version) + 1 FROM lightbus_schema WHERE api = $1`, sv.API).Scan(&next); err != nil {
			return nil, false, err
		}
	case !errors.Is(err, pgx.ErrNoRows):
		return nil, false, err
	}
	rows, err = tx.Query(ctx, `
		INSERT INTO lightbus_schema (api, version, hash, document, service, worker_id)
		VALUES ($1, $2, $3, $4, $5, $6)
		RETURNING `+schemaColumns, sv.API, next, sv.Hash, string(sv.Schema), sv.Service, sv.WorkerID)
	if err != nil {
		return nil, false, err
	}
	row, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[schemaRow])
	if err != nil {
		return nil, false, err
	}
	v := row.version()
	return &v, true, nil
}

// registerSchemas records the schemas the worker declares and publishes the
// ones its declaration changed (see gateway.WorkerStore.RegisterWorker). The
// caller holds the locks of the registration's APIs, and the worker's row
// exists.
func registerSchemas(ctx context.Context, tx pgx.Tx, reg *gateway.Registration, res *gateway.RegistrationResult) error {
	declared := []string{}
	for _, a := range reg.APIs {
		doc := a.SchemaDocument()
		if doc == nil {
			continue
		}
		canon, hash, err := doc.Canonical()
		if err != nil {
			return err
		}
		declared = append(declared, a.Name)
		var prev string
		err = tx.QueryRow(ctx, `
			SELECT hash FROM lightbus_worker_schema WHERE worker_id = $1 AND api = $2`, reg.WorkerID, a.Name).Scan(&prev)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if prev == hash {
			continue // a heartbeat: it does not publish again
		}
		if _, err := tx.Exec(ctx, `
			INSERT INTO lightbus_worker_schema (worker_id, api, hash) VALUES ($1, $2, $3)
			ON CONFLICT (worker_id, api) DO UPDATE SET hash = EXCLUDED.hash`, reg.WorkerID, a.Name, hash); err != nil {
			return err
		}
		_, created, err := publishSchemaTx(ctx, tx, &gateway.SchemaVersion{
			API: a.Name, Hash: hash, Schema: canon, Service: reg.Service, WorkerID: reg.WorkerID})
		if err != nil {
			return err
		}
		if created {
			res.Published = append(res.Published, a.Name)
		}
	}
	if _, err := tx.Exec(ctx, `
		DELETE FROM lightbus_worker_schema WHERE worker_id = $1 AND NOT (api = ANY($2))`, reg.WorkerID, declared); err != nil {
		return err
	}
	if len(declared) == 0 {
		return nil
	}
	conflicts, err := schemaConflicts(ctx, tx, declared)
	if err != nil {
		return err
	}
	res.SchemaConflicts = conflicts
	return nil
}

// querier is what a pool and a transaction share.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// schemaConflicts lists the live workers whose declared schema for one of
// apis differs from its current version.
func schemaConflicts(ctx context.Context, q querier, apis []string) ([]gateway.SchemaConflict, error) {
	rows, err := q.Query(ctx, `
		SELECT ws.api, ws.worker_id, w.service, ws.hash
		FROM lightbus_worker_schema ws
		JOIN lightbus_worker w ON w.id = ws.worker_id AND w.expires_at > now()
		JOIN LATERAL (
			SELECT s.hash FROM lightbus_schema s WHERE s.api = ws.api ORDER BY `+currentOrder+` LIMIT 1
		) cur ON true
		WHERE ws.api = ANY($1) AND ws.hash <> cur.hash
		ORDER BY ws.api, ws.worker_id`, apis)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (gateway.SchemaConflict, error) {
		var c gateway.SchemaConflict
		err := r.Scan(&c.API, &c.WorkerID, &c.Service, &c.Hash)
		return c, err
	})
}

// SchemaConflicts implements gateway.SchemaStore.
func (db *DB) SchemaConflicts(ctx context.Context, api string) ([]gateway.SchemaConflict, error) {
	c, err := schemaConflicts(ctx, db.pool, []string{api})
	return c, translate(err)
}

// CurrentSchemaRef implements gateway.SchemaStore.
func (db *DB) CurrentSchemaRef(ctx context.Context, api string) (gateway.SchemaRef, error) {
	var ref gateway.SchemaRef
	err := db.pool.QueryRow(ctx, `
		SELECT version, hash FROM lightbus_schema s WHERE api = $1 ORDER BY `+currentOrder+` LIMIT 1`, api).
		Scan(&ref.Version, &ref.Hash)
	return ref, translate(err)
}

// SchemaVersion implements gateway.SchemaStore.
func (db *DB) SchemaVersion(ctx context.Context, api string, version int) (*gateway.SchemaVersion, error) {
	query := `SELECT ` + schemaColumns + ` FROM lightbus_schema WHERE api = $1 AND version = $2`
	args := []any{api, version}
	if version == 0 {
		query = `SELECT ` + schemaColumns + ` FROM lightbus_schema s WHERE api = $1 ORDER BY ` + currentOrder + ` LIMIT 1`
		args = args[:1]
	}
	rows, err := db.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, translate(err)
	}
	row, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[schemaRow])
	if err != nil {
		return nil, translate(err)
	}
	v := row.version()
	return &v, nil
}

// ListSchemas implements gateway.SchemaStore.
func (db *DB) ListSchemas(ctx context.Context) ([]gateway.SchemaVersion, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT DISTINCT ON (api) `+schemaColumns+` FROM lightbus_schema s ORDER BY api, `+currentOrder)
	if err != nil {
		return nil, translate(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByName[schemaRow])
	if err != nil {
		return nil, translate(err)
	}
	out := make([]gateway.SchemaVersion, len(got))
	for i := range got {
		out[i] = got[i].version()
	}
	return out, nil
}

// ListSchemaVersions implements gateway.SchemaStore.
func (db *DB) ListSchemaVersions(ctx context.Context, api string) ([]gateway.SchemaVersion, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT api, version, hash, service, worker_id, created_at, NULL::json AS document
		FROM lightbus_schema WHERE api = $1 ORDER BY version DESC`, api)
	if err != nil {
		return nil, translate(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByName[schemaRow])
	if err != nil {
		return nil, translate(err)
	}
	if len(got) == 0 {
		return nil, gateway.Errorf(gateway.ENotFound, "API %q has no schema", api)
	}
	out := make([]gateway.SchemaVersion, len(got))
	for i := range got {
		out[i] = got[i].version()
	}
	return out, nil
}
