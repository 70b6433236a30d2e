-- +goose Up

-- Ordered listener groups (policy "ordered"): their deliveries are made one
-- at a time in commit order, by one River job per group (kind
-- lightbus.ordered) that walks the event log instead of a job per event.
ALTER TABLE lightbus_listener ADD COLUMN ordered boolean NOT NULL DEFAULT false;

-- An ordered group's position in the event log, in the live stream's order
-- (xid, id) (migration 00007): every event after it that the group
-- subscribes to is still owed to the group. start is where the group began
-- (or its latest replay): events between start and the position were
-- delivered. blocked_job is the delivery job of an event whose first
-- attempt failed: it holds back the events after it until it is finished
-- (delivered, dead or cancelled). epoch counts the moves of the position
-- that did not come from the group's job (a replay): the job's own moves
-- apply only to the position it read.
CREATE TABLE lightbus_ordered (
    service     text        NOT NULL,
    listener    text        NOT NULL,
    pos_xid     xid8        NOT NULL,
    pos_id      uuid        NOT NULL,
    start_xid   xid8        NOT NULL,
    start_id    uuid        NOT NULL,
    blocked_job bigint,
    epoch       bigint      NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, listener),
    FOREIGN KEY (service, listener) REFERENCES lightbus_listener (service, name) ON DELETE CASCADE
);

-- An ordered group's job, for the fires that wake it.
CREATE INDEX river_job_lightbus_ordered ON river_job ((args ->> 'service'), (args ->> 'listener'), state)
    WHERE kind = 'lightbus.ordered';

-- +goose Down
DROP INDEX IF EXISTS river_job_lightbus_ordered;
DROP TABLE lightbus_ordered;
ALTER TABLE lightbus_listener DROP COLUMN ordered;
