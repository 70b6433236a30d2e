-- +goose Up

-- xid is the transaction that stored the event. The live stream reads events
-- in (xid, id) order and only below the oldest transaction still running
-- (pg_snapshot_xmin of the current snapshot): every transaction there has
-- committed or rolled back, so no event can later appear behind a stream's
-- position, whatever order concurrent fires commit in. Every insert path
-- (INSERT, group commit, COPY) gets it from the default. Existing events
-- take the xid of this migration.
ALTER TABLE lightbus_event ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX lightbus_event_xid_id ON lightbus_event (xid, id);

-- The parameters as jsonb, for where conditions, or NULL for the few JSON
-- texts jsonb cannot hold (an escaped NUL, a lone surrogate escape), which
-- params keeps as sent: a bare params::jsonb would refuse such a fire (in
-- the index) and fail every listing that reads one. The exception block
-- is a subtransaction that writes nothing, so it takes no xid; it makes
-- the function parallel unsafe (a query using it runs in one process).
-- +goose StatementBegin
CREATE FUNCTION lightbus_params_jsonb(p json) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL UNSAFE AS $$
BEGIN
    RETURN p::jsonb;
EXCEPTION WHEN data_exception THEN
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- Where conditions on parameters: containment (@>) on the parameters as
-- jsonb narrows equality tests through this index before the exact test.
CREATE INDEX lightbus_event_params ON lightbus_event USING gin (lightbus_params_jsonb(params) jsonb_path_ops);

-- +goose Down
DROP INDEX IF EXISTS lightbus_event_params;
DROP FUNCTION IF EXISTS lightbus_params_jsonb(json);
DROP INDEX IF EXISTS lightbus_event_xid_id;
ALTER TABLE lightbus_event DROP COLUMN xid;
