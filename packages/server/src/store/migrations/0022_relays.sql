-- Outbox relays report what they hold (a heartbeat every 10 s by default): one row per app and
-- relay name, replaced by each heartbeat. A relay whose last heartbeat is older than
-- TIDINGS_RELAY_STALE_AFTER has stopped reporting; one that stopped on purpose says so
-- (stopped_at) and is not awaited. app is '' for a relay that ships the admin's own messages.
create table relays (
  app                    text not null check (app = '' or app ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
  name                   text not null check (name ~ '^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$'),
  -- Rows waiting in its outbox, rows it gave up on (the counts are capped by the relay).
  pending                bigint not null check (pending >= 0),
  failed                 bigint not null check (failed >= 0),
  -- How long the oldest waiting row has waited, as the relay measured it; null when none waits.
  oldest_pending_seconds double precision check (oldest_pending_seconds >= 0),
  -- When this relay last shipped a batch (since it started); null when it has not yet.
  last_sent_at           timestamptz,
  -- The interval the relay said it reports at.
  interval_ms            integer not null check (interval_ms > 0),
  first_seen_at          timestamptz not null default now(),
  last_seen_at           timestamptz not null default now(),
  stopped_at             timestamptz,
  primary key (app, name)
);

-- The scrape's questions are each answered from a small index rather than the table (open
-- alerts per condition from alerts_one_open, 0020). Each subscription's oldest pending delivery
-- is one index probe per subscription: the index of deliveries by subscription and state gains
-- the id (with deliveries_pending_id alone, a
-- subscription with nothing pending read every other one's pending entries: with 200,000 of
-- 1,000,000 deliveries pending a scrape took 290 ms). Replaced rather than added beside it: every
-- delivery written would otherwise update one more index.
drop index deliveries_subscription;
create index deliveries_subscription on deliveries (subscription_id, state, id);
