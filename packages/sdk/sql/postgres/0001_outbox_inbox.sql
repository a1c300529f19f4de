-- Tidings SDK tables for PostgreSQL: the outbox (producer side) and the inbox (consumer side).
-- Applied by `migrate(db)` under an advisory lock with a ledger row, or run by hand: every
-- statement is idempotent. Statements end with ";" at the end of a line.

-- One row per message added in a business transaction; the relay ships it to the service.
-- status: pending -> sent | failed (failed after max attempts or a permanent rejection).
CREATE TABLE IF NOT EXISTS tidings_outbox (
  seq             bigserial PRIMARY KEY,
  id              varchar(200) NOT NULL UNIQUE,
  topic           varchar(200) NOT NULL,
  tag             varchar(100),
  msg_key         varchar(200),
  payload         jsonb NOT NULL,
  headers         jsonb NOT NULL DEFAULT '{}',
  deliver_at      timestamptz,
  status          varchar(10) NOT NULL DEFAULT 'pending',
  attempts        integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  created_at      timestamptz NOT NULL DEFAULT now(),
  sent_at         timestamptz,
  failed_at       timestamptz,
  last_error      text,
  CONSTRAINT tidings_outbox_status CHECK (status IN ('pending', 'sent', 'failed')),
  CONSTRAINT tidings_outbox_sent_at CHECK ((status = 'sent') = (sent_at IS NOT NULL)),
  CONSTRAINT tidings_outbox_failed_at CHECK ((status = 'failed') = (failed_at IS NOT NULL))
);
-- Due work only: the relay's claim and the failed list stay small however many rows were sent.
CREATE INDEX IF NOT EXISTS tidings_outbox_pending ON tidings_outbox (seq) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS tidings_outbox_failed ON tidings_outbox (seq) WHERE status = 'failed';
CREATE INDEX IF NOT EXISTS tidings_outbox_sent ON tidings_outbox (sent_at) WHERE status = 'sent';

-- One row per message a consumer received, written in the same transaction as its effect.
-- status: applied (committed with the business change) | failed (the handler threw; retried).
-- 'received' exists only inside a handling transaction, never committed.
CREATE TABLE IF NOT EXISTS tidings_inbox (
  consumer      varchar(100) NOT NULL,
  id            varchar(200) NOT NULL,
  topic         varchar(200) NOT NULL,
  msg_key       varchar(200),
  payload       jsonb,
  status        varchar(10) NOT NULL,
  attempts      integer NOT NULL DEFAULT 0,
  last_error    text,
  first_seen_at timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  applied_at    timestamptz,
  PRIMARY KEY (consumer, id),
  CONSTRAINT tidings_inbox_status CHECK (status IN ('received', 'applied', 'failed')),
  CONSTRAINT tidings_inbox_applied_at CHECK ((status = 'applied') = (applied_at IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS tidings_inbox_updated ON tidings_inbox (updated_at);
CREATE INDEX IF NOT EXISTS tidings_inbox_failed ON tidings_inbox (updated_at) WHERE status = 'failed';
