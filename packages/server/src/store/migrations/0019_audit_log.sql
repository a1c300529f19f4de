-- Tidings schema, version 19: the audit log. Append-only: never edit after it has landed.

-- Who changed what: every change to the configuration (apps, subscriptions, keys, operators) and
-- every hand action on messages, deliveries, alerts and subscriptions' deliveries, by the admin
-- key, an operator or an app's key. Configuration changes carry the object before and after as
-- the API shows it, secrets left out.
create table audit_log (
  id          bigint generated always as identity primary key,
  at          timestamptz not null default now(),
  actor_kind  text not null check (actor_kind in ('admin', 'operator', 'app')),
  -- The operator's or the app's name; `admin key` for the admin key.
  actor       text not null,
  -- The client's address, as TIDINGS_TRUST_PROXY lets the service believe it.
  address     text,
  -- What was done, `<object>.<verb>`: subscription.update, message.resend, alert.resolve, …
  action      text not null,
  -- What it was done to, `<object>/<name or id>`: subscription/billing, message/shop/m-1, …
  target      text,
  before      jsonb,
  after       jsonb,
  -- The request's options and the answer's counts (a hand action's outcome).
  detail      jsonb
);
create index audit_log_at on audit_log (at);
create index audit_log_actor on audit_log (actor, id);
create index audit_log_target on audit_log (target, id);
create index audit_log_action on audit_log (action, id);

-- Nobody edits or removes an entry: an update, a truncate or a delete is refused, except the
-- retention sweep's delete of entries older than the instant it names for its own transaction
-- (set_config('tidings.audit_sweep_before', <time>, true)).
create function audit_log_append_only() returns trigger language plpgsql as $$
begin
  if tg_op = 'DELETE' then
    if old.at < coalesce(nullif(current_setting('tidings.audit_sweep_before', true), ''), '-infinity')::timestamptz then
      return old;
    end if;
  end if;
  raise exception 'the audit log is append-only (% refused)', tg_op using errcode = 'insufficient_privilege';
end $$;
create trigger audit_log_append_only before update or delete on audit_log
  for each row execute function audit_log_append_only();
create trigger audit_log_no_truncate before truncate on audit_log
  for each statement execute function audit_log_append_only();
