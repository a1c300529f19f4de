-- One index of leased deliveries serves both questions asked of them: how many a subscription has
-- leased (maxInFlight, by its first column) and whether a key has one in flight (ordering, by
-- both). Two indexes answered them before: each lease and each result wrote both, and the planner,
-- its statistics taken while nothing was leased, probed keys through the one without the key,
-- reading every leased delivery of the subscription for each candidate of a claim.
create index deliveries_leased_by_key on deliveries (subscription_id, order_key) where state = 'pending' and lease_owner is not null;
drop index deliveries_leased;
drop index deliveries_key_leased;

-- Keys whose delivery stopped holding them (delivered, dead with onDead "skip", skipped, its
-- subscription's onDead turned to "skip"): the next ordered claim takes them all, wakes the
-- delivery parked behind each, and resolves the key_blocked alert of the one that let go. A row
-- here replaces a flag on the delivery (deliveries.unblock), which cost every ordered delivery a
-- second write of its row and of its indexes when the claim cleared it.
create table key_wakes (
  subscription_id bigint not null,
  order_key text not null,
  message_id text not null
);
insert into key_wakes (subscription_id, order_key, message_id)
  select subscription_id, order_key, message_id from deliveries where unblock and order_key is not null;
alter table deliveries drop column unblock;

-- The claim that takes key_wakes resolves the key_blocked alerts of the deliveries that let go:
-- a probe each, rather than a pass over every open alert.
create index alerts_open_by_message on alerts (message_id, subscription_id) where resolved_at is null;
