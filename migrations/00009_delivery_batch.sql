-- +goose Up

-- Delivery batches (River jobs of kind lightbus.delivery_batch, args
-- {service, listener, event_ids, max_attempts, timeout_ms}): the deliveries
-- of several events to one group, queued by one transaction. The events of
-- a batch, for the readers of one event's deliveries and for pruning
-- (args->'event_ids' @> '["<id>"]'):
CREATE INDEX river_job_lightbus_batch_event_ids ON river_job USING gin ((args -> 'event_ids') jsonb_path_ops)
    WHERE kind = 'lightbus.delivery_batch';

-- A group's batches by state, for its pending and in-flight counts and lag.
CREATE INDEX river_job_lightbus_batch_listener ON river_job ((args ->> 'service'), (args ->> 'listener'), state, id)
    WHERE kind = 'lightbus.delivery_batch';

-- +goose Down
DROP INDEX river_job_lightbus_batch_listener;
DROP INDEX river_job_lightbus_batch_event_ids;
