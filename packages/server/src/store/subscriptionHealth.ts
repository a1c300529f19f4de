import { afterResults, storedCircuitPolicy, type CircuitState, type Health, type HealthEvent, type Tally } from "../domain/circuitBreaker.ts";
import { ALERT_CONDITIONS } from "../domain/alerts.ts";
import { nextStepSql, raiseAlertsSql, resolvedBySystem } from "./alertRaise.ts";
import { inTransaction, type Db, type Tx } from "./db.ts";
import { SUBSCRIPTIONS_CHANNEL } from "./subscriptions.ts";

/** Circuit changes are announced so every node stops (or resumes) sending at once. */
export const HEALTH_CHANNEL = "tidings_health";

const ms = (d: unknown): number | null => (d instanceof Date ? d.getTime() : null);
// biome-ignore lint/suspicious/noExplicitAny: a row of pg's untyped result
const toHealth = (r: any): Health => ({
  state: r.state,
  consecutiveFailures: r.consecutive_failures,
  openedAt: ms(r.opened_at),
  nextProbeAt: ms(r.next_probe_at),
  throttledUntil: ms(r.throttled_until),
  windowStartedAt: ms(r.window_started_at),
  windowAttempts: r.window_attempts,
  windowFailures: r.window_failures,
});

/** Every subscription's stored health (absent: closed, no failures) and the database's clock. */
export async function loadHealth(db: Db): Promise<{ now: number; health: Map<number, Health> }> {
  const { rows } = await db.query("select now() as db_now, h.* from (select 1) one left join subscription_health h on true");
  const health = new Map<number, Health>();
  for (const row of rows) if (row.subscription_id !== null) health.set(Number(row.subscription_id), toHealth(row));
  return { now: (rows[0].db_now as Date).getTime(), health };
}

// $1 subscription id. A circuit that closed: the deliveries that failed and wait for a later retry
// are due now, so the backlog drains at once (within the subscription's limits) rather than on
// the retry schedule. Delayed deliveries not yet attempted, parked ones and leased ones keep theirs.
const DUE_NOW_SQL = `
update deliveries set next_attempt_at = now()
 where subscription_id = $1 and state = 'pending' and lease_owner is null and attempts > 0 and not parked and next_attempt_at > now()`;

export interface HealthChange {
  subscriptionId: number;
  health: Health;
  event: HealthEvent | null;
  /** What opened the circuit. */
  why?: string | undefined;
}

/**
 * Applies tallies of attempt results to the subscriptions' shared health: the rows are locked
 * (in id order, so that nodes writing at once never deadlock), the breaker's decision made
 * (`afterResults`, by the database's clock), written back, and each transition logged with an
 * alert; a closed circuit makes its waiting backlog due now. The policy is read with the rows,
 * so a change of it applies from the next write on every node. Answers the new health of each.
 */
export async function recordHealth(db: Db, tallies: ReadonlyMap<number, Tally>): Promise<HealthChange[]> {
  const ids = [...tallies.keys()].sort((a, b) => a - b);
  if (ids.length === 0) return [];
  const changes = await inTransaction(db, async (tx) => {
    await tx.query("insert into subscription_health (subscription_id) select id from subscriptions where id = any ($1::bigint[]) on conflict do nothing", [
      ids,
    ]);
    const { rows } = await tx.query(
      `select now() as db_now, s.circuit, h.* from subscription_health h join subscriptions s on s.id = h.subscription_id
        where h.subscription_id = any ($1::bigint[]) order by h.subscription_id for update of h`,
      [ids],
    );
    const out: HealthChange[] = [];
    for (const row of rows) {
      const id = Number(row.subscription_id);
      const now = (row.db_now as Date).getTime();
      const { next, event, why } = afterResults(toHealth(row), tallies.get(id)!, storedCircuitPolicy(row.circuit), now);
      out.push({ subscriptionId: id, health: next, event, why });
    }
    const iso = (t: number | null) => (t === null ? null : new Date(t));
    await tx.query(
      `update subscription_health h
          set state = u.state, consecutive_failures = u.failures, opened_at = u.opened_at, next_probe_at = u.next_probe_at,
              throttled_until = u.throttled_until, updated_at = now(),
              window_started_at = u.window_started_at, window_attempts = u.window_attempts, window_failures = u.window_failures,
              opens = h.opens + case when u.event = 'opened' then 1 else 0 end,
              closed_at = case when u.event = 'closed' then now() else h.closed_at end
         from unnest($1::bigint[], $2::text[], $3::int[], $4::timestamptz[], $5::timestamptz[], $6::timestamptz[], $7::text[],
                     $8::timestamptz[], $9::int[], $10::int[])
           as u(id, state, failures, opened_at, next_probe_at, throttled_until, event, window_started_at, window_attempts, window_failures)
        where h.subscription_id = u.id`,
      [
        out.map((c) => c.subscriptionId),
        out.map((c) => c.health.state),
        out.map((c) => c.health.consecutiveFailures),
        out.map((c) => iso(c.health.openedAt)),
        out.map((c) => iso(c.health.nextProbeAt)),
        out.map((c) => iso(c.health.throttledUntil)),
        out.map((c) => c.event),
        out.map((c) => iso(c.health.windowStartedAt)),
        out.map((c) => c.health.windowAttempts),
        out.map((c) => c.health.windowFailures),
      ],
    );
    for (const c of out) {
      if (c.event === "opened") await logEvent(tx, c.subscriptionId, "opened", c.why ?? `${c.health.consecutiveFailures} attempts failed in a row`);
      if (c.event === "closed") {
        await logEvent(tx, c.subscriptionId, "closed", "an attempt succeeded");
        await tx.query(DUE_NOW_SQL, [c.subscriptionId]);
      }
    }
    // Other nodes stop (or resume) at once rather than on their next reload.
    if (out.some((c) => c.event !== null || tallies.get(c.subscriptionId)!.throttledUntil !== null))
      await tx.query(`select pg_notify('${HEALTH_CHANNEL}', '')`);
    return out;
  });
  return changes;
}

/** Each transition's line in the history, and what it does to the subscription's alerts. */
const EVENTS = {
  opened: { text: "the circuit opened: deliveries wait and one probe goes out at intervals", raises: ALERT_CONDITIONS.circuitOpen },
  closed: { text: "the circuit closed: deliveries go again", resolves: "the circuit closed: an attempt succeeded" },
  auto_paused: {
    text: "paused automatically: the circuit stayed open too long; resume it to deliver what waited",
    raises: ALERT_CONDITIONS.subscriptionAutoPaused,
  },
  reset: { text: "the circuit was closed by an operator", resolves: "the circuit was closed by an operator" },
} as const;

// $1 subscription id; $2 event; $3 detail; $4 the alert's detail. An opening counts into the
// subscription's circuit_open alert (raised if none is open), an automatic pause into its
// subscription_auto_paused alert; a close resolves the circuit_open alert.
const RAISE_SQL = Object.fromEntries(
  [ALERT_CONDITIONS.circuitOpen, ALERT_CONDITIONS.subscriptionAutoPaused].map((condition) => [
    condition,
    `with ev as (insert into subscription_health_events (subscription_id, event, detail) values ($1, $2::text, $3))
     ${raiseAlertsSql(`select '${condition}' as condition, 'subscription ' || s.name as subject, s.id as subscription_id, null::text as app, 1 as n,
                              $4::text as detail, '[]'::jsonb as examples, '#/subscriptions/' || s.name as link, ${nextStepSql(condition)} as next_step
                         from subscriptions s where s.id = $1`)}`,
  ]),
);
// $1 subscription id; $2 event; $3 detail; $4 how the alert cleared.
const RESOLVE_SQL = `
with ev as (insert into subscription_health_events (subscription_id, event, detail) values ($1, $2::text, $3))
update alerts set ${resolvedBySystem("$4::text || ' (' || $3::text || ')'")}
 where subscription_id = $1 and condition = '${ALERT_CONDITIONS.circuitOpen}' and resolved_at is null`;

/** Logs a transition in the subscription's history, and raises or resolves its alert. */
async function logEvent(tx: Db | Tx, subscriptionId: number, event: keyof typeof EVENTS, detail: string): Promise<void> {
  const e: { text: string; raises?: string; resolves?: string } = EVENTS[event];
  if (e.raises) await tx.query(RAISE_SQL[e.raises]!, [subscriptionId, event, detail, `${e.text} (${detail})`]);
  else await tx.query(RESOLVE_SQL, [subscriptionId, event, detail, e.resolves]);
}

// $1 subscription id; $2 probe interval ms. Takes the subscription's probe: one across all nodes,
// by a conditional update; the taker's claim of one delivery follows. Its deadline is the next probe time.
export async function takeProbe(db: Db, subscriptionId: number, probeEveryMs: number): Promise<boolean> {
  const { rowCount } = await db.query(
    `update subscription_health set state = 'half_open', next_probe_at = now() + make_interval(secs => $2::float8 / 1000), updated_at = now()
      where subscription_id = $1 and state <> 'closed' and next_probe_at <= now() and coalesce(throttled_until, '-infinity') <= now()`,
    [subscriptionId, probeEveryMs],
  );
  return (rowCount ?? 0) > 0;
}

// $1 subscription id. A probe taken with nothing due to send: another may be taken at once.
export async function giveBackProbe(db: Db, subscriptionId: number): Promise<void> {
  await db.query(`update subscription_health set state = 'open', next_probe_at = now() where subscription_id = $1 and state = 'half_open'`, [subscriptionId]);
}

// $1 subscription id; $2 pauseAfter ms. Pauses a subscription whose circuit has been open that
// long (once: only an enabled one), with an alert and a line in its history.
export async function pauseIfOpenTooLong(db: Db, subscriptionId: number, pauseAfterMs: number): Promise<boolean> {
  const paused = await inTransaction(db, async (tx) => {
    const { rows } = await tx.query(
      `update subscriptions s set enabled = false, updated_at = now()
         from subscription_health h
        where s.id = $1 and h.subscription_id = s.id and s.enabled and h.state <> 'closed'
          and h.opened_at <= now() - make_interval(secs => $2::float8 / 1000)
       returning h.opened_at`,
      [subscriptionId, pauseAfterMs],
    );
    if (rows.length === 0) return false;
    await logEvent(tx, subscriptionId, "auto_paused", `open since ${(rows[0].opened_at as Date).toISOString()}`);
    return true;
  });
  if (paused) await db.query(`select pg_notify('${SUBSCRIPTIONS_CHANNEL}', '')`);
  return paused;
}

// $1 subscription id. An operator resumed the subscription or turned its breaker off: an open
// circuit is closed (logged, with an alert) and its backlog is due now.
export async function resetHealth(db: Db, subscriptionId: number, why: string): Promise<void> {
  await inTransaction(db, async (tx) => {
    // The state before, read under the row's lock in a statement of its own: read in a CTE of the
    // update instead, a concurrent write of results (re-checked by the update) left it null, and
    // a closed circuit was "reset", its waiting retries made due at once.
    const { rows } = await tx.query("select state from subscription_health where subscription_id = $1 for update", [subscriptionId]);
    await tx.query(
      `update subscription_health set state = 'closed', consecutive_failures = 0, opened_at = null, next_probe_at = null,
              window_started_at = null, window_attempts = 0, window_failures = 0,
              closed_at = case when state <> 'closed' then now() else closed_at end, updated_at = now()
        where subscription_id = $1`,
      [subscriptionId],
    );
    if (!rows[0] || rows[0].state === "closed") return;
    await logEvent(tx, subscriptionId, "reset", why);
    await tx.query(DUE_NOW_SQL, [subscriptionId]);
    await tx.query(`select pg_notify('${HEALTH_CHANNEL}', '')`);
  });
}

export interface HealthRecord {
  state: string;
  consecutiveFailures: number;
  openedAt: string | null;
  nextProbeAt: string | null;
  closedAt: string | null;
  throttledUntil: string | null;
  /** The failure ratio's current window (null: none counted yet, or no ratio): its start and counts. */
  window: { startedAt: string; attempts: number; failures: number } | null;
  opens: number;
  history: Array<{ event: string; at: string; detail: string }>;
}

const isoOf = (d: unknown): string | null => (d instanceof Date ? d.toISOString() : null);

/** A subscription's health and its last 20 transitions, newest first, for the API. */
export async function healthOf(db: Db, subscriptionId: number): Promise<HealthRecord> {
  const [h, ev] = await Promise.all([
    db.query("select * from subscription_health where subscription_id = $1", [subscriptionId]),
    db.query("select event, at, detail from subscription_health_events where subscription_id = $1 order by id desc limit 20", [subscriptionId]),
  ]);
  const row = h.rows[0];
  return {
    state: row?.state ?? "closed",
    consecutiveFailures: row?.consecutive_failures ?? 0,
    openedAt: isoOf(row?.opened_at),
    nextProbeAt: isoOf(row?.next_probe_at),
    closedAt: isoOf(row?.closed_at),
    throttledUntil: isoOf(row?.throttled_until),
    window: row?.window_started_at ? { startedAt: isoOf(row.window_started_at)!, attempts: row.window_attempts, failures: row.window_failures } : null,
    opens: row?.opens ?? 0,
    history: ev.rows.map((r) => ({ event: r.event, at: (r.at as Date).toISOString(), detail: r.detail })),
  };
}

/** Each subscription's circuit state (absent: closed), for lists. */
export async function circuitStates(db: Db): Promise<Map<number, CircuitState>> {
  const { rows } = await db.query("select subscription_id, state from subscription_health where state <> 'closed'");
  return new Map(rows.map((r) => [Number(r.subscription_id), r.state as CircuitState]));
}
