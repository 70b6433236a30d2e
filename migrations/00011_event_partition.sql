-- +goose Up

-- Events partitioned by time. Event ids are UUIDv7: their first 48 bits are
-- the milliseconds since the Unix epoch, so a range of ids is a range of
-- time, and partitioning by RANGE (id) keeps id the whole primary key and
-- an id lookup on one partition. Retention drops whole partitions instead
-- of deleting rows (store/postgres/partition.go); the gateway creates the
-- partitions ahead of time (LIGHTBUS_EVENT_PARTITION wide), and a DEFAULT
-- partition takes any event outside them, so a fire is never refused for
-- want of a partition.
--
-- An existing table is not rewritten: it becomes the first partition,
-- lightbus_event_legacy, holding every id up to the next UTC midnight after
-- both now and its newest event. Attaching it reads it once to check that
-- bound; its indexes are the parent's indexes as they are.

-- Idempotency keys: one event per (api, key). A unique index on a
-- partitioned table must hold the partition key, which (api, key) does
-- not, so the keys live here, inserted by the statement that stores their
-- event (ON CONFLICT DO NOTHING: a fire whose key is taken stores nothing).
-- A key goes when its event is pruned, or when it outlived the idempotency
-- window and is used again. lightbus_event.idempotency_key still shows
-- each event's key.
CREATE TABLE lightbus_event_key (
    api      text NOT NULL,
    key      text NOT NULL,
    event_id uuid NOT NULL,
    PRIMARY KEY (api, key)
);
CREATE INDEX lightbus_event_key_event_id ON lightbus_event_key (event_id);
INSERT INTO lightbus_event_key (api, key, event_id)
SELECT api, idempotency_key, id FROM lightbus_event WHERE idempotency_key IS NOT NULL;
DROP INDEX lightbus_event_idempotency;

ALTER TABLE lightbus_event RENAME TO lightbus_event_legacy;
ALTER TABLE lightbus_event_legacy RENAME CONSTRAINT lightbus_event_pkey TO lightbus_event_legacy_pkey;
ALTER INDEX lightbus_event_api_name_id RENAME TO lightbus_event_legacy_api_name_id;
ALTER INDEX lightbus_event_created_at RENAME TO lightbus_event_legacy_created_at;
ALTER INDEX lightbus_event_xid_id RENAME TO lightbus_event_legacy_xid_id;
ALTER INDEX lightbus_event_params RENAME TO lightbus_event_legacy_params;

CREATE TABLE lightbus_event (
    LIKE lightbus_event_legacy INCLUDING DEFAULTS,
    PRIMARY KEY (id)
) PARTITION BY RANGE (id);
CREATE INDEX lightbus_event_api_name_id ON lightbus_event (api, name, id);
CREATE INDEX lightbus_event_created_at ON lightbus_event (created_at);
CREATE INDEX lightbus_event_xid_id ON lightbus_event (xid, id);
CREATE INDEX lightbus_event_params ON lightbus_event USING gin (lightbus_params_jsonb(params) jsonb_path_ops);

-- +goose StatementBegin
DO $$
DECLARE
    newest timestamptz;
    upper  timestamptz;
    ms     bigint;
    hex    text;
BEGIN
    SELECT to_timestamp(('x' || substr(replace(id::text, '-', ''), 1, 12))::bit(48)::bigint / 1000.0)
    INTO newest FROM lightbus_event_legacy ORDER BY id DESC LIMIT 1;
    upper := date_trunc('day', greatest(now(), newest) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + interval '1 day';
    ms := floor(extract(epoch FROM upper) * 1000)::bigint;
    hex := lpad(to_hex(ms), 12, '0');
    EXECUTE format('ALTER TABLE lightbus_event ATTACH PARTITION lightbus_event_legacy FOR VALUES FROM (MINVALUE) TO (%L)',
        substr(hex, 1, 8) || '-' || substr(hex, 9, 4) || '-0000-0000-000000000000');
END
$$;
-- +goose StatementEnd

CREATE TABLE lightbus_event_default PARTITION OF lightbus_event DEFAULT;

-- +goose Down
-- Every event back into one table: the legacy partition takes the rows of
-- the others.
ALTER TABLE lightbus_event DETACH PARTITION lightbus_event_legacy;
-- +goose StatementBegin
DO $$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'lightbus_event'::regclass LOOP
        EXECUTE format('INSERT INTO lightbus_event_legacy (id, api, name, params, idempotency_key, created_at, traceparent, tracestate, xid)
            SELECT id, api, name, params, idempotency_key, created_at, traceparent, tracestate, xid FROM %s', part);
    END LOOP;
END
$$;
-- +goose StatementEnd
DROP TABLE lightbus_event;
ALTER TABLE lightbus_event_legacy RENAME TO lightbus_event;
ALTER TABLE lightbus_event RENAME CONSTRAINT lightbus_event_legacy_pkey TO lightbus_event_pkey;
ALTER INDEX lightbus_event_legacy_api_name_id RENAME TO lightbus_event_api_name_id;
ALTER INDEX lightbus_event_legacy_created_at RENAME TO lightbus_event_created_at;
ALTER INDEX lightbus_event_legacy_xid_id RENAME TO lightbus_event_xid_id;
ALTER INDEX lightbus_event_legacy_params RENAME TO lightbus_event_params;
UPDATE lightbus_event e SET idempotency_key = NULL
WHERE e.idempotency_key IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM lightbus_event_key k WHERE k.event_id = e.id);
CREATE UNIQUE INDEX lightbus_event_idempotency ON lightbus_event (api, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
DROP TABLE lightbus_event_key;
