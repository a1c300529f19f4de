-- Messages, their deliveries, attempts and check-backs are kept in one partition per UTC day the
-- message was accepted (`day` on messages, `message_day` on the others), so that retention drops a
-- finished day's four partitions at once instead of deleting its rows one by one (see
-- store/retention.ts and docs). A partition is created ahead of its day by the service
-- (tidings_create_day_partitions, under an advisory lock) and by this migration: there is no
-- default partition, so a row that has no day to go to fails loudly instead of piling up where
-- no retention can drop it.
--
-- Keys hold the day: messages (id, day), deliveries (id, message_day) and unique (message_id,
-- subscription_id, message_day), attempts and checks (id, message_day). An id stays unique among
-- stored messages because the insert checks producers' ids against the older days in the same
-- statement (store/insertMessages.ts); seq stays unique by its identity (a plain index per
-- partition: PostgreSQL enforces uniqueness across partitions only with the partition key).
--
-- The foreign keys between these four tables are dropped: the service writes a delivery only in
-- the statement that stores or commits its message, an attempt only in the one that updates its
-- delivery, a check only where its message exists, and deletes a message's rows itself. With
-- them, dropping (detaching) a referenced partition runs a check of every referencing row under
-- an exclusive lock of the parent, which publishes would wait behind. deliveries keeps its key
-- to subscriptions (a deleted subscription takes its deliveries with it).
--
-- The tables as they stand become one "legacy" partition each, covering every day before this
-- migration's: no row is rewritten. Their `day` is a constant default (metadata only); attaching
-- them reads each table once to check the bound, and builds the few indexes the new keys need
-- (messages: (id, day) and seq; deliveries: (id, message_day) and (message_id, subscription_id,
-- message_day); attempts and checks: (id, message_day)). The other indexes are the legacy
-- tables' own, attached as they are. The legacy partitions are dropped by the same rule as a day
-- once their newest message is past the retention and all of it is finished.

create function tidings_day_partition(parent text, d date) returns text language sql immutable as $$
  select parent || '_' || to_char(d, 'YYYYMMDD')
$$;

-- Creates the four tables' partitions of the days from `first` to `last` (UTC dates) that do not
-- exist yet. Idempotent; many nodes may call it at once (the advisory lock lets one create while
-- the others wait, then find the tables there). Returns how many tables it created.
create function tidings_create_day_partitions(first date, last date) returns integer language plpgsql as $$
declare
  d date;
  t text;
  made integer := 0;
begin
  perform pg_advisory_xact_lock(7400027);
  for d in select generate_series(first, last, interval '1 day')::date loop
    foreach t in array array['messages', 'deliveries', 'attempts', 'checks'] loop
      if to_regclass(tidings_day_partition(t, d)) is null then
        execute format('create table %I partition of %I for values from (%L) to (%L)', tidings_day_partition(t, d), t, d, d + 1);
        made := made + 1;
      end if;
    end loop;
  end loop;
  return made;
end $$;

do $$
declare
  legacy_day date := (now() at time zone 'utc')::date - 1;
  first_day date := (now() at time zone 'utc')::date;
  i record;
begin
  -- The foreign keys between the four tables (see above).
  alter table deliveries drop constraint deliveries_message_id_fkey;
  alter table checks drop constraint checks_message_id_fkey;
  alter table attempts drop constraint attempts_delivery_id_fkey;
  -- A partition's constraints must be valid where its parent's are; this one (0024) was added
  -- without reading the table: reading it now changes nothing.
  alter table deliveries validate constraint outcome_at_iff_outcome;

  -- The day columns, a constant for every existing row: metadata only.
  execute format('alter table messages add column day date not null default %L', legacy_day);
  execute format('alter table deliveries add column message_day date not null default %L', legacy_day);
  execute format('alter table attempts add column message_day date not null default %L', legacy_day);
  execute format('alter table checks add column message_day date not null default %L', legacy_day);
  -- The legacy tables' keys give way to the partitioned tables' (built when attached).
  alter table messages drop constraint messages_pkey;
  alter table deliveries drop constraint deliveries_pkey, drop constraint deliveries_message_id_subscription_id_key;
  alter table attempts drop constraint attempts_pkey;
  alter table checks drop constraint checks_pkey;
  drop index messages_seq;

  for i in select c.relname as name from pg_class c
            where c.relkind = 'r' and c.relname in ('messages', 'deliveries', 'attempts', 'checks') loop
    execute format('alter table %I rename to %I', i.name, i.name || '_legacy');
  end loop;
  -- The legacy indexes keep their names for the partitioned tables' indexes they attach to.
  for i in select ix.relname as name, t.relname as tbl from pg_index x
             join pg_class ix on ix.oid = x.indexrelid join pg_class t on t.oid = x.indrelid
            where t.relname in ('messages_legacy', 'deliveries_legacy', 'attempts_legacy', 'checks_legacy') loop
    execute format('alter index %I rename to %I', i.name, i.name || '_legacy');
  end loop;

  -- The partitioned tables: the same columns, defaults, checks and identities.
  create table messages (like messages_legacy including defaults including constraints including identity) partition by range (day);
  create table deliveries (like deliveries_legacy including defaults including constraints including identity) partition by range (message_day);
  create table attempts (like attempts_legacy including defaults including constraints including identity) partition by range (message_day);
  create table checks (like checks_legacy including defaults including constraints including identity) partition by range (message_day);
  -- A message's day is the UTC date it was accepted (the insert's now(), as created_at); the
  -- others' is their message's and is always written.
  alter table messages alter column day set default (now() at time zone 'utc')::date;
  alter table deliveries alter column message_day drop default;
  alter table attempts alter column message_day drop default;
  alter table checks alter column message_day drop default;
  -- The identities go on from where the legacy tables' are.
  perform setval(pg_get_serial_sequence('messages', 'seq'), greatest(1, (select last_value from pg_sequences where schemaname = 'public' and sequencename = (select split_part(pg_get_serial_sequence('messages_legacy', 'seq'), '.', 2)))));
  perform setval(pg_get_serial_sequence('deliveries', 'id'), greatest(1, (select last_value from pg_sequences where schemaname = 'public' and sequencename = (select split_part(pg_get_serial_sequence('deliveries_legacy', 'id'), '.', 2)))));
  perform setval(pg_get_serial_sequence('attempts', 'id'), greatest(1, (select last_value from pg_sequences where schemaname = 'public' and sequencename = (select split_part(pg_get_serial_sequence('attempts_legacy', 'id'), '.', 2)))));
  perform setval(pg_get_serial_sequence('checks', 'id'), greatest(1, (select last_value from pg_sequences where schemaname = 'public' and sequencename = (select split_part(pg_get_serial_sequence('checks_legacy', 'id'), '.', 2)))));

  -- Their own identities are no longer used (rows come in through the parents), and PostgreSQL
  -- 17 and later refuse to attach a table that has one.
  alter table messages_legacy alter column seq drop identity;
  alter table deliveries_legacy alter column id drop identity;
  alter table attempts_legacy alter column id drop identity;
  alter table checks_legacy alter column id drop identity;

  alter table messages add primary key (id, day);
  create index messages_seq on messages (seq);
  create index messages_key on messages (key, seq) where key is not null;
  create index messages_topic on messages (topic, seq);
  create index messages_app on messages (app, seq);
  create index messages_check_due on messages (next_check_at) where state = 'prepared' and in_doubt_at is null;
  create index messages_in_doubt on messages (seq) where state = 'prepared' and in_doubt_at is not null;
  create index messages_created on messages (created_at);
  create index messages_not_committed on messages (state) where state <> 'committed';
  create index messages_feed on messages (topic, commit_tx, seq) where state = 'committed';

  alter table deliveries add primary key (id, message_day),
    add constraint deliveries_message_subscription unique (message_id, subscription_id, message_day),
    add constraint deliveries_subscription_id_fkey foreign key (subscription_id) references subscriptions (id) on delete cascade;
  create index deliveries_due on deliveries (next_attempt_at) where state = 'pending';
  create index deliveries_dead on deliveries (subscription_id, id) where state = 'dead';
  create index deliveries_pending_id on deliveries (id) where state = 'pending';
  create index deliveries_dead_id on deliveries (id) where state = 'dead';
  create index deliveries_key_order on deliveries (subscription_id, order_key, order_at, id)
    where order_key is not null and (state = 'pending' or (state = 'dead' and skipped_at is null));
  create index deliveries_leased_by_key on deliveries (subscription_id, order_key) where state = 'pending' and lease_owner is not null;
  create index deliveries_subscription on deliveries (subscription_id, state, id);

  alter table attempts add primary key (id, message_day);
  create index attempts_message on attempts (message_id, id);
  create index attempts_delivery on attempts (delivery_id);
  create index attempts_started on attempts (started_at);

  alter table checks add primary key (id, message_day);
  create index checks_message on checks (message_id, id);

  -- The legacy tables become the partitions of every day before this one.
  execute format('alter table messages attach partition messages_legacy for values from (minvalue) to (%L)', first_day);
  execute format('alter table deliveries attach partition deliveries_legacy for values from (minvalue) to (%L)', first_day);
  execute format('alter table attempts attach partition attempts_legacy for values from (minvalue) to (%L)', first_day);
  execute format('alter table checks attach partition checks_legacy for values from (minvalue) to (%L)', first_day);
  alter table messages_legacy alter column day drop default;
  alter table deliveries_legacy alter column message_day drop default;
  alter table attempts_legacy alter column message_day drop default;
  alter table checks_legacy alter column message_day drop default;

  -- A database with nothing stored yet (a new install) keeps no legacy partitions.
  if not exists (select 1 from messages_legacy) and not exists (select 1 from deliveries_legacy)
     and not exists (select 1 from attempts_legacy) and not exists (select 1 from checks_legacy) then
    drop table attempts_legacy, deliveries_legacy, checks_legacy, messages_legacy;
  end if;

  perform tidings_create_day_partitions(first_day, first_day + 3);
end $$;
