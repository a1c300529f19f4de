-- Recovery jobs: re-send a subscription's dead and failed deliveries of the messages created in
-- a window [window_start, window_end), in batches, with progress, as a job like re-send-dead.
-- window_end null: no upper bound (messages created up to when the job was created).
alter table jobs drop constraint jobs_kind_check;
alter table jobs add constraint jobs_kind_check check (kind in ('resend_dead', 'recover'));
alter table jobs add column window_start timestamptz, add column window_end timestamptz;
-- The last delivery id a recovery's batch took: its batches go forward through the deliveries by
-- id, so a delivery it re-sent that fails again is never taken a second time by the same job.
alter table jobs add column after_id bigint not null default 0;
alter table jobs add constraint recover_has_window check ((kind = 'recover') = (window_start is not null));
alter table jobs add constraint window_in_order check (window_end is null or window_end > window_start);

-- Asking twice to recover the same window of a subscription gets the job already asked for
-- (running or succeeded), not a second re-send: the insert of a new job collides here. A failed
-- job leaves the index, so asking again starts a new one that re-sends what is still left.
create unique index jobs_recover_window on jobs (subscription_id, window_start, coalesce(window_end, 'infinity'))
  where kind = 'recover' and state <> 'failed';
