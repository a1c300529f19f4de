import { storableText } from "../domain/storableText.ts";
import { ALERT_CONDITIONS } from "../domain/alerts.ts";
import { nextStepSql, raiseAlertsSql } from "./alertRaise.ts";
import { inTransaction, type Db } from "./db.ts";

/**
 * The SET list of a re-send: pending, on a new retry cycle, history kept. A delivery whose
 * attempt is in flight (leased, lease not expired) keeps its lease and due time, so no second
 * attempt starts beside it; it is marked resend_due and the attempt's result decides: delivered
 * stays delivered, failed or dead becomes due at once on the fresh cycle (RECORD_SQL).
 */
const RESEND_SET = `state = 'pending', retry_base = attempts, first_attempt_at = null,
              delivered_at = null, dead_at = null, dead_reason = null, outcome = null, outcome_at = null, outcome_error = null,
              resend_due = (lease_owner is not null and next_attempt_at > now()),
              next_attempt_at = case when lease_owner is not null and next_attempt_at > now() then next_attempt_at else now() end,
              lease_owner = case when next_attempt_at > now() then lease_owner end`;

/** Which deliveries a re-send takes, and what its statement answers. */
export interface ResendSelector {
  /** CTEs the selector reads (`name as (…)`, comma-separated), placed before it. */
  with?: string;
  /**
   * The query choosing the deliveries: it returns their `id` and `message_day`. One that chooses
   * by state must lock what it returns (`for update … skip locked`), so that the state it saw is
   * still the state when they are re-sent.
   */
  picked: string;
  /** The statement's last part, its answer, which may read `counted (n)`, the number re-sent. Default: `select n from counted`. */
  answer?: string;
}

/**
 * The one statement every re-send goes through (a message, a message to one subscription, a
 * batch of a re-send job): the deliveries the selector picks become pending on a fresh cycle
 * (RESEND_SET). A subscription's delivery_dead alert is resolved once none of the deliveries that
 * died since it opened is dead any more (resolveClearedAlerts, within an alert interval).
 *
 * The picked rows are updated through the primary key, id and day, from arrays of them (`unnest
 * (array(…), array(…))`, both read from the one materialized CTE, in its order): joined to the
 * CTE instead, the planner, which does not see the selector's limit, hashed the whole deliveries
 * table for every batch (100k deliveries: 100 ms a batch of 500 instead of 20). With its day,
 * each row is probed in its own day's partition alone (pruned as the statement runs); by id
 * alone (`id = any (…)`), every day's index was probed for each.
 */
export function resendStatement(selector: ResendSelector): string {
  return `
with ${selector.with ? `${selector.with},` : ""}
picked as materialized (${selector.picked}),
resent as (
  update deliveries d
     set ${RESEND_SET}
    from unnest(array(select id from picked), array(select message_day from picked)) as p(id, day)
   where d.id = p.id and d.message_day = p.day
  returning d.message_id, d.subscription_id
), counted as (
  select count(*)::int as n from resent
)
${selector.answer ?? "select n from counted"}`;
}

// $1 message id; $2 subscription id or null (all of the message's deliveries). Not skip
// locked: a delivery whose attempt result is being written is waited for, then re-sent.
const RESEND_MESSAGE_SQL = resendStatement({
  picked: "select id, message_day from deliveries where message_id = $1 and ($2::bigint is null or subscription_id = $2)",
});

/** The statement re-sending a message's deliveries (RESEND_MESSAGE_SQL with its parameters). */
export function resendMessageQuery(messageId: string, subscriptionId: number | null): { text: string; values: unknown[] } {
  return { text: RESEND_MESSAGE_SQL, values: [messageId, subscriptionId] };
}

// Puts a message's deliveries back to pending, due now (or when the attempt in flight ends),
// starting a new retry cycle; the attempt history is kept. Returns the number re-sent.
export async function resendMessage(db: Db, messageId: string, subscriptionId: number | null): Promise<number> {
  const { rows } = await db.query(resendMessageQuery(messageId, subscriptionId));
  return rows[0].n;
}

// $1 message id; $2 subscription id or null; $3 reason. Pending deliveries become dead. The
// lease of an attempt in flight is kept: its result is no longer recorded (the row is dead), and
// a re-send before the lease ends waits for it rather than starting a second attempt beside it.
// On a subscription ordered by key, one marked dead holds its key (onDead "block"), with a
// key_blocked alert (its subscription's) as when it dies of failing, or the key goes on (onDead "skip": key_wakes).
const MARK_DEAD_SQL = `
with marked as (
  update deliveries d set state = 'dead', dead_at = now(), dead_reason = $3, resend_due = false, skipped_at = null
   where message_id = $1 and ($2::bigint is null or subscription_id = $2) and state = 'pending'
  returning d.message_id, d.subscription_id, d.order_key,
            d.order_key is not null and exists (select 1 from subscriptions s where s.id = d.subscription_id and s.on_dead = 'skip') as frees
), freed as (
  insert into key_wakes (subscription_id, order_key, message_id)
  select m.subscription_id, m.order_key, m.message_id from marked m where m.frees
), alert as (
  ${raiseAlertsSql(`
  select '${ALERT_CONDITIONS.keyBlocked}' as condition, 'subscription ' || s.name as subject, m.subscription_id, null::text as app, count(*)::int as n,
         'marked dead by an operator: the later messages of its key wait until it is re-sent, skipped or deleted' as detail,
         jsonb_agg(jsonb_build_object('messageId', m.message_id, 'at', now(), 'detail', 'marked dead by an operator')) as examples,
         '#/dead-letters?subscription=' || s.name as link, ${nextStepSql(ALERT_CONDITIONS.keyBlocked)} as next_step
    from marked m join subscriptions s on s.id = m.subscription_id
   where m.order_key is not null and not m.frees
   group by m.subscription_id, s.name`)}
)
select count(*)::int as n from marked`;

export async function markDead(db: Db, messageId: string, subscriptionId: number | null, reason: string): Promise<number> {
  const { rows } = await db.query(MARK_DEAD_SQL, [messageId, subscriptionId, storableText(reason, 1000)]);
  return rows[0].n;
}

// $1 message id. Deletes the message, and wakes the deliveries parked behind its deliveries in
// their keys (ordering "key"): a claim takes the next of each key, or parks it again if something
// else still holds the key.
const DELETE_SQL = `
with keys as (
  select subscription_id, order_key from deliveries where message_id = $1 and order_key is not null
), gone as (
  delete from messages where id = $1 returning id
), woken as (
  update deliveries d set parked = false, next_attempt_at = now()
    from keys k
   where d.subscription_id = k.subscription_id and d.order_key = k.order_key and d.parked and d.state = 'pending' and d.message_id <> $1
)
select count(*)::int as n from gone`;

/**
 * Deletes a message with its deliveries, attempts and checks (no foreign keys carry them since
 * 0027: dropping a day's partitions would otherwise check every row referring to it). The
 * message goes first: its row lock waits for a commit fanning it out or a check being logged
 * (logCheck locks the row it logs for), so the next statements, each with a fresh snapshot in
 * read committed, see what those wrote; the deliveries go before their attempts, so a result
 * landing meanwhile finds no delivery to log an attempt for.
 */
export async function deleteMessage(db: Db, messageId: string): Promise<boolean> {
  return inTransaction(db, async (tx) => {
    const { rows } = await tx.query(DELETE_SQL, [messageId]);
    if (rows[0].n === 0) return false;
    await tx.query("delete from deliveries where message_id = $1", [messageId]);
    await tx.query("delete from attempts where message_id = $1", [messageId]);
    await tx.query("delete from checks where message_id = $1", [messageId]);
    return true;
  });
}

export async function countPending(db: Db): Promise<number> {
  const { rows } = await db.query<{ n: number }>("select count(*)::int as n from deliveries where state = 'pending'");
  return rows[0]!.n;
}

// $1 subscription id. Its pending deliveries waiting for a retry become due now; the dispatcher
// takes them as it takes any due delivery. Not touched: a delivery leased right now (its attempt
// is in flight: its result decides), one parked behind an earlier delivery of its key (it is
// woken when that one finishes), and one whose message is not due yet (a delayed message's
// deliverAt is the producer's to choose). The retry cycle goes on: the attempt counts as the
// next step of the schedule, and a failure waits for the step after it.
export async function retryPendingNow(db: Db, subscriptionId: number): Promise<number> {
  const { rowCount } = await db.query(
    `update deliveries d set next_attempt_at = now()
       from messages m
      where d.subscription_id = $1 and d.state = 'pending' and d.next_attempt_at > now() and d.lease_owner is null and not d.parked
        and m.id = d.message_id and m.day = d.message_day and m.deliver_at <= now()`,
    [subscriptionId],
  );
  return rowCount ?? 0;
}
