-- Tidings SDK tables for transactional messages on MySQL 8 / MariaDB 10.6+ (`tidings.transaction()`
-- and the check-back handler). Applied by `migrate(db)`, or run by hand: every statement is
-- idempotent. Ids compare byte for byte (utf8mb4_bin): "A" and "a" are two messages.

-- One row per message `transaction()` is about to prepare, committed on its own *before* the
-- prepare: the check-back handler answers only for messages it finds here (any other id is an
-- unknown message: 404, nothing written), so a check sent to the wrong database changes nothing.
CREATE TABLE IF NOT EXISTS tidings_tx_intent (
  id         varchar(200) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
  topic      varchar(200) NOT NULL,
  msg_key    varchar(200) NULL,
  created_at datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY tidings_tx_intent_created (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- The barrier: at most one row per message id, never updated. 'commit' is inserted first thing
-- in the producer's local transaction and exists exactly when that transaction committed;
-- 'rollback' is inserted (ON DUPLICATE KEY UPDATE id = id) by a check-back that found none: the
-- insert waits on the record lock of an uncommitted 'commit' row, and a late local insert fails
-- with ER_DUP_ENTRY. The primary key is the whole mechanism.
CREATE TABLE IF NOT EXISTS tidings_tx_barrier (
  id         varchar(200) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
  outcome    varchar(8) NOT NULL,
  created_at datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  KEY tidings_tx_barrier_created (created_at),
  CONSTRAINT tidings_tx_barrier_outcome CHECK (outcome IN ('commit', 'rollback'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
