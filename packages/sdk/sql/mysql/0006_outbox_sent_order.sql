-- The producer reconciliation walks a topic's sent rows in the order they were marked sent,
-- (sent_at, seq), a page at a time from where the page before ended: this index starts each page
-- at its cursor, so a page costs the same however far the walk is. (MySQL 8 has no CREATE INDEX
-- IF NOT EXISTS: the ledger row, written after it, is what keeps it from running twice.)
CREATE INDEX tidings_outbox_sent_topic ON tidings_outbox (status, topic, sent_at, seq);
