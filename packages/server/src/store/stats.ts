import type { Db } from "./db.ts";

/**
 * Counts stop at this many rows: an exact count of a table with hundreds of millions of
 * rows costs seconds, and "100,000 or more" is all an operator needs to read. Each count
 * is an index (or index-only) scan of at most this many entries.
 */
export const COUNT_CAP = 100_000;

export interface SubscriptionCounts {
  subscription: string;
  enabled: boolean;
  counts: Record<string, number>;
}

export interface OldestPending {
  messageId: string;
  subscription: string;
  createdAt: string;
  ageSeconds: number;
}

export interface MinuteCounts {
  minute: string;
  accepted: number;
  delivered: number;
  failed: number;
  dead: number;
}

// $1 cap. One capped count per message state, whatever states the enum has (later
// migrations may add some), plus `in_doubt`: prepared messages whose check-backs ran out (a
// subset of prepared). Each state is written into the SQL as a constant, because only then
// can the planner use the partial indexes (messages_not_committed, messages_in_doubt) for
// the rare states: with `state = $n` it scanned the whole table for each (on 400k messages
// the counts took 180 ms; now 55 ms, nearly all of it the capped count of committed).
export async function countMessagesByState(db: Db, cap = COUNT_CAP): Promise<Record<string, number>> {
  const states = (await db.query<{ s: string }>("select unnest(enum_range(null::message_state))::text as s")).rows
    .map((r) => r.s)
    .filter((state) => /^[a-z_]+$/.test(state));
  const count = (where: string) => `(select count(*) from (select 1 from messages m where ${where} limit $1) capped)::int`;
  const { rows } = await db.query<{ state: string; n: number }>(
    [
      ...states.map((state) => `select '${state}' as state, ${count(`m.state = '${state}'`)} as n`),
      `select 'in_doubt', ${count("m.state = 'prepared' and m.in_doubt_at is not null")}`,
    ].join(" union all "),
    [cap],
  );
  return Object.fromEntries(rows.map((r) => [r.state, r.n]));
}

// $1 cap. Alerts nobody has handled yet, by the partial index alerts_open.
export async function countOpenAlerts(db: Db, cap = COUNT_CAP): Promise<number> {
  const { rows } = await db.query<{ n: number }>("select count(*)::int as n from (select 1 from alerts where resolved_at is null limit $1) capped", [cap]);
  return rows[0]!.n;
}

// $1 cap. Per subscription and delivery state, a capped count from deliveries_subscription
// (subscription_id, state).
export async function countDeliveriesBySubscription(db: Db, cap = COUNT_CAP): Promise<SubscriptionCounts[]> {
  const { rows } = await db.query<{ name: string; enabled: boolean; state: string; n: number }>(
    `select s.name, s.enabled, st.state::text as state,
            (select count(*) from (select 1 from deliveries d
                                    where d.subscription_id = s.id and d.state = st.state limit $1) capped)::int as n
       from subscriptions s cross join unnest(enum_range(null::delivery_state)) as st(state)
      order by s.name, st.state`,
    [cap],
  );
  const bySubscription = new Map<string, SubscriptionCounts>();
  for (const r of rows) {
    let entry = bySubscription.get(r.name);
    if (!entry) {
      entry = { subscription: r.name, enabled: r.enabled, counts: {} };
      bySubscription.set(r.name, entry);
    }
    entry.counts[r.state] = r.n;
  }
  return [...bySubscription.values()];
}

// The pending delivery created first (ids grow with creation), by deliveries_pending_id.
// Delayed messages count too: a delivery waiting for its deliverAt is pending.
export async function oldestPending(db: Db): Promise<OldestPending | null> {
  const { rows } = await db.query(
    `select d.message_id, s.name, d.created_at, extract(epoch from now() - d.created_at)::float8 as age
       from deliveries d join subscriptions s on s.id = d.subscription_id
      where d.state = 'pending' order by d.id limit 1`,
  );
  const r = rows[0];
  if (!r) return null;
  return { messageId: r.message_id, subscription: r.name, createdAt: (r.created_at as Date).toISOString(), ageSeconds: Math.max(0, Math.round(r.age)) };
}

// $1 the first minute of the window. Messages accepted per minute (messages_created_brin)
// and attempts per minute by outcome (attempts_started_brin): delivered, failed (will be
// retried) and dead. Minutes without any are filled with zeros.
export async function throughputPerMinute(db: Db, minutes: number, now = new Date()): Promise<MinuteCounts[]> {
  const end = Math.floor(now.getTime() / 60_000) * 60_000;
  const start = new Date(end - (minutes - 1) * 60_000);
  const { rows } = await db.query<{ minute: Date; kind: string; n: number }>(
    `select date_trunc('minute', created_at) as minute, 'accepted' as kind, count(*)::int as n
       from messages where created_at >= $1 group by 1
     union all
     select date_trunc('minute', started_at), outcome, count(*)::int
       from attempts where started_at >= $1 group by 1, 2`,
    [start],
  );
  const series: MinuteCounts[] = [];
  const index = new Map<number, MinuteCounts>();
  for (let t = start.getTime(); t <= end; t += 60_000) {
    const entry = { minute: new Date(t).toISOString(), accepted: 0, delivered: 0, failed: 0, dead: 0 };
    series.push(entry);
    index.set(t, entry);
  }
  for (const r of rows) {
    const entry = index.get(r.minute.getTime());
    if (entry && (r.kind === "accepted" || r.kind === "delivered" || r.kind === "failed" || r.kind === "dead")) entry[r.kind] += r.n;
  }
  return series;
}
