package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/lightbus-go/lightbus/gateway"
)

var _ gateway.APIDirectory = (*DB)(nil)

// KnownAPIs implements gateway.APIDirectory.
func (db *DB) KnownAPIs(ctx context.Context) ([]string, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT api FROM lightbus_schema
		UNION SELECT api FROM lightbus_api_owner
		UNION SELECT name FROM lightbus_api
		UNION SELECT unnest(apis) FROM lightbus_worker`)
	if err != nil {
		return nil, translate(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return names, translate(err)
}
