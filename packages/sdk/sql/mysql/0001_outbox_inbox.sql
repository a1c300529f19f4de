-- Tidings SDK tables for MySQL 8 / MariaDB 10.6+ (SKIP LOCKED): the outbox and the inbox.
-- Applied by `migrate(db)` under GET_LOCK with a ledger row, or run by hand: every statement
-- is idempotent. Statements end with ";" at the end of a line. Times are DATETIME(6) in the
-- session time zone; the SDK compares them only with CURRENT_TIMESTAMP(6) inside the database.

-- One row per message added in a business transaction; the relay ships it to the service.
-- status: pending -> sent | failed (failed after max attempts or a permanent rejection).
CREATE TABLE IF NOT EXISTS tidings_outbox (
  seq             bigint NOT NULL AUTO_INCREMENT PRIMARY KEY,
  id              varchar(200) NOT NULL,
  topic           varchar(200) NOT NULL,
  tag             varchar(100) NULL,
  msg_key         varchar(200) NULL,
  payload         longtext NOT NULL,
  headers         longtext NOT NULL,
  deliver_at      datetime(6) NULL,
  status          varchar(10) NOT NULL DEFAULT 'pending',
  attempts        int NOT NULL DEFAULT 0,
  next_attempt_at datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  created_at      datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  sent_at         datetime(6) NULL,
  failed_at       datetime(6) NULL,
  last_error      text NULL,
  UNIQUE KEY tidings_outbox_id (id),
  KEY tidings_outbox_status_seq (status, seq),
  KEY tidings_outbox_status_sent (status, sent_at),
  CONSTRAINT tidings_outbox_status CHECK (status IN ('pending', 'sent', 'failed')),
  CONSTRAINT tidings_outbox_sent_at CHECK ((status = 'sent') = (sent_at IS NOT NULL)),
  CONSTRAINT tidings_outbox_failed_at CHECK ((status = 'failed') = (failed_at IS NOT NULL))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- One row per message a consumer received, written in the same transaction as its effect.
CREATE TABLE IF NOT EXISTS tidings_inbox (
  consumer      varchar(100) NOT NULL,
  id            varchar(200) NOT NULL,
  topic         varchar(200) NOT NULL,
  msg_key       varchar(200) NULL,
  payload       longtext NULL,
  status        varchar(10) NOT NULL,
  attempts      int NOT NULL DEFAULT 0,
  last_error    text NULL,
  first_seen_at datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  updated_at    datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  applied_at    datetime(6) NULL,
  PRIMARY KEY (consumer, id),
  KEY tidings_inbox_updated (updated_at),
  KEY tidings_inbox_status (status, updated_at),
  CONSTRAINT tidings_inbox_status CHECK (status IN ('received', 'applied', 'failed')),
  CONSTRAINT tidings_inbox_applied_at CHECK ((status = 'applied') = (applied_at IS NOT NULL))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
