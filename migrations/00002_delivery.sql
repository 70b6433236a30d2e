-- +goose Up

-- Each listener group's delivery policy (max_attempts is in 00001). Zero
-- means the gateway's configured default.
ALTER TABLE lightbus_listener
    ADD COLUMN backoff_base_ms integer NOT NULL DEFAULT 0,
    ADD COLUMN backoff_max_ms  integer NOT NULL DEFAULT 0,
    ADD COLUMN timeout_ms      integer NOT NULL DEFAULT 0,
    ADD COLUMN max_in_flight   integer NOT NULL DEFAULT 0;

-- Idempotent fires: one event per (api, key). A key older than the
-- idempotency window is released (set to NULL) when it is used again.
CREATE UNIQUE INDEX lightbus_event_idempotency ON lightbus_event (api, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- A group's deliveries by state, for dead-letter listings and group status.
CREATE INDEX river_job_lightbus_listener ON river_job ((args ->> 'service'), (args ->> 'listener'), state, id)
    WHERE kind = 'lightbus.delivery';

-- +goose Down
DROP INDEX IF EXISTS river_job_lightbus_listener;
DROP INDEX IF EXISTS lightbus_event_idempotency;
ALTER TABLE lightbus_listener
    DROP COLUMN backoff_base_ms,
    DROP COLUMN backoff_max_ms,
    DROP COLUMN timeout_ms,
    DROP COLUMN max_in_flight;
