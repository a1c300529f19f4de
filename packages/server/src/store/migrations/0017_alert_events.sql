-- What happens to alerts, in order, for the notifications that tell people: one row per event of
-- an alert. Each row says everything a notification needs (what, about what, what to do next,
-- where in the console), so the notifier reads this table alone; each channel keeps its own
-- place in it.
create table alert_events (
  id bigint generated always as identity primary key,
  alert_id bigint not null references alerts (id) on delete cascade,
  event text not null check (event in ('opened', 'acknowledged', 'resolved')),
  -- The alert's condition, e.g. delivery_dead, message_in_doubt, circuit_open, pending_too_old.
  condition text not null,
  -- What it is about, as people name it, e.g. "subscription orders-webhook".
  subject text not null,
  -- One line: what happened, with counts.
  summary text not null,
  -- What to do next.
  next_step text not null,
  -- The console page to act on it, a path under the console (e.g. "#/subscriptions/orders-webhook").
  link text not null,
  at timestamptz not null default now()
);
