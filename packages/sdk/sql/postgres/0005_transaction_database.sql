-- This database's identity, sent by `transaction()` with each prepare (`checkContext`) and sent
-- back by the service in the message's check-backs: the check-back handler answers for a message
-- of its own database (and decides it), and refuses one of another database (404, nothing
-- written), without an intent row per transaction. One row: the constant key `one` keeps a
-- second migrate, or two at once, from adding another.
CREATE TABLE IF NOT EXISTS tidings_tx_database (
  one        smallint PRIMARY KEY DEFAULT 1,
  id         text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT tidings_tx_database_one CHECK (one = 1)
);
INSERT INTO tidings_tx_database (one, id) VALUES (1, gen_random_uuid()::text) ON CONFLICT (one) DO NOTHING;
