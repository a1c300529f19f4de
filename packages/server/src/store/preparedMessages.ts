import type { CheckLog, DueCheck } from "../domain/check.ts";
import type { MessageRecord } from "../domain/message.ts";
import { ALERT_CONDITIONS } from "../domain/alerts.ts";
import { nextStepSql, raiseAlertsSql } from "./alertRaise.ts";
import type { Db } from "./db.ts";
import { claimToken } from "./deliveryAttempts.ts";
import { fanOut, splitFanOutRows, type CreatedDelivery } from "./fanOut.ts";
import { EXACT_TYPES, MESSAGE_COLUMNS, toMessage } from "./messageRows.ts";

export type ResolveOutcome =
  | { kind: "resolved"; message: MessageRecord; deliveries: CreatedDelivery[] }
  /** Not prepared (any more): the message as it stands, or null when there is none. */
  | { kind: "unchanged"; message: MessageRecord | null };

/** A commit or rollback asked for message `id` by `app` (null: the admin, who may settle any). */
export interface SettleRequest {
  id: string;
  app: string | null;
}

// $1 message ids; $2 the apps asking (null: admin); $3 this node's id or null; $4 lease ms.
// Each message row carries its payload as JSON text (payload_text) instead of inside the row:
// read back through JSON.parse with the row, a big number would be rounded (see splitFanOutRows).
// Prepared → committed for each id its app may settle, with deliveries. Concurrent commits are
// gathered into this one statement (one WAL flush for many producers). commit_tx gives the
// message its place in the feed: this transaction's, after everything committed before it.
const COMMIT_SQL = `
with input as (
  select * from unnest($1::text[], $2::text[]) as t(id, app)
), upd as (
  update messages m set state = 'committed', committed_at = now(), commit_tx = pg_current_xact_id(), next_check_at = null, check_owner = null
    from input i
   where m.id = i.id and m.state = 'prepared' and (i.app is null or m.app = i.app)
  returning ${MESSAGE_COLUMNS}, m.day
), ${fanOut("upd", "$3", "$4")}
select 'm' as kind, (to_jsonb(upd) - 'payload' - 'day') || jsonb_build_object('payload_text', upd.payload::text) as row from upd
union all
select 'd', to_jsonb(dels) from dels`;

// $1 message id; $2 the app asking (null: admin). Prepared → rolled back (terminal).
const ROLLBACK_SQL = `
with upd as (
  update messages m set state = 'rolled_back', rolled_back_at = now(), next_check_at = null, check_owner = null
   where m.id = $1 and m.state = 'prepared' and ($2::text is null or m.app = $2)
  returning ${MESSAGE_COLUMNS}
)
select 'm' as kind, (to_jsonb(upd) - 'payload') || jsonb_build_object('payload_text', upd.payload::text) as row from upd`;

async function current(db: Db, ids: string[]): Promise<Map<string, MessageRecord>> {
  const { rows } = await db.query({ text: `select ${MESSAGE_COLUMNS} from messages m where m.id = any ($1)`, values: [ids], types: EXACT_TYPES });
  return new Map(rows.map((row) => [row.id as string, toMessage(row)]));
}

/**
 * The outcome of each request: resolved when this statement changed the message for an app
 * allowed to; otherwise unchanged, with the message as it stands (read only for those), so
 * the caller can answer 404, 403 or 409.
 */
async function outcomesOf(db: Db, requests: readonly SettleRequest[], changed: Map<string, MessageRecord>, deliveries: CreatedDelivery[]) {
  const allowed = (r: SettleRequest, m: MessageRecord) => r.app === null || m.app === r.app;
  const unresolved = requests.filter((r) => !changed.has(r.id) || !allowed(r, changed.get(r.id)!)).map((r) => r.id);
  const standing = unresolved.length > 0 ? await current(db, unresolved) : new Map<string, MessageRecord>();
  const byMessage = new Map<string, CreatedDelivery[]>();
  for (const d of deliveries) {
    const list = byMessage.get(d.messageId);
    if (list) list.push(d);
    else byMessage.set(d.messageId, [d]);
  }
  const outcomes = requests.map((r): ResolveOutcome => {
    const m = changed.get(r.id);
    if (m && allowed(r, m)) return { kind: "resolved", message: m, deliveries: byMessage.get(r.id) ?? [] };
    return { kind: "unchanged", message: standing.get(r.id) ?? null };
  });
  return { outcomes, deliveries };
}

export async function commitPrepared(
  db: Db,
  requests: readonly SettleRequest[],
  nodeId: string | null,
  leaseMs: number,
): Promise<{ outcomes: ResolveOutcome[]; deliveries: CreatedDelivery[] }> {
  const { rows } = await db.query({
    name: "commit_prepared",
    text: COMMIT_SQL,
    values: [requests.map((r) => r.id), requests.map((r) => r.app), nodeId, leaseMs],
  });
  const { messages, deliveries } = splitFanOutRows(rows);
  return outcomesOf(db, requests, messages, deliveries);
}

export async function rollbackPrepared(db: Db, request: SettleRequest): Promise<ResolveOutcome> {
  const { rows } = await db.query({ name: "rollback_prepared", text: ROLLBACK_SQL, values: [request.id, request.app] });
  const { messages } = splitFanOutRows(rows);
  const { outcomes } = await outcomesOf(db, [request], messages, []);
  return outcomes[0]!;
}

// $1 lease token of this claim; $2 lease ms; $3 max rows. Takes prepared messages due for a check that no other
// node is checking; the lease (moving next_check_at to its end) keeps two nodes from asking at once.
export async function claimDueChecks(db: Db, nodeId: string, leaseMs: number, limit: number): Promise<DueCheck[]> {
  const lease = claimToken(nodeId);
  const { rows } = await db.query({
    name: "claim_due_checks",
    text: `with due as (
      select id from messages
       where state = 'prepared' and in_doubt_at is null and next_check_at <= now()
       order by next_check_at limit $3
       for update skip locked
    ), claimed as (
      update messages m set check_owner = $1, next_check_at = now() + make_interval(secs => $2::float8 / 1000)
        from due where m.id = due.id
      returning ${MESSAGE_COLUMNS}, m.check_context
    )
    select m.*, a.check_url, a.secret from claimed m left join apps a on a.name = m.app`,
    values: [lease, leaseMs, limit],
    // The payload as stored (exact text where parsing would round a number): the check-back shows it.
    types: EXACT_TYPES,
  });
  return rows.map((row) => ({
    message: toMessage(row),
    context: row.check_context ?? null,
    checkUrl: row.check_url ?? null,
    secret: row.secret ?? null,
    lease,
  }));
}

// $1..$7 the check's message id, number, start, latency, status, answer, error (storable text).
// Logged only while the message exists (no foreign key since 0027), in its day's partition; the
// row's lock keeps an operator's delete (deleteMessage) from missing the check.
export async function logCheck(db: Db, c: CheckLog): Promise<void> {
  await db.query(
    `insert into checks (message_id, message_day, check_no, started_at, latency_ms, status_code, answer, error)
     select $1, m.day, $2, $3, $4, $5, $6, $7 from messages m where m.id = $1 for key share`,
    [c.messageId, c.checkNo, c.startedAt, c.latencyMs, c.statusCode, c.answer, c.error],
  );
}

// $1 id; $2 the lease token of the check's claim; $3 next check delay ms; $4 the check limit. An unresolved check: count it, and
// schedule the next one or, at the limit, put the message in doubt and count it into its app's
// message_in_doubt alert (resolved once none of the app's messages is in doubt: resolveClearedAlerts).
// Returns whether the message went in doubt.
export async function checkUnresolved(db: Db, id: string, lease: string, nextMs: number, limit: number): Promise<{ inDoubt: boolean } | null> {
  const { rows } = await db.query(
    `with upd as (
       update messages set checks = checks + 1, check_owner = null,
              next_check_at = case when checks + 1 >= $4 then null else now() + make_interval(secs => $3::float8 / 1000) end,
              in_doubt_at = case when checks + 1 >= $4 then now() end
        where id = $1 and state = 'prepared' and check_owner = $2
       returning id, app, in_doubt_at is not null as in_doubt, checks
     ), alert as (
       ${raiseAlertsSql(`
       select '${ALERT_CONDITIONS.messageInDoubt}' as condition, coalesce('app ' || upd.app, 'admin') as subject, null::bigint as subscription_id,
              upd.app, 1 as n, upd.id || ' still prepared after ' || upd.checks || ' check-backs' as detail,
              jsonb_build_array(jsonb_build_object('messageId', upd.id, 'at', now(), 'detail', 'still prepared after ' || upd.checks || ' check-backs')) as examples,
              '#/dead-letters' as link, ${nextStepSql(ALERT_CONDITIONS.messageInDoubt)} as next_step
         from upd where upd.in_doubt`)}
     )
     select in_doubt from upd`,
    [id, lease, nextMs, limit],
  );
  return rows[0] ? { inDoubt: rows[0].in_doubt } : null;
}

// $1 message id; $2 the lease token of the check's claim. Gives a check lease back without a
// check (shutdown cut the call short): due again at once, on this or another node.
export async function releaseCheck(db: Db, id: string, lease: string): Promise<void> {
  await db.query("update messages set check_owner = null, next_check_at = now() where id = $1 and state = 'prepared' and check_owner = $2", [id, lease]);
}

/** Counts a check that resolved the message (the state change itself is commit/rollbackPrepared). */
export async function countCheck(db: Db, id: string): Promise<void> {
  await db.query("update messages set checks = checks + 1 where id = $1", [id]);
}

export interface CheckRecord {
  at: string;
  check: number;
  statusCode: number | null;
  answer: string | null;
  latencyMs: number;
  error: string | null;
}

export async function getChecks(db: Db, messageId: string): Promise<CheckRecord[]> {
  const { rows } = await db.query("select * from checks where message_id = $1 order by id", [messageId]);
  return rows.map((r) => ({
    at: (r.started_at as Date).toISOString(),
    check: r.check_no,
    statusCode: r.status_code,
    answer: r.answer,
    latencyMs: r.latency_ms,
    error: r.error,
  }));
}
