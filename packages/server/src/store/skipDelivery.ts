import type { Db } from "./db.ts";

export type SkipOutcome = "skipped" | "not_dead" | "not_found";

// $1 delivery id. A dead delivery is marked skipped: it no longer holds its key (ordering "key",
// onDead "block"), and the next claim wakes the delivery behind it (key_wakes). Its subscription's
// delivery_dead and key_blocked alerts are resolved once nothing they count is left
// (resolveClearedAlerts). Skipping again is a no-op.
const SKIP_SQL = `
with skipped as (
  update deliveries set skipped_at = coalesce(skipped_at, now())
   where id = $1 and state = 'dead'
  returning message_id, subscription_id, order_key
), freed as (
  insert into key_wakes (subscription_id, order_key, message_id)
  select subscription_id, order_key, message_id from skipped where order_key is not null
)
select (select count(*)::int from skipped) as skipped, (select state::text from deliveries where id = $1) as state`;

export async function skipDelivery(db: Db, id: number): Promise<SkipOutcome> {
  const { rows } = await db.query(SKIP_SQL, [id]);
  if (rows[0].skipped > 0) return "skipped";
  return rows[0].state === null ? "not_found" : "not_dead";
}
