-- The transaction that wrote each alert event, for reading them in commit-safe order: event ids
-- are handed out when rows are inserted, not when they commit, so an event of a slower
-- transaction can appear below one already read. Events are read in (tx, id) order and only
-- those of transactions older than every one still running (pg_snapshot_xmin): nothing can
-- appear before what a channel has read, and no event is skipped.
alter table alert_events add column tx xid8 not null default pg_current_xact_id();
create index alert_events_in_order on alert_events (tx, id);

-- Notification channels: where people are told about alerts (a signed webhook, a Slack-compatible
-- incoming webhook, email over SMTP). Each channel reads alert_events from its own place
-- (`cursor`) and sends what is waiting as one notification, a digest when there are several.
create table notification_channels (
  id bigint generated always as identity primary key,
  name text not null unique,
  type text not null check (type in ('webhook', 'slack', 'email')),
  -- The type's settings, secrets apart: {url} for webhook and slack (a Slack URL's path is its
  -- token, so the whole URL is kept in `secret` instead and `settings.url` is null), or
  -- {host, port, tls, username, from, to} for email.
  settings jsonb not null,
  -- The webhook's signing secret, the Slack URL, or the SMTP password (null: none).
  secret text,
  -- Only alert events of these conditions / of these events (null: all).
  conditions text[],
  events text[],
  -- Notifications sent (or tried) per minute at most; events waiting meanwhile go in the next digest.
  per_minute integer not null check (per_minute between 1 and 600),
  -- After a failed notification, the wait before the next try (ms), the last step repeating.
  retry_schedule integer[] not null check (cardinality(retry_schedule) between 1 and 20),
  enabled boolean not null default true,
  -- The last alert event this channel told of (or passed over by its filter), as (tx, id). A
  -- new channel starts after the events of finished transactions: it tells of what happens
  -- from then on.
  cursor_tx xid8 not null,
  cursor bigint not null,
  -- The node sending for it now (a token per claim) and until when: one sender at a time
  -- across all processes; a dead node's lease runs out and another takes the channel.
  lease_owner text,
  lease_until timestamptz,
  -- Not before this: the retry schedule's next step after a failure, or the rate limit's next slot.
  not_before timestamptz not null default now(),
  failures integer not null default 0,
  last_error text,
  last_error_at timestamptz,
  last_sent_at timestamptz,
  sent bigint not null default 0,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  check ((lease_owner is null) = (lease_until is null))
);

-- Every notification a channel sent or tried: the rate limit counts those of the last minute,
-- and the API shows the last few. Kept a day.
create table channel_notifications (
  id bigint generated always as identity primary key,
  channel_id bigint not null references notification_channels (id) on delete cascade,
  at timestamptz not null default now(),
  events integer not null,
  first_event bigint,
  last_event bigint,
  ok boolean not null,
  error text
);
create index channel_notifications_by_channel on channel_notifications (channel_id, at);
