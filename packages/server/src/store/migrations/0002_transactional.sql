-- Transactional (half) messages: check-back of prepared messages, and alerts for people.

alter table messages
  add column next_check_at  timestamptz,        -- prepared only: when to ask the producer next
  add column checks         integer not null default 0,
  add column check_owner    text,               -- the node holding the check lease
  add column in_doubt_at    timestamptz,        -- when checks ran out; kept as history after a hand commit/rollback
  add constraint check_only_when_prepared check (next_check_at is null or state = 'prepared');

-- Only prepared messages not yet in doubt are ever due for a check.
create index messages_check_due on messages (next_check_at) where state = 'prepared' and in_doubt_at is null;
create index messages_in_doubt on messages (seq) where state = 'prepared' and in_doubt_at is not null;

-- Every check-back call, like the delivery log.
create table checks (
  id          bigint generated always as identity primary key,
  message_id  text not null references messages (id) on delete cascade,
  check_no    integer not null,
  started_at  timestamptz not null,
  latency_ms  integer not null,
  status_code integer,
  answer      text check (answer in ('commit', 'rollback', 'unknown')),
  error       text
);
create index checks_message on checks (message_id, id);

create type alert_kind as enum ('delivery_dead', 'message_in_doubt');

-- Things a person should look at: dead deliveries and messages in doubt.
create table alerts (
  id              bigint generated always as identity primary key,
  kind            alert_kind not null,
  message_id      text not null references messages (id) on delete cascade,
  subscription_id bigint references subscriptions (id) on delete cascade,
  detail          text not null,
  created_at      timestamptz not null default now(),
  resolved_at     timestamptz
);
create index alerts_open on alerts (id) where resolved_at is null;
