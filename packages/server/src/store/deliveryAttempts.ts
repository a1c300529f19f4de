import type { AttemptOutcome, AttemptResult, Lease, LeasedDelivery } from "../domain/delivery.ts";
import { ALERT_CONDITIONS as C, ALERT_EXAMPLES } from "../domain/alerts.ts";
import { nextStepSql, raiseAlertsSql, resolvedBySystem } from "./alertRaise.ts";
import type { Db } from "./db.ts";
import { traceOfRow } from "./messageRows.ts";

let claims = 0;
/** A token unique to one claim: the node id and a counter (a row is taken at most once per claim). */
export const claimToken = (nodeId: string): string => `${nodeId}/${++claims}`;

// $1 lease token of this claim; $2 lease ms; $3 max rows; $4 ids of enabled subscriptions.
// Takes the oldest due pending deliveries nobody holds, skipping rows another node is
// taking right now, and moves their due time to the end of the lease. Deliveries with a place
// in a key (order_key) are left to the ordered claim (orderedClaim.ts): a node that does not
// know yet that a subscription became ordered cannot start them out of turn. The rows are found
// again by their whole key (id and day): one partition's probe each, not every day's.
const CLAIM_SQL = `
with due as (
  select d.id, d.message_day from deliveries d
  where d.state = 'pending' and d.next_attempt_at <= now() and d.subscription_id = any ($4::bigint[]) and d.order_key is null
  order by d.next_attempt_at
  limit $3
  for update skip locked
)
update deliveries d
   set lease_owner = $1, resend_due = false, next_attempt_at = now() + make_interval(secs => $2::float8 / 1000)
  from due, messages m
 where d.id = due.id and d.message_day = due.message_day and m.id = d.message_id and m.day = d.message_day
returning d.id as delivery_id, d.message_day::text as message_day, d.subscription_id, d.attempts, d.retry_base, d.first_attempt_at,
          m.id, m.topic, m.tag, m.key, m.created_at, m.payload::text as payload_json, m.headers::text as headers_json,
          m.traceparent, m.tracestate`;

export async function claimDueDeliveries(
  db: Db,
  nodeId: string,
  leaseMs: number,
  limit: number,
  subscriptionIds: readonly number[],
): Promise<LeasedDelivery[]> {
  if (subscriptionIds.length === 0 || limit <= 0) return [];
  const lease = claimToken(nodeId);
  const { rows } = await db.query({
    name: "claim_due_deliveries",
    text: CLAIM_SQL,
    values: [lease, leaseMs, limit, subscriptionIds],
  });
  return rows.map((row) => toLeased(row, lease));
}

/** A row of a claim (CLAIM_SQL's returning list) as the delivery the claim's lease holds. */
// biome-ignore lint/suspicious/noExplicitAny: a row of pg's untyped result
export function toLeased(row: any, lease: string): LeasedDelivery {
  return {
    lease,
    deliveryId: row.delivery_id,
    messageDay: row.message_day,
    subscriptionId: row.subscription_id,
    attempt: row.attempts + 1,
    attemptInCycle: row.attempts - row.retry_base + 1,
    firstAttemptAt: row.first_attempt_at,
    // Payload and headers as the text jsonb prints: the envelope is built around them, never re-parsed.
    message: {
      id: row.id,
      topic: row.topic,
      tag: row.tag,
      key: row.key,
      createdAt: (row.created_at as Date).toISOString(),
      payloadJson: row.payload_json,
      headersJson: row.headers_json,
      trace: traceOfRow(row),
    },
  };
}

// Parallel arrays $1..$14, one element per attempt; $1 the lease tokens the attempts ran under, $14
// the deliveries' days. Writes a batch of attempt results in one statement. Only a row still held
// by the attempt's own claim is changed (a lease that expired and was claimed again, even by this
// node, is not this attempt's to finish), and each change is logged in attempts. Deliveries gone
// dead count into their subscription's one delivery_dead alert (raised if none is open), and those
// that hold their key (ordering "key", onDead "block") into its key_blocked alert; a delivery that
// succeeds resolves its subscription's delivery_dead alert (a probe of alerts_open_by_subscription
// per subscription of the batch, none when nothing is open). One that stops holding its key
// (delivered, or dead with onDead "skip") leaves its key in key_wakes, for the next claim to wake
// what waits behind it. A re-send asked while the attempt was in flight (resend_due) turns failed
// or dead into due-now on a fresh cycle. Returns the outcome of the rows written.
// The lease is matched as coalesce(lease_owner, '') (a token is never empty): written as
// lease_owner = token, the planner may prove the partial index deliveries_leased_by_key usable
// and, its statistics taken while nothing was leased, read every leased row of a partition for
// each result instead of probing by id. Seen on the partitioned table (0027): the deliver bench's
// results took 325 ms a statement instead of 5, releases 2.4 s instead of 21 ms.
// A row is found by its whole key, id and day (the claim or the fan-out that leased it gave the
// day): the probe goes to its day's partition alone (pruned as the statement runs), where by id
// alone it went to every day's index, each one more probe per result as retention grows.
const RECORD_SQL = `
with r as (
  select * from unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::int[], $6::text[], $7::timestamptz[], $8::int[],
                       $9::int[], $10::text[], $11::timestamptz[], $12::text[], $13::timestamptz[], $14::date[])
    as t(lease, id, message_id, subscription_id, attempt, outcome, started_at, latency_ms, status_code, error, next_at, dead_reason, first_at, day)
), upd as (
  update deliveries d
     set state = case when r.outcome = 'delivered' then 'delivered' when r.outcome = 'dead' and not d.resend_due then 'dead' else 'pending' end::delivery_state,
         attempts = r.attempt,
         lease_owner = null,
         resend_due = false,
         next_attempt_at = case when d.resend_due and r.outcome <> 'delivered' then now() else coalesce(r.next_at, d.next_attempt_at) end,
         retry_base = case when d.resend_due and r.outcome <> 'delivered' then r.attempt else d.retry_base end,
         first_attempt_at = case when d.resend_due and r.outcome <> 'delivered' then null else coalesce(d.first_attempt_at, r.first_at) end,
         last_attempt_at = r.started_at,
         last_status = r.status_code,
         last_error = r.error,
         delivered_at = case when r.outcome = 'delivered' then now() end,
         dead_at = case when r.outcome = 'dead' and not d.resend_due then now() end,
         dead_reason = case when r.outcome = 'dead' and not d.resend_due then r.dead_reason end,
         skipped_at = case when r.outcome = 'dead' and not d.resend_due then null else d.skipped_at end
    from r
   where d.id = r.id and d.message_day = r.day and d.state = 'pending' and coalesce(d.lease_owner, '') = r.lease
  returning d.id, d.subscription_id, d.order_key, d.message_id, d.message_day, case d.state when 'pending' then 'failed' else d.state::text end as outcome,
            case when d.order_key is null or d.state = 'pending' then false
                 when d.state = 'delivered' then true
                 else exists (select 1 from subscriptions s where s.id = d.subscription_id and s.on_dead = 'skip') end as frees
), freed as (
  insert into key_wakes (subscription_id, order_key, message_id)
  select upd.subscription_id, upd.order_key, upd.message_id from upd where upd.frees
), log as (
  insert into attempts (delivery_id, message_id, message_day, subscription_id, attempt, started_at, latency_ms, status_code, error, outcome)
  select r.id, r.message_id, upd.message_day, r.subscription_id, r.attempt, r.started_at, r.latency_ms, r.status_code, r.error, upd.outcome
  from r join upd using (id)
), dead as (
  select upd.subscription_id, count(*)::int as n, count(*) filter (where upd.order_key is not null and not upd.frees)::int as blocked,
         (array_agg(coalesce(r.dead_reason, 'dead') || coalesce(' (last error: ' || r.error || ')', '') order by r.id desc))[1] as detail,
         to_jsonb((array_agg(jsonb_build_object('messageId', r.message_id, 'deliveryId', r.id, 'at', now(),
                                                'detail', coalesce(r.dead_reason, 'dead') || coalesce(' (last error: ' || r.error || ')', '')) order by r.id desc))[1:${ALERT_EXAMPLES}]) as examples,
         to_jsonb((array_agg(jsonb_build_object('messageId', r.message_id, 'deliveryId', r.id, 'at', now(),
                                                'detail', 'dead: the later messages of its key wait') order by r.id desc)
                   filter (where upd.order_key is not null and not upd.frees))[1:${ALERT_EXAMPLES}]) as blocked_examples
  from r join upd using (id) where upd.outcome = 'dead' group by upd.subscription_id
), raised as (
  ${raiseAlertsSql(`
  select '${C.deliveryDead}' as condition, 'subscription ' || s.name as subject, dead.subscription_id, null::text as app, dead.n, dead.detail,
         dead.examples, '#/dead-letters?subscription=' || s.name as link, ${nextStepSql(C.deliveryDead)} as next_step
    from dead join subscriptions s on s.id = dead.subscription_id
  union all
  select '${C.keyBlocked}', 'subscription ' || s.name, dead.subscription_id, null, dead.blocked,
         'the later messages of its key wait until it is re-sent, skipped or deleted', dead.blocked_examples,
         '#/dead-letters?subscription=' || s.name, ${nextStepSql(C.keyBlocked)}
    from dead join subscriptions s on s.id = dead.subscription_id where dead.blocked > 0`)}
), cleared as (
  update alerts a set ${resolvedBySystem("'a delivery succeeded again'")}
   where a.subscription_id = any (array(select distinct upd.subscription_id from upd where upd.outcome = 'delivered'
                                         and upd.subscription_id not in (select dead.subscription_id from dead)))
     and a.resolved_at is null and a.condition = '${C.deliveryDead}'
)
select outcome, count(*)::int as n from upd group by outcome`;

/** The statement writing a batch of attempt results (RECORD_SQL with its parameters). */
export function recordQuery(results: readonly AttemptResult[]): { name: string; text: string; values: unknown[] } {
  return {
    name: "record_attempts",
    text: RECORD_SQL,
    values: [
      results.map((r) => r.lease),
      results.map((r) => r.deliveryId),
      results.map((r) => r.messageId),
      results.map((r) => r.subscriptionId),
      results.map((r) => r.attempt),
      results.map((r) => r.outcome),
      results.map((r) => r.startedAt),
      results.map((r) => r.latencyMs),
      results.map((r) => r.statusCode),
      results.map((r) => r.error),
      results.map((r) => r.nextAttemptAt),
      results.map((r) => r.deadReason),
      results.map((r) => r.firstAttemptAt),
      results.map((r) => r.messageDay),
    ],
  };
}

export async function recordAttempts(db: Db, results: readonly AttemptResult[]): Promise<Record<AttemptOutcome, number>> {
  const { rows } = await db.query<{ outcome: AttemptOutcome; n: number }>(recordQuery(results));
  const counts = { delivered: 0, failed: 0, dead: 0 };
  for (const row of rows) counts[row.outcome] = row.n;
  return counts;
}

// $1 delivery ids; $2 their days; $3 their lease tokens. Gives leases back without an attempt
// (subscription paused or removed while the delivery waited in memory, over its subscription's
// in-flight cap for too long, or the node is shutting down): due again at once. The row found
// and the lease matched as in RECORD_SQL: by id and day, rather than through the leased rows' index.
/** The statement giving leases back (with its parameters). */
export function releaseQuery(leases: readonly Lease[]): { name: string; text: string; values: unknown[] } {
  return {
    name: "release_deliveries",
    text: `update deliveries d set lease_owner = null, resend_due = false, next_attempt_at = now()
             from unnest($1::bigint[], $2::date[], $3::text[]) as l(id, day, lease)
            where d.id = l.id and d.message_day = l.day and d.state = 'pending' and coalesce(d.lease_owner, '') = l.lease`,
    values: [leases.map((l) => l.deliveryId), leases.map((l) => l.messageDay), leases.map((l) => l.lease)],
  };
}

export async function releaseDeliveries(db: Db, leases: readonly Lease[]): Promise<void> {
  if (leases.length === 0) return;
  await db.query(releaseQuery(leases));
}
