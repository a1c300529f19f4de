import { storedCircuitPolicy, type CircuitPolicy } from "../domain/circuitBreaker.ts";
import type { RetryPolicy } from "../domain/retrySchedule.ts";
import type { Endpoint, OnDead, Ordering, SubscriptionRow } from "../domain/subscription.ts";
import type { Db } from "./db.ts";

const toSubscription = (r: Record<string, unknown>): SubscriptionRow => ({
  id: r.id as number,
  name: r.name as string,
  topic: r.topic as string,
  tags: r.tags as string[] | null,
  endpoint: r.endpoint as Endpoint,
  secret: r.secret as string,
  retry: r.retry as RetryPolicy,
  enabled: r.enabled as boolean,
  maxInFlight: (r.max_in_flight as number | null) ?? null,
  rateLimit: (r.rate_limit as number | null) ?? null,
  ordering: r.ordering as Ordering,
  onDead: r.on_dead as OnDead,
  circuit: storedCircuitPolicy(r.circuit),
  // A bigint, which pg answers as text.
  pendingAgeAlertMs: r.pending_age_alert_ms === null || r.pending_age_alert_ms === undefined ? null : Number(r.pending_age_alert_ms),
  createdAt: (r.created_at as Date).toISOString(),
  updatedAt: (r.updated_at as Date).toISOString(),
});

/** Subscription changes are announced so every node's in-memory copy follows at once. */
export const SUBSCRIPTIONS_CHANNEL = "tidings_subscriptions";
const announce = (db: Db) => db.query(`select pg_notify('${SUBSCRIPTIONS_CHANNEL}', '')`);

export type NewSubscription = Omit<SubscriptionRow, "id" | "createdAt" | "updatedAt">;

/** Returns null when the name is taken. */
export async function createSubscription(db: Db, s: NewSubscription): Promise<SubscriptionRow | null> {
  const { rows } = await db.query(
    `insert into subscriptions (name, topic, tags, endpoint, secret, retry, enabled, max_in_flight, ordering, on_dead, circuit, rate_limit, pending_age_alert_ms)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) on conflict (name) do nothing returning *`,
    [s.name, s.topic, s.tags, s.endpoint, s.secret, s.retry, s.enabled, s.maxInFlight, s.ordering, s.onDead, s.circuit, s.rateLimit, s.pendingAgeAlertMs],
  );
  if (!rows[0]) return null;
  await announce(db);
  return toSubscription(rows[0]);
}

export async function listSubscriptions(db: Db): Promise<SubscriptionRow[]> {
  const { rows } = await db.query("select * from subscriptions order by name");
  return rows.map(toSubscription);
}

export async function getSubscription(db: Db, name: string): Promise<SubscriptionRow | null> {
  const { rows } = await db.query("select * from subscriptions where name = $1", [name]);
  return rows[0] ? toSubscription(rows[0]) : null;
}

export interface SubscriptionPatch {
  topic?: string | undefined;
  tags?: string[] | null | undefined;
  endpoint?: Endpoint | undefined;
  retry?: RetryPolicy | undefined;
  enabled?: boolean | undefined;
  secret?: string | undefined;
  /** null: back to the service default. */
  maxInFlight?: number | null | undefined;
  ordering?: Ordering | undefined;
  onDead?: OnDead | undefined;
  /** null: no breaker. */
  circuit?: CircuitPolicy | null | undefined;
  /** null: no limit. */
  rateLimit?: number | null | undefined;
  /** null: back to the service default; 0: no pending-age alert. */
  pendingAgeAlertMs?: number | null | undefined;
}

export async function updateSubscription(db: Db, name: string, p: SubscriptionPatch): Promise<SubscriptionRow | null> {
  const { rows } = await db.query(
    `update subscriptions set
         topic = coalesce($2, topic),
         tags = case when $3 then $4 else tags end,
         endpoint = coalesce($5, endpoint),
         retry = coalesce($6, retry),
         enabled = coalesce($7, enabled),
         secret = coalesce($8, secret),
         max_in_flight = case when $9 then $10 else max_in_flight end,
         ordering = coalesce($11, ordering),
         on_dead = coalesce($12, on_dead),
         circuit = case when $13 then $14::jsonb else circuit end,
         rate_limit = case when $15 then $16::float8 else rate_limit end,
         pending_age_alert_ms = case when $17 then $18::bigint else pending_age_alert_ms end,
         updated_at = now()
       where name = $1 returning *`,
    [
      name,
      p.topic ?? null,
      p.tags !== undefined,
      p.tags ?? null,
      p.endpoint ?? null,
      p.retry ?? null,
      p.enabled ?? null,
      p.secret ?? null,
      p.maxInFlight !== undefined,
      p.maxInFlight ?? null,
      p.ordering ?? null,
      p.onDead ?? null,
      p.circuit !== undefined,
      p.circuit ? JSON.stringify(p.circuit) : null,
      p.rateLimit !== undefined,
      p.rateLimit ?? null,
      p.pendingAgeAlertMs !== undefined,
      p.pendingAgeAlertMs ?? null,
    ],
  );
  if (!rows[0]) return null;
  if (p.ordering === "none") await unorder(db, rows[0].id as number);
  else if (p.onDead === "skip") await unblockDead(db, rows[0].id as number);
  await announce(db);
  return toSubscription(rows[0]);
}

/**
 * A subscription no longer ordered: its deliveries still waiting lose their place in a key, so
 * they go out in any order like the rest (and are due at once if they were parked behind another).
 * Switching to "key" orders the deliveries created from then on.
 */
async function unorder(db: Db, subscriptionId: number): Promise<void> {
  await db.query(
    `update deliveries set order_key = null, order_at = null,
            next_attempt_at = case when parked then now() else next_attempt_at end, parked = false
      where subscription_id = $1 and order_key is not null and state in ('pending', 'dead')`,
    [subscriptionId],
  );
}

/** onDead now "skip": the keys its dead deliveries hold go on (the next claim wakes what waits behind them). */
async function unblockDead(db: Db, subscriptionId: number): Promise<void> {
  await db.query(
    `insert into key_wakes (subscription_id, order_key, message_id)
     select subscription_id, order_key, message_id from deliveries
      where subscription_id = $1 and order_key is not null and state = 'dead' and skipped_at is null`,
    [subscriptionId],
  );
}

export async function deleteSubscription(db: Db, name: string): Promise<boolean> {
  const { rows } = await db.query("delete from subscriptions where name = $1 returning id", [name]);
  if (rows.length === 0) return false;
  await announce(db);
  return true;
}
