-- The producer reconciliation walks a topic's sent rows in the order they were marked sent,
-- (sent_at, seq), a page at a time from where the page before ended: this index starts each page
-- at its cursor, so a page costs the same however far the walk is (the sent_at index alone made
-- each page read every row of the window before its cursor).
CREATE INDEX IF NOT EXISTS tidings_outbox_sent_topic ON tidings_outbox (topic, sent_at, seq) WHERE status = 'sent';
