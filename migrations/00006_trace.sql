-- +goose Up

-- The W3C trace context an event was fired in (the traceparent and
-- tracestate header values of the gateway's fire span, or of the caller's
-- when the gateway exports no traces), sent on each of its deliveries so
-- that listeners continue the caller's trace. NULL: fired without one.
-- Adding nullable columns without defaults rewrites nothing.
ALTER TABLE lightbus_event
    ADD COLUMN traceparent text,
    ADD COLUMN tracestate  text;

-- +goose Down
ALTER TABLE lightbus_event
    DROP COLUMN traceparent,
    DROP COLUMN tracestate;
