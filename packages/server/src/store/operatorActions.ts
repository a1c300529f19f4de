import { storableText } from "../domain/storableText.ts";
import type { Db } from "./db.ts";

/**
 * The SET list of a re-send: pending, on a new retry cycle, history kept. A delivery whose
 * attempt is in flight (leased, lease not expired) keeps its lease and due time, so no second
 * attempt starts beside it; it is marked resend_due and the attempt's result decides: delivered
 * stays delivered, failed or dead becomes due at once on the fresh cycle (RECORD_SQL).
 */
export const RESEND_SET = `state = 'pending', retry_base = attempts, first_attempt_at = null,
              delivered_at = null, dead_at = null, dead_reason = null,
              resend_due = (lease_owner is not null and next_attempt_at > now()),
              next_attempt_at = case when lease_owner is not null and next_attempt_at > now() then next_attempt_at else now() end,
              lease_owner = case when next_attempt_at > now() then lease_owner end`;

// $1 message id; $2 subscription id or null (all of the message's deliveries).
// Puts deliveries back to pending, due now (or when the attempt in flight ends), starting a
// new retry cycle; the attempt history is kept. Returns the number of deliveries re-sent.
export async function resendMessage(db: Db, messageId: string, subscriptionId: number | null): Promise<number> {
  const { rows } = await db.query(
    `with upd as (
       update deliveries
          set ${RESEND_SET}
        where message_id = $1 and ($2::bigint is null or subscription_id = $2)
       returning subscription_id
     ), resolved as (
       update alerts set resolved_at = now()
        where kind = 'delivery_dead' and message_id = $1 and resolved_at is null
          and subscription_id in (select subscription_id from upd)
     )
     select count(*)::int as n from upd`,
    [messageId, subscriptionId],
  );
  return rows[0].n;
}

// $1 message id; $2 subscription id or null; $3 reason. Pending deliveries become dead. The
// lease of an attempt in flight is kept: its result is no longer recorded (the row is dead), and
// a re-send before the lease ends waits for it rather than starting a second attempt beside it.
export async function markDead(db: Db, messageId: string, subscriptionId: number | null, reason: string): Promise<number> {
  const { rowCount } = await db.query(
    `update deliveries set state = 'dead', dead_at = now(), dead_reason = $3, resend_due = false
      where message_id = $1 and ($2::bigint is null or subscription_id = $2) and state = 'pending'`,
    [messageId, subscriptionId, storableText(reason, 1000)],
  );
  return rowCount ?? 0;
}

export async function deleteMessage(db: Db, messageId: string): Promise<boolean> {
  const { rowCount } = await db.query("delete from messages where id = $1", [messageId]);
  return (rowCount ?? 0) > 0;
}

// $1 subscription id; $2 batch size. Re-sends one batch of a subscription's dead deliveries,
// oldest first; each batch is its own short transaction so a large backlog never holds locks long.
export async function resendDeadBatch(db: Db, subscriptionId: number, batchSize: number): Promise<number> {
  const { rows } = await db.query(
    `with upd as (
       update deliveries d
          set ${RESEND_SET}
        where d.id in (select id from deliveries where subscription_id = $1 and state = 'dead'
                       order by id limit $2 for update skip locked)
       returning d.message_id
     ), resolved as (
       update alerts set resolved_at = now()
        where kind = 'delivery_dead' and subscription_id = $1 and resolved_at is null
          and message_id in (select message_id from upd)
     )
     select count(*)::int as n from upd`,
    [subscriptionId, batchSize],
  );
  return rows[0].n;
}

export async function countPending(db: Db): Promise<number> {
  const { rows } = await db.query<{ n: number }>("select count(*)::int as n from deliveries where state = 'pending'");
  return rows[0]!.n;
}
