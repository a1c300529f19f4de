-- Tidings schema, version 3: what the console needs. Append-only: never edit after it has landed.

-- Console sign-in sessions, kept here so that every service process behind a load balancer
-- knows them. The cookie holds a random id; only its sha256 is stored, so a copy of this
-- table does not let anyone in.
create table console_sessions (
  id_hash     bytea primary key,
  csrf_token  text not null,                  -- required in x-csrf-token on every state-changing call
  created_at  timestamptz not null default now(),
  expires_at  timestamptz not null
);
create index console_sessions_expires on console_sessions (expires_at);

-- Background jobs with progress (today: re-send a subscription's dead deliveries in batches).
-- A job is run by the node that accepted it; `heartbeat_at` moves with each batch, and a job
-- whose heartbeat is stale (its node died) is adopted by another node and carried on.
create type job_state as enum ('running', 'succeeded', 'failed');
create table jobs (
  id              text primary key,           -- uuidv7
  kind            text not null check (kind in ('resend_dead')),
  subscription_id bigint not null references subscriptions (id) on delete cascade,
  state           job_state not null default 'running',
  total           integer not null check (total >= 0),
  done            integer not null default 0,
  batches         integer not null default 0,
  batch_size      integer not null check (batch_size > 0),
  owner           text,                       -- node id running it
  heartbeat_at    timestamptz not null default now(),
  error           text,
  created_at      timestamptz not null default now(),
  finished_at     timestamptz,
  constraint done_within_total check (done >= 0 and done <= total),
  constraint finished_at_iff_finished check ((state = 'running') = (finished_at is null))
);
create index jobs_running on jobs (heartbeat_at) where state = 'running';
create index jobs_subscription on jobs (subscription_id, created_at);

-- Overview statistics without scanning history.
-- Per-minute throughput reads the last hour by time. A btree, not BRIN: retention deletes
-- old rows in batches and new rows reuse the freed pages, so BRIN ranges would soon span
-- old and new times and the "last hour" would read the whole table. The price is one more
-- index entry per message and per attempt.
create index messages_created on messages (created_at);
create index attempts_started on attempts (started_at);
-- Counts of the rare message states (prepared, rolled back, later ones) by index; the
-- common one (committed) is counted up to a cap.
create index messages_not_committed on messages (state) where state <> 'committed';
-- The oldest pending delivery, and lists of pending or dead deliveries newest first, from
-- small partial indexes (only the rows in that state are in them).
create index deliveries_pending_id on deliveries (id) where state = 'pending';
create index deliveries_dead_id on deliveries (id) where state = 'dead';
