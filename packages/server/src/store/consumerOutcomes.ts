import { ALERT_CONDITIONS as C, ALERT_EXAMPLES } from "../domain/alerts.ts";
import { completedAnnouncement, OUTCOME_ERROR_CHARS, type CompletedMessage, type OutcomeReport } from "../domain/outcome.ts";
import { storableText } from "../domain/storableText.ts";
import { nextStepSql, raiseAlertsSql } from "./alertRaise.ts";
import { inTransaction, type Db, type Tx } from "./db.ts";
import { insertMessages } from "./insertMessages.ts";

/** Who reports: an app (for the messages it may read: its own and its read topics), or a person (any). */
export type Reporter = { app: string; readTopics: readonly string[] } | null;

// $1 the message ids of the batch. Taken first and in id order, the messages' row locks
// serialize the reports on one message, so that the completion check (COMPLETE_SQL) of the later
// report sees the earlier one's outcomes: in one statement, two reports committing together
// would each see the other's delivery as not yet applied, and neither would complete the message.
const LOCK_SQL = `select id from messages where id = any ($1::text[]) and state = 'committed' order by id for update`;

// $1 the reports as one JSON array [{s: subscription, m: message id, o: outcome, e: error, g: gave up}],
// one per delivery; $2 the reporting app (null: a person, any delivery); $3 the app's read topics.
// An outcome is not overwritten by a lesser one (applied > duplicate > failed): a message the inbox
// holds stays applied whatever a later redelivery says. A failed outcome of a broker consumer that
// gave up (g) makes its delivery dead, "consumer gave up: <error>", when the broker had it
// (delivered): a dead letter like any other, counted into the subscription's delivery_dead alert,
// and re-sent from there into the broker. Answers the matched reports and the message ids touched.
const RECORD_SQL = `
with input as (
  select * from json_to_recordset($1::json) as t(s text, m text, o consumer_outcome, e text, g boolean)
), target as (
  select d.id, i.o, i.e, i.g and i.o = 'failed' and d.state = 'delivered' as gives_up,
         (d.outcome is null or array_position(array['failed','duplicate','applied']::consumer_outcome[], i.o)
                              >= array_position(array['failed','duplicate','applied']::consumer_outcome[], d.outcome)) as better
    from input i
    join subscriptions s on s.name = i.s
    join deliveries d on d.subscription_id = s.id and d.message_id = i.m
    join messages m on m.id = d.message_id and m.day = d.message_day
   where m.state = 'committed' and ($2::text is null or m.app = $2 or m.topic = any ($3::text[]))
), upd as (
  update deliveries d
     set outcome = t.o, outcome_at = now(), outcome_error = case when t.o = 'failed' then t.e end,
         state = case when t.gives_up then 'dead' else d.state end::delivery_state,
         delivered_at = case when t.gives_up then null else d.delivered_at end,
         dead_at = case when t.gives_up then now() else d.dead_at end,
         dead_reason = case when t.gives_up then 'consumer gave up: ' || coalesce(t.e, 'no error given') else d.dead_reason end
    from target t
   where d.id = t.id and t.better
  returning d.id, d.message_id, d.subscription_id, t.gives_up, d.dead_reason
), dead as (
  select upd.subscription_id, count(*)::int as n, (array_agg(upd.dead_reason order by upd.id desc))[1] as detail,
         to_jsonb((array_agg(jsonb_build_object('messageId', upd.message_id, 'deliveryId', upd.id, 'at', now(), 'detail', upd.dead_reason)
                   order by upd.id desc))[1:${ALERT_EXAMPLES}]) as examples
    from upd where upd.gives_up group by upd.subscription_id
), raised as (
  ${raiseAlertsSql(`
  select '${C.deliveryDead}' as condition, 'subscription ' || s.name as subject, dead.subscription_id, null::text as app, dead.n, dead.detail,
         dead.examples, '#/dead-letters?subscription=' || s.name as link, ${nextStepSql(C.deliveryDead)} as next_step
    from dead join subscriptions s on s.id = dead.subscription_id`)}
)
select (select count(*)::int from target) as matched, (select count(*)::int from upd where gives_up) as gave_up,
       coalesce((select array_agg(distinct message_id) from upd), '{}') as touched`;

// $1 message ids. Those whose every delivery was reported applied or duplicate become completed
// (once: completed_at is not moved by later reports or re-sends); answers them.
const COMPLETE_SQL = `
update messages m set completed_at = now()
 where m.id = any ($1::text[]) and m.completed_at is null and m.state = 'committed'
   and exists (select 1 from deliveries d where d.message_id = m.id and d.message_day = m.day)
   and not exists (select 1 from deliveries d where d.message_id = m.id and d.message_day = m.day and (d.outcome is null or d.outcome = 'failed'))
returning m.id, m.app, m.topic, m.completed_at`;

export interface RecordedOutcomes {
  /** Reports that named a delivery the reporter may report on. */
  matched: number;
  /** Deliveries made dead because their consumer gave up. */
  gaveUp: number;
  /** Messages completed by these reports. */
  completed: CompletedMessage[];
}

/** Records a batch of reports (one per delivery, see lastPerDelivery) in the caller's transaction. */
export async function recordOutcomes(tx: Tx, reporter: Reporter, reports: readonly OutcomeReport[]): Promise<RecordedOutcomes> {
  const ids = [...new Set(reports.map((r) => r.messageId))];
  await tx.query(LOCK_SQL, [ids]);
  const rows = reports.map((r) => ({
    s: r.subscription,
    m: r.messageId,
    o: r.outcome,
    e: r.error === null ? null : storableText(r.error, OUTCOME_ERROR_CHARS),
    g: r.gaveUp,
  }));
  const { rows: recorded } = await tx.query(RECORD_SQL, [JSON.stringify(rows), reporter?.app ?? null, reporter?.readTopics ?? []]);
  const { matched, gave_up: gaveUp, touched } = recorded[0] as { matched: number; gave_up: number; touched: string[] };
  if (touched.length === 0) return { matched, gaveUp, completed: [] };
  const { rows: done } = await tx.query(COMPLETE_SQL, [touched]);
  return {
    matched,
    gaveUp,
    completed: done.map((r) => ({
      id: r.id as string,
      app: r.app as string | null,
      topic: r.topic as string,
      completedAt: (r.completed_at as Date).toISOString(),
    })),
  };
}

/**
 * Records a batch of reports in a transaction of its own, with the `message.completed`
 * announcements (on `completedTopic`, unless null) of the app messages they completed: in the same
 * transaction, so that a completed message is announced exactly once. The announcements'
 * deliveries are left to a claim; `announced` says how many there were.
 */
export async function reportOutcomes(
  db: Db,
  reporter: Reporter,
  reports: readonly OutcomeReport[],
  completedTopic: string | null,
): Promise<RecordedOutcomes & { announced: number }> {
  return inTransaction(db, async (tx) => {
    const result = await recordOutcomes(tx, reporter, reports);
    const announced =
      completedTopic === null ? [] : result.completed.flatMap((m) => (m.app === null ? [] : [completedAnnouncement(completedTopic, { ...m, app: m.app })]));
    if (announced.length > 0) await insertMessages(tx, null, 0, announced);
    return { ...result, announced: announced.length };
  });
}
