-- Tidings SDK tables for transactional messages on PostgreSQL (`tidings.transaction()` and the
-- check-back handler). Applied by `migrate(db)`, or run by hand: every statement is idempotent.

-- One row per message `transaction()` is about to prepare, committed on its own *before* the
-- prepare: the check-back handler answers only for messages it finds here (any other id is an
-- unknown message: 404, nothing written), so a check sent to the wrong database changes nothing.
CREATE TABLE IF NOT EXISTS tidings_tx_intent (
  id         varchar(200) PRIMARY KEY,
  topic      varchar(200) NOT NULL,
  msg_key    varchar(200),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS tidings_tx_intent_created ON tidings_tx_intent (created_at);

-- The barrier: at most one row per message id, never updated. 'commit' is inserted first thing
-- in the producer's local transaction and exists exactly when that transaction committed;
-- 'rollback' is inserted (ON CONFLICT DO NOTHING) by a check-back that found none, and makes a
-- late local commit fail with a unique violation. The primary key is the whole mechanism.
CREATE TABLE IF NOT EXISTS tidings_tx_barrier (
  id         varchar(200) PRIMARY KEY,
  outcome    varchar(8) NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT tidings_tx_barrier_outcome CHECK (outcome IN ('commit', 'rollback'))
);
CREATE INDEX IF NOT EXISTS tidings_tx_barrier_created ON tidings_tx_barrier (created_at);
