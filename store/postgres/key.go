package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lightbus-go/lightbus/gateway"
)

var _ gateway.KeyStore = (*DB)(nil)

type keyRow struct {
	Name      string     `db:"name"`
	Hash      []byte     `db:"hash"`
	Scopes    []string   `db:"scopes"`
	CreatedAt time.Time  `db:"created_at"`
	RevokedAt *time.Time `db:"revoked_at"`
}

func (r *keyRow) key() *gateway.APIKey {
	k := &gateway.APIKey{Name: r.Name, Scopes: r.Scopes, CreatedAt: r.CreatedAt.UTC()}
	if r.RevokedAt != nil {
		t := r.RevokedAt.UTC()
		k.RevokedAt = &t
	}
	return k
}

const keyColumns = `name, hash, scopes, created_at, revoked_at`

// collectKey reads the one key row of rows.
func collectKey(rows pgx.Rows, err error) (*keyRow, error) {
	if err != nil {
		return nil, translate(err)
	}
	row, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[keyRow])
	if err != nil {
		return nil, translate(err)
	}
	return &row, nil
}

// CreateKey implements gateway.KeyStore.
func (db *DB) CreateKey(ctx context.Context, key *gateway.APIKey, hash []byte) (*gateway.APIKey, error) {
	row, err := collectKey(db.pool.Query(ctx, `
		INSERT INTO lightbus_api_key (name, hash, scopes) VALUES ($1, $2, $3)
		RETURNING `+keyColumns, key.Name, hash, key.Scopes))
	if err != nil {
		return nil, err
	}
	return row.key(), nil
}

// EnsureKey implements gateway.KeyStore. Replicas starting together with
// the same key all end up with the one row.
func (db *DB) EnsureKey(ctx context.Context, key *gateway.APIKey, hash []byte) (*gateway.APIKey, []byte, error) {
	var row *keyRow
	err := db.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			INSERT INTO lightbus_api_key (name, hash, scopes) VALUES ($1, $2, $3)
			ON CONFLICT DO NOTHING`, key.Name, hash, key.Scopes)
		if err != nil {
			return err
		}
		row, err = collectKey(tx.Query(ctx, `SELECT `+keyColumns+` FROM lightbus_api_key WHERE name = $1`, key.Name))
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return row.key(), row.Hash, nil
}

// KeyByHash implements gateway.KeyStore.
func (db *DB) KeyByHash(ctx context.Context, hash []byte) (*gateway.APIKey, []byte, error) {
	row, err := collectKey(db.pool.Query(ctx, `SELECT `+keyColumns+` FROM lightbus_api_key WHERE hash = $1`, hash))
	if err != nil {
		return nil, nil, err
	}
	return row.key(), row.Hash, nil
}

// ListKeys implements gateway.KeyStore.
func (db *DB) ListKeys(ctx context.Context) ([]gateway.APIKey, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+keyColumns+` FROM lightbus_api_key ORDER BY name`)
	if err != nil {
		return nil, translate(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByName[keyRow])
	if err != nil {
		return nil, translate(err)
	}
	keys := make([]gateway.APIKey, len(got))
	for i := range got {
		keys[i] = *got[i].key()
	}
	return keys, nil
}

// RevokeKey implements gateway.KeyStore. A revoked key keeps its first
// revocation time.
func (db *DB) RevokeKey(ctx context.Context, name string) error {
	tag, err := db.pool.Exec(ctx, `
		UPDATE lightbus_api_key SET revoked_at = coalesce(revoked_at, now()) WHERE name = $1`, name)
	if err != nil {
		return translate(err)
	}
	if tag.RowsAffected() == 0 {
		return gateway.ErrNotFound
	}
	return nil
}
