-- Consumer outcomes: what a consumer (the SDK's receiver or broker consumers) reports it did
-- with a delivery: applied, duplicate (its inbox had the message), or failed (with the error).
-- A delivery nobody reported on keeps outcome null: delivered means what it always meant.
create type consumer_outcome as enum ('applied', 'duplicate', 'failed');

-- Added without defaults: no table rewrite. The constraint holds for every row already (all
-- null), so it is added NOT VALID rather than checked by a scan of the whole table.
alter table deliveries
  add column outcome consumer_outcome,
  add column outcome_at timestamptz,
  add column outcome_error text,
  add constraint outcome_at_iff_outcome check ((outcome is null) = (outcome_at is null)) not valid;

-- A message whose every delivery was reported applied (or duplicate) is completed.
alter table messages add column completed_at timestamptz;
