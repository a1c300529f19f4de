import type { ClaimBatch } from "../domain/delivery.ts";
import type { Db } from "./db.ts";
import { claimToken, toLeased } from "./deliveryAttempts.ts";
import { PARK_MS } from "./fanOut.ts";
import { TODAY_UTC } from "./retention.ts";

/** Arbitrary constant naming the ordered claims' lock among other advisory locks. */
const ORDERED_CLAIM_LOCK = 7_400_012;
// Wakes, for each key whose delivery stopped holding it since the last claim (left in key_wakes by
// RECORD_SQL, a skip, or a change of onDead), the key's next pending delivery if it was parked
// (the subscription's key_blocked alert is resolved once no key is held: resolveClearedAlerts). A woken delivery is due
// from its place (order_at, in the past): the claim that follows reads it first, before the
// deliveries that have not been looked at yet. The woken rows are found by id and day, as
// re-sends find theirs (resendStatement): each in its own day's partition alone.
const WAKE_SQL = `
with freed as (
  delete from key_wakes returning subscription_id, order_key, message_id
), nxt as materialized (
  select n.id, n.message_day
    from (select distinct subscription_id, order_key from freed) k
   cross join lateral (select e.id, e.message_day from deliveries e
                        where e.subscription_id = k.subscription_id and e.order_key = k.order_key and e.state = 'pending'
                          and e.message_day <= ${TODAY_UTC}
                        order by e.order_at, e.id limit 1) n
), woken as (
  update deliveries d set parked = false, next_attempt_at = least(d.order_at, now())
    from unnest(array(select id from nxt), array(select message_day from nxt)) as w(id, day)
   where d.id = w.id and d.message_day = w.day and d.parked and d.state = 'pending'
)
select count(*)::int as n from freed`;

// $1 lease token of this claim; $2 lease ms; $3 max rows; $4 ids of enabled subscriptions; $5 park ms.
// CLAIM_SQL for when some subscription is ordered by key. A delivery with a place in a key
// (order_key) is taken only when it is its key's head: no delivery of the key before it (by
// order_at, then id) is pending, or dead and holding the key (not skipped, onDead "block"), and
// no other delivery of the key is leased. One that waits is parked (left out of claims until
// woken). Both checks are probes of partial indexes (deliveries_key_order, _leased), so claims
// stay fast with many keys and deep backlogs; each says the key's deliveries are of no later day
// than today (TODAY_UTC), so it leaves the days created ahead out. Answers the rows taken and how
// many rows it read.
const CLAIM_ORDERED_SQL = `
with due as (
  select d.id, d.message_day,
         d.order_key is not null and (
           exists (select 1 from deliveries e
                    where e.subscription_id = d.subscription_id and e.order_key = d.order_key and e.message_day <= ${TODAY_UTC}
                      and (e.order_at, e.id) < (d.order_at, d.id)
                      and (e.state = 'pending'
                           or (e.state = 'dead' and e.skipped_at is null
                               and exists (select 1 from subscriptions s where s.id = e.subscription_id and s.on_dead = 'block'))))
           or exists (select 1 from deliveries e
                       where e.subscription_id = d.subscription_id and e.order_key = d.order_key and e.id <> d.id and e.message_day <= ${TODAY_UTC}
                         and e.state = 'pending' and e.lease_owner is not null and e.next_attempt_at > now())) as waits
  from deliveries d
  where d.state = 'pending' and d.next_attempt_at <= now() and d.subscription_id = any ($4::bigint[])
  order by d.next_attempt_at
  limit $3
  for update of d skip locked
), parked as (
  update deliveries d set parked = true, next_attempt_at = now() + make_interval(secs => $5::float8 / 1000)
    from due where d.id = due.id and d.message_day = due.message_day and due.waits
), taken as (
  update deliveries d
     set lease_owner = $1, resend_due = false, parked = false, next_attempt_at = now() + make_interval(secs => $2::float8 / 1000)
    from due, messages m
   where d.id = due.id and d.message_day = due.message_day and not due.waits and m.id = d.message_id and m.day = d.message_day
  returning d.id as delivery_id, d.message_day::text as message_day, d.subscription_id, d.attempts, d.retry_base, d.first_attempt_at,
            m.id, m.topic, m.tag, m.key, m.created_at, m.payload::text as payload_json, m.headers::text as headers_json,
            m.traceparent, m.tracestate
)
select (select count(*)::int from due) as scanned, taken.* from (select 1) one left join taken on true`;

/**
 * Claims due deliveries when some subscription is ordered by key. Ordered claims run one at a
 * time across all nodes (a transaction-scoped advisory lock, taken before the statements'
 * snapshots): each sees every lease the claims before it took, so no two nodes can both take a
 * head of the same key. The claim is the only way a keyed delivery of an ordered subscription
 * gets leased (fanOut never leases one), which makes "at most one in flight per key" hold across
 * processes; a crashed node's lease ends by itself and its delivery, still the head, is taken again.
 * `more`: the claim read as many rows as it could take (some parked), so more may be due.
 */
export async function claimOrderedDeliveries(db: Db, nodeId: string, leaseMs: number, limit: number, subscriptionIds: readonly number[]): Promise<ClaimBatch> {
  if (subscriptionIds.length === 0 || limit <= 0) return [];
  const lease = claimToken(nodeId);
  const client = await db.connect();
  // biome-ignore lint/suspicious/noExplicitAny: rows of pg's untyped result
  let rows: any[];
  try {
    // One round trip for the transaction's start and its lock. A claim need not wait for its
    // commit to reach the disk: lost in a database crash, its leases, parks and wakes are simply
    // undone (the deliveries are due again, and are sent again at most once more, in order), as
    // when a node dies. Waiting for it doubled the flushes per delivery of a single key.
    await client.query(`begin; set local synchronous_commit = off; select pg_advisory_xact_lock(${ORDERED_CLAIM_LOCK})`);
    await client.query({ name: "wake_unblocked", text: WAKE_SQL });
    const claimed = await client.query({ name: "claim_ordered", text: CLAIM_ORDERED_SQL, values: [lease, leaseMs, limit, subscriptionIds, PARK_MS] });
    await client.query("commit");
    rows = claimed.rows;
  } catch (error) {
    await client.query("rollback").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
  const batch: ClaimBatch = rows.filter((row) => row.delivery_id !== null).map((row) => toLeased(row, lease));
  batch.more = (rows[0]?.scanned ?? 0) >= limit;
  return batch;
}
