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
    // Makes the row if need be and locks it, in one statement; the clock is read after the lock.
    const { rows } = await tx.query({
      name: "limits_lock",
      text: `insert into subscription_health as h (subscription_id) values ($1)
             on conflict (subscription_id) do update set tokens = h.tokens
             returning clock_timestamp()::text as at, h.tokens, extract(epoch from clock_timestamp() - h.tokens_at) * 1000 as elapsed_ms`,
      values: [subscriptionId],
    });
    const row = rows[0];
    let leased = 0;
    if (limits.maxInFlight !== null) {
      // A statement after the lock: its snapshot sees the leases of the claim before it.
      const counted = await tx.query({
        name: "limits_leased",
        text: `select count(*)::int as n from deliveries
                where subscription_id = $1 and state = 'pending' and lease_owner is not null and next_attempt_at > now()`,
        values: [subscriptionId],
      });
      leased = counted.rows[0].n;
    }
    const take = bucketTake(limits, want, row.tokens, row.elapsed_ms === null ? null : Number(row.elapsed_ms), leased);
    let batch: ClaimBatch = [];
    if (take.n > 0) batch = await claim(take.n);
    const after = take.tokens === null ? null : take.tokens - batch.length;
    // Only a draw is written: a bucket left alone refills from its last draw just the same. The
    // time goes back as the database's own text, to the microsecond (a Date would round it down,
    // and each claim would gain up to a millisecond's worth of tokens).
    if (after !== null && batch.length > 0) {
      await tx.query({
        name: "limits_tokens",
        text: "update subscription_health set tokens = $2, tokens_at = $3::timestamptz where subscription_id = $1",
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
