-- Reconciliation runs' reports (POST /v1/reconciliations): a consumer compared the service's
-- committed messages of a window with its inbox, or a producer its outbox with the service, and
-- says what it found and what it repaired. Shown in the console's Reconciliation page; kept 90
-- days (pruned as reports arrive).
create table reconciliations (
  id                  bigint generated always as identity primary key,
  -- The app whose key sent the report; null when a person (the admin key, an operator) did.
  app                 text,
  kind                text not null check (kind in ('consumer', 'producer')),
  subscription        text,
  topic               text,
  reporter            text not null check (reporter ~ '^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$'),
  window_since        timestamptz not null,
  window_until        timestamptz not null,
  started_at          timestamptz not null,
  finished_at         timestamptz not null,
  checked             bigint not null check (checked >= 0),
  missing             bigint not null check (missing >= 0),
  repaired            bigint not null check (repaired >= 0),
  failed              bigint not null check (failed >= 0),
  -- [{id, problem, action, error}], up to 1000; differences_omitted counts those left out.
  differences         jsonb not null check (jsonb_typeof(differences) = 'array'),
  differences_omitted bigint not null default 0 check (differences_omitted >= 0),
  received_at         timestamptz not null default now(),
  check (subscription is not null or topic is not null),
  check (window_since <= window_until),
  check (started_at <= finished_at)
);
create index reconciliations_by_subscription on reconciliations (subscription, id) where subscription is not null;
create index reconciliations_by_topic on reconciliations (topic, id) where topic is not null;
create index reconciliations_received on reconciliations (received_at);
