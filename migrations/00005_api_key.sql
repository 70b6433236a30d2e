-- +goose Up

-- API keys. A token is shown once, when its key is made; only its SHA-256
-- is kept (tokens are 32 random bytes: a plain hash is enough). scopes are
-- as written ("fire:billing.*", "read", "admin"). A revoked key keeps its
-- row, and its name, for the record: names are never reused.
CREATE TABLE lightbus_api_key (
    name       text        PRIMARY KEY,
    hash       bytea       NOT NULL UNIQUE CHECK (length(hash) = 32),
    scopes     text[]      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);

-- +goose Down
DROP TABLE lightbus_api_key;
