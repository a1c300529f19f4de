import type { Db } from "./db.ts";
import { COUNT_CAP } from "./stats.ts";

/**
 * The questions /metrics asks the database on each scrape. Each is answered from a small partial
 * index (alerts_one_open, messages_in_doubt, deliveries_subscription), so a scrape
 * costs the same on a table of a million deliveries as on an empty one; counts stop at COUNT_CAP.
 */

// Open alerts per condition, from alerts_one_open (one open alert per condition and subject: a
// handful of rows, however many deliveries died).
export async function countOpenAlertsByCondition(db: Db): Promise<Array<{ condition: string; count: number }>> {
  const { rows } = await db.query<{ condition: string; n: number }>(
    "select condition, count(*)::int as n from alerts where resolved_at is null group by condition order by condition",
  );
  return rows.map((r) => ({ condition: r.condition, count: r.n }));
}

// $1 cap. Prepared messages whose check-backs ran out, by messages_in_doubt.
export async function countInDoubt(db: Db, cap = COUNT_CAP): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    "select count(*)::int as n from (select 1 from messages where state = 'prepared' and in_doubt_at is not null limit $1) capped",
    [cap],
  );
  return rows[0]!.n;
}

// Per subscription, how long its oldest pending delivery has waited since it was created (0 when
// none waits): one probe each of deliveries_subscription (subscription, state, id), for the first
// entry at or after (subscription, pending, 0), which is the subscription's oldest pending one when
// it is a pending one of the subscription at all. Asked as `subscription_id = $1 and state =
// 'pending' order by id` instead, the planner walked deliveries_pending_id and, for a
// subscription with nothing pending, read every other one's pending entries (110 ms a scrape
// with 200,000 pending).
export async function oldestPendingBySubscription(db: Db): Promise<Array<{ subscription: string; seconds: number }>> {
  const { rows } = await db.query<{ name: string; age: number | null }>(
    `select s.name, (select case when d.subscription_id = s.id and d.state = 'pending'
                                 then greatest(0, extract(epoch from now() - d.created_at))::float8 end
                       from deliveries d where (d.subscription_id, d.state, d.id) >= (s.id, 'pending', 0)
                      order by d.subscription_id, d.state, d.id limit 1) as age
       from subscriptions s order by s.name`,
  );
  return rows.map((r) => ({ subscription: r.name, seconds: r.age ?? 0 }));
}
