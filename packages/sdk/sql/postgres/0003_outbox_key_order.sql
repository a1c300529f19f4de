-- The relay keeps the rows of one key in order: a row waits while an earlier pending row of its
-- key is not sent (held by another relay, or waiting for its retry). This index finds a key's
-- pending rows by seq; only pending rows with a key are in it.
CREATE INDEX IF NOT EXISTS tidings_outbox_key ON tidings_outbox (msg_key, seq) WHERE status = 'pending' AND msg_key IS NOT NULL;
