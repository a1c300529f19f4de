import type { ClaimBatch } from "../domain/delivery.ts";
import { bucketTake, type Limits } from "../domain/subscriptionLimits.ts";
import type { Db } from "./db.ts";

/**
 * Claims up to `want` due deliveries of one subscription within its limits across all nodes.
 * Under the subscription's health row lock (so the claims of all nodes for it go one at a time):
 * the token bucket is refilled and drawn from (`rateLimit`), the deliveries it has leased (in
 * flight or held in a node's memory, leases not yet ended) are counted against `maxInFlight`,
 * then `claim` takes that many on another connection and commits before the lock is let go, so
 * the next claimer counts them. Answers what was claimed and, when the bucket ran dry, how long
 * until it holds a token again.
 */
export async function claimWithinLimits(
  db: Db,
  subscriptionId: number,
  limits: Limits,
  want: number,
  claim: (n: number) => Promise<ClaimBatch>,
): Promise<{ batch: ClaimBatch; waitMs: number | null }> {
  const tx = await db.connect();
  try {
    await tx.query("begin");
    await tx.query({
      name: "limits_row",
      text: "insert into subscription_health (subscription_id) values ($1) on conflict do nothing",
      values: [subscriptionId],
    });
    await tx.query({ name: "limits_lock", text: "select 1 from subscription_health where subscription_id = $1 for update", values: [subscriptionId] });
    // A statement after the lock: its snapshot sees the leases of the claim before it.
    const { rows } = await tx.query({
      name: "limits_read",
      text: `select clock_timestamp() as at, h.tokens, extract(epoch from clock_timestamp() - h.tokens_at) * 1000 as elapsed_ms,
                    case when $2 then (select count(*)::int from deliveries d
                                        where d.subscription_id = $1 and d.state = 'pending' and d.lease_owner is not null and d.next_attempt_at > now())
                    else 0 end as leased
               from subscription_health h where h.subscription_id = $1`,
      values: [subscriptionId, limits.maxInFlight !== null],
    });
    const row = rows[0];
    const take = bucketTake(limits, want, row.tokens, row.elapsed_ms === null ? null : Number(row.elapsed_ms), row.leased);
    let batch: ClaimBatch = [];
    if (take.n > 0) batch = await claim(take.n);
    const after = take.tokens === null ? null : take.tokens - batch.length;
    if (after !== null) {
      await tx.query({
        name: "limits_tokens",
        text: "update subscription_health set tokens = $2, tokens_at = $3 where subscription_id = $1",
        values: [subscriptionId, after, row.at],
      });
    }
    await tx.query("commit");
    const waitMs = after !== null && limits.rateLimit !== null && after < 1 ? Math.ceil(((1 - after) / limits.rateLimit) * 1000) : null;
    return { batch, waitMs };
  } catch (error) {
    await tx.query("rollback").catch(() => {});
    throw error;
  } finally {
    tx.release();
  }
}
