-- The forward feed (GET /v1/feed) reads committed messages in the order they committed, not in
-- the order they were accepted: a prepared message commits long after others were accepted, and
-- of two concurrent publishes the later seq may commit first. A message's place in the feed is
-- (commit_tx, seq): the transaction that made it committed (the insert of a message accepted
-- committed, the commit of a prepared one), then its seq (unique, so the place is). The feed
-- serves only messages whose commit_tx is older than every transaction still running
-- (pg_snapshot_xmin): no message can take a place before one already read, so a reader that
-- follows its cursor skips none.
-- The default fills the column on insert (one stable call per statement); the commit of a
-- prepared message sets it again. Existing rows take this migration's transaction, after every
-- message they were committed with, and keep their seq order among themselves.
alter table messages add column commit_tx xid8 not null default pg_current_xact_id();
-- A page is one range scan of a topic's committed messages in feed order.
create index messages_feed on messages (topic, commit_tx, seq) where state = 'committed';
