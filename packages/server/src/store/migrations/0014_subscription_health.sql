-- Endpoint health per subscription: a circuit breaker whose state all service processes share.
-- circuit: the subscription's breaker policy, {failures, probeEveryMs, pauseAfterMs} (pauseAfterMs
-- null: never paused automatically); null turns the breaker off.
alter table subscriptions
  add column circuit jsonb default '{"failures": 20, "probeEveryMs": 30000, "pauseAfterMs": 259200000}';

-- One row per subscription that has had a failure (or a Retry-After): absent means closed.
-- closed: deliveries go as usual; open: nothing is claimed or pushed, one probe goes out each
-- probeEvery (next_probe_at, taken with a conditional update: one across all nodes);
-- half_open: a probe is in flight (next_probe_at is then its deadline, after which another may go).
-- throttled_until: a receiver's 429 Retry-After: no delivery of the subscription starts before it.
create table subscription_health (
  subscription_id      bigint primary key references subscriptions (id) on delete cascade,
  state                text not null default 'closed' check (state in ('closed', 'open', 'half_open')),
  consecutive_failures integer not null default 0,
  opened_at            timestamptz,
  next_probe_at        timestamptz,
  closed_at            timestamptz,
  opens                integer not null default 0,
  throttled_until      timestamptz,
  updated_at           timestamptz not null default now(),
  check ((state = 'closed') = (opened_at is null)),
  check ((state = 'closed') = (next_probe_at is null))
);

-- The breaker's recent history, for the API and the console's timeline.
create table subscription_health_events (
  id              bigint generated always as identity primary key,
  subscription_id bigint not null references subscriptions (id) on delete cascade,
  event           text not null check (event in ('opened', 'closed', 'auto_paused', 'reset')),
  at              timestamptz not null default now(),
  detail          text not null
);
create index subscription_health_events_sub on subscription_health_events (subscription_id, id);

-- Alerts about a subscription rather than a message.
alter table alerts alter column message_id drop not null;
alter type alert_kind add value 'circuit_open';
alter type alert_kind add value 'circuit_closed';
alter type alert_kind add value 'subscription_auto_paused';

-- Limits across all service processes. rate_limit: attempts per second (null: none), taken from a
-- token bucket in subscription_health (tokens, as of tokens_at) by the claims of every node.
-- maxInFlight is held by counting the subscription's leased deliveries under the health row's lock.
alter table subscriptions add column rate_limit double precision check (rate_limit > 0);
alter table subscription_health
  add column tokens double precision,
  add column tokens_at timestamptz;
create index deliveries_leased on deliveries (subscription_id) where state = 'pending' and lease_owner is not null;
