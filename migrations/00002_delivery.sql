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

-- Replays: re-queuing a group's deliveries from a point in the event log.
-- A River job (lightbus.replay) pages through events by id from cursor and
-- records its progress here. from_id / since bound where it starts (NULL:
-- the earliest retained event); until bounds where it stops. With redeliver,
-- events whose earlier delivery finished are delivered again.
CREATE TABLE lightbus_replay (
    id          bigserial   PRIMARY KEY,
    service     text        NOT NULL,
    listener    text        NOT NULL,
    from_id     uuid,
    since       timestamptz,
    until       timestamptz NOT NULL,
    redeliver   boolean     NOT NULL,
    cursor      uuid,
    queued      bigint      NOT NULL DEFAULT 0,
    state       text        NOT NULL DEFAULT 'running',
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    FOREIGN KEY (service, listener) REFERENCES lightbus_listener (service, name) ON DELETE CASCADE
);
CREATE INDEX lightbus_replay_group ON lightbus_replay (service, listener, id);

-- +goose Down
DROP TABLE lightbus_replay;
DROP INDEX IF EXISTS river_job_lightbus_listener;
DROP INDEX IF EXISTS lightbus_event_idempotency;
ALTER TABLE lightbus_listener
    DROP COLUMN backoff_base_ms,
    DROP COLUMN backoff_max_ms,
    DROP COLUMN timeout_ms,
    DROP COLUMN max_in_flight;
