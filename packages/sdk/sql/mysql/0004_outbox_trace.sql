-- The W3C trace context a message was added in (the producer's active span), sent with the row
-- by the relay: the service's delivery spans continue the producer's trace, not the relay's.
-- (One statement: MySQL 8 has no ADD COLUMN IF NOT EXISTS; the ledger row, written after it,
-- keeps it from running twice.)
ALTER TABLE tidings_outbox ADD COLUMN traceparent varchar(256), ADD COLUMN tracestate varchar(512);
