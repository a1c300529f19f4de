-- The relay keeps the rows of one key in order: a row waits while an earlier pending row of its
-- key is not sent (held by another relay, or waiting for its retry). This index finds a key's
-- pending rows by seq. (MySQL 8 has no CREATE INDEX IF NOT EXISTS: the ledger row, written after
-- it, is what keeps it from running twice.)
CREATE INDEX tidings_outbox_key ON tidings_outbox (msg_key, status, seq);
