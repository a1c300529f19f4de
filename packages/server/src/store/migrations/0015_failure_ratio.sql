-- A circuit may open on a failure ratio: the share of a subscription's attempts that failed in a
-- tumbling window (subscriptions.circuit then holds "ratio": {failureRatio, windowMs, minAttempts},
-- and "failures" may be null). The current window is shared by every node, under the health
-- row's lock: when it started and what it has counted. A window that has ended is forgotten
-- when the next result comes; an open circuit counts none.
alter table subscription_health
  add column window_started_at timestamptz,
  add column window_attempts   integer not null default 0 check (window_attempts >= 0),
  add column window_failures   integer not null default 0 check (window_failures >= 0 and window_failures <= window_attempts);
