-- Tidings schema, version 18: named operators with roles. Append-only: never edit after it has
-- landed.

-- People who run the service, each with a key of their own (only its sha256 is kept, as for
-- apps) and a role: viewer reads everything; operator also acts on messages, alerts and
-- re-send jobs; admin also changes the configuration (apps, subscriptions, keys, operators).
create table operators (
  id          bigint generated always as identity primary key,
  name        text not null unique check (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
  role        text not null check (role in ('viewer', 'operator', 'admin')),
  key_hash    bytea not null unique,
  created_at  timestamptz not null default now(),
  updated_at  timestamptz not null default now()
);

-- A console session says whose it is: null for the admin key, else the operator (whose role is
-- read at each request, so a change of role applies at once). Deleting an operator ends their
-- sessions; rotating their key deletes them explicitly.
alter table console_sessions add column operator_id bigint references operators (id) on delete cascade;
create index console_sessions_operator on console_sessions (operator_id) where operator_id is not null;
