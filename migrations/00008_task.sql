-- +goose Up

-- The scheduled tasks each worker declares (names; lightbus_task holds
-- their schedules and state). A task declared by a live worker of the
-- service can be led by that worker.
ALTER TABLE lightbus_worker
    ADD COLUMN tasks text[] NOT NULL DEFAULT '{}';

-- Scheduled tasks that run once per tick per service: (service, name), the
-- schedule the latest registration declared (kind 'every' or 'cron', spec),
-- the worker that leads it (runs its ticks) and the latest run it reported.
-- The leader's lease is its worker's lease: while leader_id names a live
-- worker of the service that still declares the task, no other worker gets
-- it; a deregistration clears leader_id at once (ON DELETE SET NULL).
-- last_tick is the scheduled time of the latest reported run; a new leader
-- skips ticks at or before it.
CREATE TABLE lightbus_task (
    service          text        NOT NULL,
    name             text        NOT NULL,
    kind             text        NOT NULL,
    spec             text        NOT NULL,
    leader_id        text        REFERENCES lightbus_worker (id) ON DELETE SET NULL,
    leader_since     timestamptz,
    last_tick        timestamptz,
    last_run_at      timestamptz,
    last_duration_ms bigint,
    last_error       text,
    last_worker_id   text,
    runs             bigint      NOT NULL DEFAULT 0,
    failures         bigint      NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, name)
);
CREATE INDEX lightbus_task_leader_id ON lightbus_task (leader_id);

-- +goose Down
DROP TABLE lightbus_task;
ALTER TABLE lightbus_worker
    DROP COLUMN tasks;
