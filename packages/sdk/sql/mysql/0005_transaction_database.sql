-- This database's identity, sent by `transaction()` with each prepare (`checkContext`) and sent
-- back by the service in the message's check-backs: the check-back handler answers for a message
-- of its own database (and decides it), and refuses one of another database (404, nothing
-- written), without an intent row per transaction. One row: the constant key `one` keeps a
-- second migrate, or two at once, from adding another.
CREATE TABLE IF NOT EXISTS tidings_tx_database (
  one        tinyint NOT NULL DEFAULT 1 PRIMARY KEY,
  id         varchar(64) NOT NULL,
  created_at datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  CONSTRAINT tidings_tx_database_one CHECK (one = 1)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO tidings_tx_database (one, id) VALUES (1, UUID()) ON DUPLICATE KEY UPDATE one = one;
