-- Ordered delivery by key. A subscription with ordering 'key' delivers the messages of one key
-- one at a time, in the order of their place (order_at, then id); on_dead says whether a dead
-- delivery holds its key ('block') or lets the next go ('skip').
alter table subscriptions
  add column ordering text not null default 'none' check (ordering in ('none', 'key')),
  add column on_dead text not null default 'block' check (on_dead in ('block', 'skip'));

-- Set only on deliveries of an ordered subscription whose message has a key (null: not ordered):
-- order_key is the message's key, order_at the delivery's place in its key (when the message
-- became deliverable: accepted or committed, or its deliver_at if later).
-- parked: due, but behind an earlier delivery of its key; its due time was moved ahead so that
-- claims do not read it again and again. unblock: this delivery stopped holding its key (delivered,
-- dead, skipped); the next claim wakes the delivery behind it. skipped_at: a dead delivery an
-- operator let its key go past.
alter table deliveries
  add column order_key text,
  add column order_at timestamptz,
  add column parked boolean not null default false,
  add column unblock boolean not null default false,
  add column skipped_at timestamptz;

-- What a keyed delivery waits for: an earlier delivery of its key still pending, or dead and not
-- skipped. Only ordered deliveries not yet finished are in it.
create index deliveries_key_order on deliveries (subscription_id, order_key, order_at, id)
  where order_key is not null and (state = 'pending' or (state = 'dead' and skipped_at is null));
-- The key's delivery in flight (leased), whatever its place: at most one at a time.
create index deliveries_key_leased on deliveries (subscription_id, order_key)
  where order_key is not null and state = 'pending' and lease_owner is not null;
create index deliveries_unblock on deliveries (id) where unblock;

alter type alert_kind add value 'key_blocked';
