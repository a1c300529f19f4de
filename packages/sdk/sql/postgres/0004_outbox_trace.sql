-- The W3C trace context a message was added in (the producer's active span), sent with the row
-- by the relay: the service's delivery spans continue the producer's trace, not the relay's.
ALTER TABLE tidings_outbox ADD COLUMN IF NOT EXISTS traceparent varchar(256), ADD COLUMN IF NOT EXISTS tracestate varchar(512);
