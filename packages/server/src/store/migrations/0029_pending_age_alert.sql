-- A subscription's own threshold for its pending_too_old alert: the age its oldest pending
-- delivery may reach, in milliseconds. null: the service's default (TIDINGS_ALERT_PENDING_AGE);
-- 0: no such alert for the subscription. A nullable column without a default: added without
-- rewriting a row.
alter table subscriptions add column pending_age_alert_ms bigint check (pending_age_alert_ms >= 0);
