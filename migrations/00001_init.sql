-- +goose Up

-- Every fired event. The id is a UUIDv7, so ids sort by creation time. params
-- is json (not jsonb) so the bytes a caller sent are kept exactly as sent and
-- delivered as is.
CREATE TABLE lightbus_event (
    id              uuid        PRIMARY KEY,
    api             text        NOT NULL,
    name            text        NOT NULL,
    params          json        NOT NULL,
    idempotency_key text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX lightbus_event_api_name_id ON lightbus_event (api, name, id);
CREATE INDEX lightbus_event_created_at ON lightbus_event (created_at);

-- Registered worker processes. A worker is live while expires_at is in the
-- future; heartbeats move it forward.
CREATE TABLE lightbus_worker (
    id            text        PRIMARY KEY,
    service       text        NOT NULL,
    base_url      text        NOT NULL,
    apis          text[]      NOT NULL DEFAULT '{}',
    listeners     text[]      NOT NULL DEFAULT '{}',
    lease_ttl_ms  integer     NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX lightbus_worker_apis ON lightbus_worker USING gin (apis);
CREATE INDEX lightbus_worker_expires_at ON lightbus_worker (expires_at);

-- APIs and the service that owns each. definition holds the declared events
-- and RPCs (with their per-RPC timeouts); it outlives the workers.
CREATE TABLE lightbus_api (
    name       text        PRIMARY KEY,
    service    text        NOT NULL,
    definition jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Listener groups: (service, name). Every group receives every matching event.
CREATE TABLE lightbus_listener (
    service      text        NOT NULL,
    name         text        NOT NULL,
    secret       text        NOT NULL,
    max_attempts integer     NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, name)
);

-- What each group is subscribed to: event '*' stands for every event of the API.
CREATE TABLE lightbus_subscription (
    api      text NOT NULL,
    event    text NOT NULL,
    service  text NOT NULL,
    listener text NOT NULL,
    PRIMARY KEY (api, event, service, listener),
    FOREIGN KEY (service, listener) REFERENCES lightbus_listener (service, name) ON DELETE CASCADE
);

-- Where a group's deliveries can go: one row per worker serving the group.
CREATE TABLE lightbus_endpoint (
    service   text NOT NULL,
    listener  text NOT NULL,
    worker_id text NOT NULL REFERENCES lightbus_worker (id) ON DELETE CASCADE,
    path      text NOT NULL,
    PRIMARY KEY (service, listener, worker_id),
    FOREIGN KEY (service, listener) REFERENCES lightbus_listener (service, name) ON DELETE CASCADE
);
CREATE INDEX lightbus_endpoint_worker_id ON lightbus_endpoint (worker_id);

-- Deliveries are River jobs; this finds an event's deliveries without a scan.
CREATE INDEX river_job_lightbus_event_id ON river_job ((args ->> 'event_id'))
    WHERE kind = 'lightbus.delivery';

-- +goose Down
DROP INDEX IF EXISTS river_job_lightbus_event_id;
DROP TABLE lightbus_endpoint;
DROP TABLE lightbus_subscription;
DROP TABLE lightbus_listener;
DROP TABLE lightbus_api;
DROP TABLE lightbus_worker;
DROP TABLE lightbus_event;
