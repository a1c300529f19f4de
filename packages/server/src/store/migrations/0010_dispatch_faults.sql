-- Per-subscription cap on deliveries in flight at once per process (null: the service default),
-- so one slow endpoint cannot take every delivery slot.
alter table subscriptions add column max_in_flight integer check (max_in_flight between 1 and 10000);

-- A re-send asked while an attempt was in flight: the attempt keeps its lease (no second
-- attempt starts beside it); when its result lands, delivered stays delivered, and failed or
-- dead makes the delivery due at once on a fresh retry cycle instead.
alter table deliveries add column resend_due boolean not null default false;

-- lease_owner now holds a per-claim lease token ("<node id>/<claim>"; the bare node id for
-- deliveries leased when they were created): results and releases match on it, so a late
-- result of an earlier claim never lands on a later claim of the same delivery.
comment on column deliveries.lease_owner is 'lease token of the claim holding the delivery';
comment on column messages.check_owner is 'lease token of the claim holding the check-back';
