-- Tidings schema, version 1. Append-only: never edit after it has landed.

create type message_state as enum ('prepared', 'committed', 'rolled_back');
create type delivery_state as enum ('pending', 'delivered', 'dead');

create table apps (
  name        text primary key check (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
  key_hash    bytea not null unique,          -- sha256 of the API key; the key itself is shown once
  secret      text not null,                  -- whsec_… used to sign check-back calls to the app
  check_url   text,
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now()
);

create table subscriptions (
  id          bigint generated always as identity primary key,
  name        text not null unique check (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
  topic       text not null,
  tags        text[],                         -- null: every tag
  endpoint    jsonb not null,                 -- {type:'http', url, headers?}
  secret      text not null,                  -- whsec_… signing secret
  retry       jsonb not null,                 -- resolved policy: {schedule:[ms...], maxAttempts, windowMs|null}
  enabled     boolean not null default true,
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now()
);
create index subscriptions_topic on subscriptions (topic);

create table messages (
  seq          bigint generated always as identity,
  id           text primary key,
  app          text references apps (name) on delete set null,
  topic        text not null,
  tag          text,
  key          text,
  payload      jsonb not null,
  headers      jsonb not null default '{}',
  content_hash bytea not null,                -- sha256 of the canonical content: same id + other content = 409
  state        message_state not null,
  deliver_at   timestamptz not null default now(),
  created_at   timestamptz not null default now(),
  committed_at timestamptz,
  rolled_back_at timestamptz,
  constraint committed_at_iff_committed check ((state = 'committed') = (committed_at is not null)),
  constraint rolled_back_at_iff_rolled_back check ((state = 'rolled_back') = (rolled_back_at is not null))
);
create unique index messages_seq on messages (seq);
create index messages_key on messages (key, seq) where key is not null;
create index messages_topic on messages (topic, seq);
create index messages_app on messages (app, seq);

create table deliveries (
  id              bigint generated always as identity primary key,
  message_id      text not null references messages (id) on delete cascade,
  subscription_id bigint not null references subscriptions (id) on delete cascade,
  state           delivery_state not null default 'pending',
  attempts        integer not null default 0,
  retry_base      integer not null default 0, -- attempts made before the last manual re-send
  -- when the delivery is next due. A node that leases a delivery moves it to the lease's
  -- end, so "due" is the one condition the poller needs and a crashed node's lease expires.
  next_attempt_at timestamptz not null,
  lease_owner     text,
  first_attempt_at timestamptz,
  last_attempt_at timestamptz,
  last_status     integer,
  last_error      text,
  delivered_at    timestamptz,
  dead_at         timestamptz,
  dead_reason     text,
  created_at      timestamptz not null default now(),
  unique (message_id, subscription_id),
  constraint delivered_at_iff_delivered check ((state = 'delivered') = (delivered_at is not null)),
  constraint dead_at_iff_dead check ((state = 'dead') = (dead_at is not null))
);
-- Only pending rows are ever polled; the partial index stays small however large history grows.
create index deliveries_due on deliveries (next_attempt_at) where state = 'pending';
create index deliveries_dead on deliveries (subscription_id, id) where state = 'dead';
create index deliveries_subscription on deliveries (subscription_id, state);

create table attempts (
  id              bigint generated always as identity primary key,
  delivery_id     bigint not null references deliveries (id) on delete cascade,
  message_id      text not null,
  subscription_id bigint not null,
  attempt         integer not null,
  started_at      timestamptz not null,
  latency_ms      integer not null,
  status_code     integer,
  error           text,
  outcome         text not null check (outcome in ('delivered', 'failed', 'dead'))
);
create index attempts_message on attempts (message_id, id);
create index attempts_delivery on attempts (delivery_id);
