-- +goose Up

-- Every version of every API's schema document. A new version is stored only
-- when the document's content changes (hash is the hex SHA-256 of document,
-- which is kept in canonical form, byte for byte: json, not jsonb). The
-- current version of an API is its highest. service and worker_id say who
-- published it ('' when not known: PUT /v1/schema without a service).
CREATE TABLE lightbus_schema (
    api        text        NOT NULL,
    version    integer     NOT NULL CHECK (version > 0),
    hash       text        NOT NULL,
    document   json        NOT NULL,
    service    text        NOT NULL DEFAULT '',
    worker_id  text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (api, version)
);

-- The schema each registered worker declares for each of its APIs (by hash),
-- to spot live workers that disagree with an API's current version.
CREATE TABLE lightbus_worker_schema (
    worker_id text NOT NULL REFERENCES lightbus_worker (id) ON DELETE CASCADE,
    api       text NOT NULL,
    hash      text NOT NULL,
    PRIMARY KEY (worker_id, api)
);
CREATE INDEX lightbus_worker_schema_api ON lightbus_worker_schema (api);

-- +goose Down
DROP TABLE lightbus_worker_schema;
DROP TABLE lightbus_schema;
