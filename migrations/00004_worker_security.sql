-- +goose Up

-- Which service owns each API. The first service to register a worker
-- providing an API owns it for good: no other service can register a worker
-- providing it, live owner or not, until an admin releases it
-- (DELETE /v1/apis/{api}/owner). Owners are backfilled from the APIs already
-- registered (lightbus_api.service: the service that last registered one).
CREATE TABLE lightbus_api_owner (
    api        text        PRIMARY KEY,
    service    text        NOT NULL,
    claimed_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO lightbus_api_owner (api, service, claimed_at)
SELECT name, service, updated_at FROM lightbus_api
ON CONFLICT DO NOTHING;

-- Each worker's RPC signing secret (Standard Webhooks, "whsec_..."), issued
-- when it registers and replaced when it registers anew: a PUT whose
-- instance_id differs from the stored one. The replaced secret is kept in
-- rpc_secret_previous, and the gateway signs with it too until
-- rpc_secret_previous_until, so that requests to a process that has not yet
-- seen the new secret still verify. '' means none (a worker registered
-- before this migration gets a secret at its next heartbeat).
ALTER TABLE lightbus_worker
    ADD COLUMN instance_id               text        NOT NULL DEFAULT '',
    ADD COLUMN rpc_secret                text        NOT NULL DEFAULT '',
    ADD COLUMN rpc_secret_previous       text        NOT NULL DEFAULT '',
    ADD COLUMN rpc_secret_previous_until timestamptz;

-- +goose Down
ALTER TABLE lightbus_worker
    DROP COLUMN instance_id,
    DROP COLUMN rpc_secret,
    DROP COLUMN rpc_secret_previous,
    DROP COLUMN rpc_secret_previous_until;
DROP TABLE lightbus_api_owner;
