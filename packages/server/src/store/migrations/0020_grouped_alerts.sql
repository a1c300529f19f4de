-- Alerts grouped by condition and subject, with a lifecycle. One alert is open per condition
-- ("delivery_dead") and subject ("subscription orders") at a time, and counts its occurrences
-- (first_at, last_at, count) with the latest examples (up to 10), instead of one row per dead
-- delivery: a receiver down overnight is one alert, not thousands. open → acknowledged (who, note)
-- → resolved (by the condition clearing, or by hand with a note). Every transition writes its row
-- into alert_events (0017), by the trigger below, so no way of changing an alert can skip it.
create type alert_state as enum ('open', 'acknowledged', 'resolved');

-- What the alert is about, as people name it ("subscription orders", "app shop", "admin").
alter table alerts rename column kind to condition;
drop index alerts_open_dead;
drop index alerts_open_by_message;
alter table alerts alter column condition type text using condition::text;
drop type alert_kind;
alter table alerts
  add column subject text,
  add column app text,
  add column state alert_state,
  add column count integer not null default 1 check (count > 0),
  add column first_at timestamptz,
  add column last_at timestamptz,
  -- The latest occurrences, newest first: [{messageId, deliveryId?, detail, at}], at most 10.
  add column examples jsonb not null default '[]',
  -- The console page to act on it (a hash path) and what to do.
  add column link text,
  add column next_step text,
  add column acknowledged_at timestamptz,
  add column acknowledged_by text,
  add column acknowledge_note text,
  -- Who resolved it ("tidings" when its condition cleared) and why.
  add column resolved_by text,
  add column resolve_note text;

-- The alerts kept so far, in the new shape. A circuit_closed row was an event, not something to
-- act on: it is resolved. The message an alert was about becomes its one example.
update alerts a
   set subject = case
         when a.subscription_id is not null then 'subscription ' || coalesce((select s.name from subscriptions s where s.id = a.subscription_id), a.subscription_id::text)
         when m.app is not null then 'app ' || m.app
         else 'admin' end,
       app = m.app,
       state = case when a.resolved_at is null and a.condition <> 'circuit_closed' then 'open' else 'resolved' end::alert_state,
       resolved_at = case when a.condition = 'circuit_closed' then coalesce(a.resolved_at, a.created_at) else a.resolved_at end,
       first_at = a.created_at,
       last_at = a.created_at,
       examples = case when a.message_id is null then '[]'::jsonb
                       else jsonb_build_array(jsonb_build_object('messageId', a.message_id, 'detail', a.detail, 'at', a.created_at)) end
  from (select a2.id, (select m.app from messages m where m.id = a2.message_id) as app from alerts a2) m
 where m.id = a.id;

-- Open alerts of one condition and subject become one: the newest counts them all and keeps the
-- latest 10 as examples; the others are resolved into it.
with open_rows as (
  select id, condition, subject, created_at, examples,
         row_number() over (partition by condition, subject order by id desc) as nth,
         first_value(id) over (partition by condition, subject order by id desc) as keeper
    from alerts where state = 'open'
), groups as (
  select keeper, count(*)::int as n, min(created_at) as first_at,
         (array_agg(examples -> 0 order by id desc) filter (where jsonb_array_length(examples) > 0))[1:10] as latest
    from open_rows group by keeper
), kept as (
  update alerts a set count = g.n, first_at = g.first_at, examples = coalesce(to_jsonb(g.latest), '[]')
    from groups g where a.id = g.keeper
)
update alerts a set state = 'resolved', resolved_at = now(), resolved_by = 'tidings',
       resolve_note = 'grouped into alert ' || o.keeper || ' on upgrade'
  from open_rows o where a.id = o.id and o.nth > 1;

alter table alerts drop column message_id;
alter table alerts
  alter column subject set not null,
  alter column state set not null,
  alter column state set default 'open',
  alter column first_at set not null,
  alter column first_at set default now(),
  alter column last_at set not null,
  alter column last_at set default now(),
  add constraint alerts_resolved_at check ((state = 'resolved') = (resolved_at is not null)),
  add constraint alerts_acknowledged_at check (state <> 'acknowledged' or acknowledged_at is not null);

-- One alert open (or acknowledged) per condition and subject: raising is an insert that, on this
-- conflict, counts one more occurrence instead.
create unique index alerts_one_open on alerts (condition, subject) where resolved_at is null;
-- The conditions about a subscription that clear by themselves are found by it (a delivery that
-- succeeds resolves its subscription's delivery_dead alert: one probe per subscription of a batch).
create index alerts_open_by_subscription on alerts (subscription_id) where resolved_at is null;
create index alerts_list on alerts (state, id);

-- The text of an alert's events: one line with counts, the next step and the console link.
create function alert_event_summary(a alerts, event text) returns text language sql stable as $$
  select case event
           when 'opened' then ''
           when 'acknowledged' then 'acknowledged by ' || coalesce(a.acknowledged_by, 'someone') || coalesce(' ("' || a.acknowledge_note || '")', '') || ': '
           else case when a.resolved_by = 'tidings' then 'resolved' else 'resolved by ' || coalesce(a.resolved_by, 'someone') end
                || coalesce(' ("' || a.resolve_note || '")', '') || ': ' end
      || case a.condition
           when 'delivery_dead' then a.count || case when a.count = 1 then ' delivery' else ' deliveries' end || ' dead on ' || a.subject
           when 'key_blocked' then a.count || case when a.count = 1 then ' key' else ' keys' end || ' blocked by a dead delivery on ' || a.subject
           when 'message_in_doubt' then a.count || case when a.count = 1 then ' message' else ' messages' end || ' in doubt (' || a.subject || ')'
           when 'circuit_open' then 'circuit open on ' || a.subject
           when 'subscription_auto_paused' then a.subject || ' paused automatically: its circuit stayed open too long'
           when 'pending_too_old' then 'deliveries waiting too long on ' || a.subject
           when 'check_url_failing' then 'the check URL of ' || a.subject || ' is failing'
           else a.condition || ' on ' || a.subject end
      || case when a.count > 1 and a.condition not in ('delivery_dead', 'key_blocked', 'message_in_doubt') then ' (' || a.count || ' times)' else '' end
      || case when event = 'opened' then coalesce(': ' || a.detail, '')
              else ' since ' || to_char(a.first_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC' end
$$;

create function alert_event_next_step(a alerts, event text) returns text language sql stable as $$
  select case
           when event <> 'resolved' then coalesce(a.next_step, 'look at it in the console')
           when a.condition in ('delivery_dead', 'key_blocked') then 're-send or skip the deliveries still dead, if any (Dead letters)'
           else 'nothing: it is over' end
$$;

create function alerts_write_event() returns trigger language plpgsql as $$
declare
  ev text;
begin
  ev := case when tg_op = 'INSERT' then 'opened' when new.state = 'acknowledged' then 'acknowledged' when new.state = 'resolved' then 'resolved' end;
  if ev is null then return null; end if;
  insert into alert_events (alert_id, event, condition, subject, summary, next_step, link)
  values (new.id, ev, new.condition, new.subject, alert_event_summary(new, ev), alert_event_next_step(new, ev),
          coalesce(new.link, '#/dead-letters'));
  return null;
end $$;

create trigger alerts_events_opened after insert on alerts for each row execute function alerts_write_event();
create trigger alerts_events_changed after update of state on alerts for each row
  when (old.state is distinct from new.state) execute function alerts_write_event();

-- Consecutive failures of each app's check URL (check_url_failing opens at a threshold of them,
-- and resolves on the next answer).
create table app_check_health (
  app text primary key,
  consecutive_failures integer not null default 0,
  last_error text,
  updated_at timestamptz not null default now()
);
