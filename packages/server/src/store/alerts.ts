import { ALERT_CONDITIONS, type AlertState } from "../domain/alerts.ts";
import { storableText } from "../domain/storableText.ts";
import { nextStepSql, raiseAlertsSql, resolvedBySystem } from "./alertRaise.ts";
import type { Db } from "./db.ts";

export interface AlertExample {
  messageId?: string;
  deliveryId?: number;
  detail?: string;
  at?: string;
}

export interface AlertRecord {
  id: number;
  condition: string;
  subject: string;
  subscription: string | null;
  app: string | null;
  state: AlertState;
  count: number;
  firstAt: string;
  lastAt: string;
  /** The latest occurrence's detail. */
  detail: string;
  examples: AlertExample[];
  link: string | null;
  nextStep: string | null;
  acknowledgedAt: string | null;
  acknowledgedBy: string | null;
  acknowledgeNote: string | null;
  resolvedAt: string | null;
  resolvedBy: string | null;
  resolveNote: string | null;
}

const iso = (d: unknown): string | null => (d instanceof Date ? d.toISOString() : null);

// biome-ignore lint/suspicious/noExplicitAny: a row of pg's untyped result
const toAlert = (r: any): AlertRecord => ({
  id: r.id,
  condition: r.condition,
  subject: r.subject,
  subscription: r.subscription,
  app: r.app,
  state: r.state,
  count: r.count,
  firstAt: iso(r.first_at)!,
  lastAt: iso(r.last_at)!,
  detail: r.detail,
  examples: r.examples,
  link: r.link,
  nextStep: r.next_step,
  acknowledgedAt: iso(r.acknowledged_at),
  acknowledgedBy: r.acknowledged_by,
  acknowledgeNote: r.acknowledge_note,
  resolvedAt: iso(r.resolved_at),
  resolvedBy: r.resolved_by,
  resolveNote: r.resolve_note,
});

const SELECT = "select a.*, s.name as subscription from alerts a left join subscriptions s on s.id = a.subscription_id";

export interface AlertFilter {
  /** null: every state; "unresolved": open and acknowledged. */
  state: AlertState | "unresolved" | null;
  condition?: string | undefined;
  subscription?: string | undefined;
  app?: string | undefined;
  limit: number;
  /** Alerts with a smaller id than this (the last of the page before). */
  beforeId?: number | undefined;
}

// $1 state ('unresolved': not resolved; null: any); $2 condition; $3 subscription name; $4 app;
// $5 limit; $6 cursor. Newest first, keyset by id.
export async function listAlerts(db: Db, f: AlertFilter): Promise<AlertRecord[]> {
  const { rows } = await db.query(
    `${SELECT}
      where ($1::text is null or ($1 = 'unresolved' and a.resolved_at is null) or a.state::text = $1)
        and ($2::text is null or a.condition = $2) and ($3::text is null or s.name = $3) and ($4::text is null or a.app = $4)
        and ($6::bigint is null or a.id < $6)
      order by a.id desc limit $5`,
    [f.state, f.condition ?? null, f.subscription ?? null, f.app ?? null, f.limit, f.beforeId ?? null],
  );
  return rows.map(toAlert);
}

export async function getAlert(db: Db, id: number): Promise<AlertRecord | null> {
  const { rows } = await db.query(`${SELECT} where a.id = $1`, [id]);
  return rows[0] ? toAlert(rows[0]) : null;
}

export type AlertChange = { kind: "changed" | "unchanged"; alert: AlertRecord } | { kind: "not_found" } | { kind: "resolved"; alert: AlertRecord };

// $1 id; $2 who; $3 note. open → acknowledged (the trigger writes its event). Acknowledging an
// acknowledged alert changes nothing; a resolved one cannot be.
export async function acknowledgeAlert(db: Db, id: number, who: string, note: string | null): Promise<AlertChange> {
  const { rowCount } = await db.query(
    `update alerts set state = 'acknowledged', acknowledged_at = now(), acknowledged_by = $2, acknowledge_note = $3
      where id = $1 and state = 'open'`,
    [id, storableText(who, 200), note === null ? null : storableText(note, 1000)],
  );
  const alert = await getAlert(db, id);
  if (!alert) return { kind: "not_found" };
  if ((rowCount ?? 0) > 0) return { kind: "changed", alert };
  return alert.state === "resolved" ? { kind: "resolved", alert } : { kind: "unchanged", alert };
}

// $1 id; $2 who; $3 note. Resolved by hand (the trigger writes its event); resolving a resolved
// alert changes nothing. If its condition still holds, the next occurrence opens a new alert.
export async function resolveAlertByHand(db: Db, id: number, who: string, note: string | null): Promise<AlertChange> {
  const { rowCount } = await db.query(
    `update alerts set state = 'resolved', resolved_at = now(), resolved_by = $2, resolve_note = $3
      where id = $1 and state <> 'resolved'`,
    [id, storableText(who, 200), note === null ? null : storableText(note, 1000)],
  );
  const alert = await getAlert(db, id);
  if (!alert) return { kind: "not_found" };
  return { kind: (rowCount ?? 0) > 0 ? "changed" : "unchanged", alert };
}

/** An occurrence of a condition, raised by code outside the store's own statements. */
export interface AlertOccurrence {
  condition: string;
  /** As people name it, and the alert's group: e.g. "app shop", "relay billing-1 of app shop". */
  subject: string;
  /** One line about this occurrence. */
  detail: string;
  nextStep: string;
  /** The console page to act on it (a hash path). */
  link: string;
  app?: string | null;
  subscriptionId?: number | null;
  example?: AlertExample;
  /** "add" (default): one more occurrence; "set": `count` is the count (a state, e.g. failures in a row). */
  count?: number;
  mode?: "add" | "set";
}

// $1 condition; $2 subject; $3 subscription id; $4 app; $5 n; $6 detail; $7 examples; $8 link; $9 next step.
const RAISE_ONE: Record<"add" | "set", string> = {
  add: raiseAlertsSql(
    "select $1::text as condition, $2::text as subject, $3::bigint as subscription_id, $4::text as app, $5::int as n, $6::text as detail, $7::jsonb as examples, $8::text as link, $9::text as next_step",
    "add",
  ),
  set: raiseAlertsSql(
    "select $1::text as condition, $2::text as subject, $3::bigint as subscription_id, $4::text as app, $5::int as n, $6::text as detail, $7::jsonb as examples, $8::text as link, $9::text as next_step",
    "set",
  ),
};

/**
 * Raises (or counts one more occurrence of) the alert of a condition and subject: for any
 * condition, including those the service does not watch itself (a relay's heartbeat).
 * Answers the alert's id.
 */
export async function raiseAlert(db: Db, o: AlertOccurrence): Promise<number> {
  const { rows } = await db.query(RAISE_ONE[o.mode ?? "add"], [
    o.condition,
    storableText(o.subject, 300),
    o.subscriptionId ?? null,
    o.app ?? null,
    o.count ?? 1,
    storableText(o.detail, 1000),
    JSON.stringify(o.example ? [o.example] : []),
    o.link,
    o.nextStep,
  ]);
  return rows[0].id;
}

// $1 condition; $2 subject; $3 how it cleared. Resolves the open (or acknowledged) alert of a
// condition and subject, if any; answers whether there was one.
export async function clearAlert(db: Db, condition: string, subject: string, note: string): Promise<boolean> {
  const { rowCount } = await db.query(`update alerts set ${resolvedBySystem("$3")} where condition = $1 and subject = $2 and resolved_at is null`, [
    condition,
    subject,
    storableText(note, 1000),
  ]);
  return (rowCount ?? 0) > 0;
}

const C = ALERT_CONDITIONS;
// Resolves the alerts whose condition no longer holds, each with how it cleared:
// - dead deliveries: none of the subscription's deliveries that died since the alert opened is
//   dead any more (re-sent, or skipped); a delivery that succeeds resolves it at once (RECORD_SQL);
// - keys blocked: no dead delivery holds a key of the subscription (re-sent, skipped, deleted,
//   or its onDead turned to "skip");
// - messages in doubt: none of the app's messages is in doubt (committed, rolled back, deleted);
// - circuit open: the circuit is closed (closing resolves it at once; this is the safety net);
// - paused automatically: the subscription was resumed.
// Each check is a probe of an index (deliveries_dead, messages_in_doubt) per open alert.
const CLEARED_SQL = `
update alerts a set ${resolvedBySystem(`case a.condition
      when '${C.deliveryDead}' then 'no delivery that died is dead any more (re-sent or skipped)'
      when '${C.keyBlocked}' then 'no key is blocked any more'
      when '${C.messageInDoubt}' then 'no message is in doubt any more'
      when '${C.circuitOpen}' then 'the circuit is closed'
      else 'the subscription was resumed' end`)}
 where a.resolved_at is null and (
   (a.condition = '${C.deliveryDead}' and not exists (
      select 1 from deliveries d where d.subscription_id = a.subscription_id and d.state = 'dead' and d.skipped_at is null and d.dead_at >= a.first_at))
   or (a.condition = '${C.keyBlocked}' and not exists (
      select 1 from deliveries d join subscriptions s on s.id = d.subscription_id
       where d.subscription_id = a.subscription_id and d.state = 'dead' and d.skipped_at is null and d.order_key is not null and s.on_dead = 'block'))
   or (a.condition = '${C.messageInDoubt}' and not exists (
      select 1 from messages m where m.state = 'prepared' and m.in_doubt_at is not null and m.app is not distinct from a.app))
   or (a.condition = '${C.circuitOpen}' and not exists (
      select 1 from subscription_health h where h.subscription_id = a.subscription_id and h.state <> 'closed'))
   or (a.condition = '${C.subscriptionAutoPaused}' and exists (
      select 1 from subscriptions s where s.id = a.subscription_id and s.enabled))
 )`;

/** Resolves the alerts whose condition cleared by an operator's hand (see CLEARED_SQL); answers how many. */
export async function resolveClearedAlerts(db: Db): Promise<number> {
  const { rowCount } = await db.query(CLEARED_SQL);
  return rowCount ?? 0;
}

/** SQL spelling a positive number of milliseconds as formatDuration does (`90000` → `90s`). */
const durationSql = (ms: string): string =>
  `case when ${ms} % 86400000 = 0 then (${ms} / 86400000) || 'd' when ${ms} % 3600000 = 0 then (${ms} / 3600000) || 'h'
        when ${ms} % 60000 = 0 then (${ms} / 60000) || 'm' when ${ms} % 1000 = 0 then (${ms} / 1000) || 's' else ${ms} || 'ms' end`;

// $1 the service's threshold in ms (0: none). Each enabled subscription's threshold is its own
// (pending_age_alert_ms; 0: none) or else the service's; a subscription with none is left out
// before its deliveries are read. Its oldest pending delivery (by the partial index
// deliveries_subscription, its pending ones): older than the threshold, its pending_too_old
// alert is raised (or its detail, with the threshold that applied, brought up to date); no
// longer (or paused, or its threshold turned off, or gone), resolved.
const PENDING_AGE_SQL = `
with late as (
  select s.id, s.name, o.message_id, o.created_at, extract(epoch from now() - o.created_at)::bigint as age_s,
         s.pending_age_alert_ms is not null as own, t.ms as threshold_ms
    from subscriptions s
    cross join lateral (select coalesce(s.pending_age_alert_ms, $1::bigint) as ms) t
    cross join lateral (select d.message_id, d.created_at from deliveries d
                         where d.subscription_id = s.id and d.state = 'pending' order by d.created_at limit 1) o
   where t.ms > 0 and s.enabled and o.created_at < now() - make_interval(secs => t.ms / 1000.0)
), raised as (
  ${raiseAlertsSql(
    `select '${C.pendingTooOld}' as condition, 'subscription ' || late.name as subject, late.id as subscription_id, null::text as app, 1 as n,
            'the oldest pending delivery (' || late.message_id || ') has waited ' ||
              case when late.age_s >= 3600 then (late.age_s / 3600) || 'h ' || (late.age_s % 3600 / 60) || 'm' else (late.age_s / 60) || 'm ' || (late.age_s % 60) || 's' end ||
              ', over ' || case when late.own then 'the subscription''s threshold of ' else 'the service''s default threshold of ' end ||
              ${durationSql("late.threshold_ms")} as detail,
            jsonb_build_array(jsonb_build_object('messageId', late.message_id, 'at', late.created_at, 'detail', 'pending since ' || late.created_at)) as examples,
            '#/subscriptions/' || late.name as link, ${nextStepSql(C.pendingTooOld)} as next_step
       from late`,
    "set",
  )}
), cleared as (
  update alerts a set ${resolvedBySystem(`case when exists (select 1 from subscriptions s where s.id = a.subscription_id and coalesce(s.pending_age_alert_ms, $1::bigint) = 0)
      then 'the pending-age alert is off for the subscription' else 'no pending delivery is older than the threshold' end`)}
   where a.condition = '${C.pendingTooOld}' and a.resolved_at is null and (a.subscription_id is null or a.subscription_id <> all (array(select id from late)))
)
select count(*)::int as n from late`;

/** Raises and resolves the pending-age alerts (see PENDING_AGE_SQL); answers the subscriptions late. */
export async function checkPendingAge(db: Db, thresholdMs: number): Promise<number> {
  const { rows } = await db.query(PENDING_AGE_SQL, [thresholdMs]);
  return rows[0].n;
}
