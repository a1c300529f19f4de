import type { ResolvedMessage } from "../domain/message.ts";
import { dialectOf } from "../executor/dialect.ts";
import type { Executor } from "../executor/executor.ts";

/** The channel the relay LISTENs on (PostgreSQL); outbox inserts NOTIFY it, delivered on commit. */
export const OUTBOX_CHANNEL = "tidings_outbox";

export type OutboxStatus = "pending" | "sent" | "failed";

/** An outbox row as the relay and the failed list see it. */
export interface OutboxRow {
  seq: number;
  message: ResolvedMessage;
  status: OutboxStatus;
  attempts: number;
  createdAt: Date;
  sentAt: Date | null;
  failedAt: Date | null;
  lastError: string | null;
}

const placeholders = (n: number) => Array.from({ length: n }, () => "?").join(", ");

/**
 * Inserts messages in the caller's transaction (params: per row id, topic, tag, key, payload,
 * headers, deliver_at, traceparent, tracestate) and, on PostgreSQL, NOTIFYs the relay in the same statement: one round trip.
 */
export async function insertOutbox(tx: Executor, messages: readonly ResolvedMessage[], notify: boolean): Promise<void> {
  const d = dialectOf(tx.dialect);
  const row = `(?, ?, ?, ?, ${d.jsonParam}, ${d.jsonParam}, ?, ?, ?)`;
  const params = messages.flatMap((m) => [
    m.id,
    m.topic,
    m.tag,
    m.key,
    m.payloadJson,
    m.headersJson,
    m.deliverAt,
    m.trace?.traceparent ?? null,
    m.trace?.tracestate ?? null,
  ]);
  const insert = `INSERT INTO tidings_outbox (id, topic, tag, msg_key, payload, headers, deliver_at, traceparent, tracestate) VALUES ${messages.map(() => row).join(", ")}`;
  const wake = notify ? d.notify(OUTBOX_CHANNEL) : null;
  // pg_notify per row is fine: PostgreSQL folds equal notifications of one transaction into one.
  const sql = wake ? `WITH inserted AS (${insert} RETURNING 1) ${wake} FROM inserted` : insert;
  await tx.query(d.sql(sql), params);
}

interface RawRow {
  seq: number | string;
  id: string;
  topic: string;
  tag: string | null;
  msg_key: string | null;
  payload: string;
  headers: string;
  deliver_at: Date | string | null;
  status: OutboxStatus;
  attempts: number | string;
  created_at: Date | string;
  sent_at: Date | string | null;
  failed_at: Date | string | null;
  last_error: string | null;
  traceparent: string | null;
  tracestate: string | null;
}

const date = (v: Date | string | null): Date | null => (v === null ? null : v instanceof Date ? v : new Date(v));

function toRow(r: RawRow): OutboxRow {
  return {
    seq: Number(r.seq),
    message: {
      id: r.id,
      topic: r.topic,
      tag: r.tag,
      key: r.msg_key,
      payloadJson: r.payload,
      headersJson: r.headers,
      deliverAt: date(r.deliver_at),
      trace: r.traceparent ? { traceparent: r.traceparent, tracestate: r.tracestate } : null,
    },
    status: r.status,
    attempts: Number(r.attempts),
    createdAt: date(r.created_at)!,
    sentAt: date(r.sent_at),
    failedAt: date(r.failed_at),
    lastError: r.last_error,
  };
}

function columns(tx: Executor): string {
  const d = dialectOf(tx.dialect);
  return `seq, id, topic, tag, msg_key, ${d.jsonText("payload")} AS payload, ${d.jsonText("headers")} AS headers, deliver_at,
    status, attempts, created_at, sent_at, failed_at, last_error, traceparent, tracestate`;
}

/**
 * Locks up to `limit` due pending rows for the caller's transaction, oldest first, skipping rows
 * another relay holds (params: limit). Rows of uncommitted transactions are not visible yet. A
 * keyed row behind an earlier pending row of its key that waits for its retry is left out, so
 * that it cannot pass it (index tidings_outbox_key).
 */
export async function claimDue(tx: Executor, limit: number): Promise<OutboxRow[]> {
  const d = dialectOf(tx.dialect);
  const sql = `SELECT ${columns(tx)} FROM tidings_outbox o
    WHERE status = 'pending' AND next_attempt_at <= ${d.now}
      AND (msg_key IS NULL OR NOT EXISTS (SELECT 1 FROM tidings_outbox e
            WHERE e.msg_key = o.msg_key AND e.status = 'pending' AND e.seq < o.seq AND e.next_attempt_at > ${d.now}))
    ORDER BY seq LIMIT ? ${d.skipLocked}`;
  return (await tx.query<RawRow & Record<string, unknown>>(d.sql(sql), [limit])).map(toRow);
}

/**
 * The rows of a claimed batch that may be sent now without passing an earlier row of their key:
 * per key, the batch's rows from the key's first pending row on, up to the first pending row the
 * batch does not hold (another relay holds it, or it became visible after the claim). Keyless
 * rows all go. One read of the batch's keys' pending rows (params: keys, the batch's last seq).
 */
export async function inKeyOrder(tx: Executor, rows: readonly OutboxRow[]): Promise<OutboxRow[]> {
  const keys = [...new Set(rows.flatMap((r) => (r.message.key === null ? [] : [r.message.key])))];
  if (keys.length === 0) return [...rows];
  const d = dialectOf(tx.dialect);
  const last = rows.reduce((max, r) => Math.max(max, r.seq), 0);
  const pending = await tx.query<{ seq: number | string; msg_key: string }>(
    d.sql(`SELECT seq, msg_key FROM tidings_outbox WHERE status = 'pending' AND msg_key IN (${placeholders(keys.length)}) AND seq <= ? ORDER BY seq`),
    [...keys, last],
  );
  const held = new Set(rows.map((r) => r.seq));
  /** Per key, the first pending seq the batch does not hold: the key's rows from there on wait. */
  const stop = new Map<string, number>();
  for (const p of pending) if (!stop.has(p.msg_key) && !held.has(Number(p.seq))) stop.set(p.msg_key, Number(p.seq));
  return rows.filter((r) => r.message.key === null || r.seq < (stop.get(r.message.key) ?? Infinity));
}

/** Marks rows sent (params: the seqs). */
export async function markSent(tx: Executor, seqs: readonly number[]): Promise<void> {
  const d = dialectOf(tx.dialect);
  await tx.query(
    d.sql(`UPDATE tidings_outbox SET status = 'sent', sent_at = ${d.now}, last_error = NULL, attempts = attempts + 1
      WHERE seq IN (${placeholders(seqs.length)}) AND status = 'pending'`),
    seqs,
  );
}

/**
 * Records a failed send of rows (params: error, delay ms, max attempts, seqs): they come back after
 * the delay, or become failed once they reach max attempts. Every SET expression reads the old
 * `attempts` (MySQL evaluates assignments left to right with new values, so it is assigned last).
 */
export async function markRetry(tx: Executor, seqs: readonly number[], error: string, delayMs: number, maxAttempts: number): Promise<void> {
  const d = dialectOf(tx.dialect);
  await tx.query(
    d.sql(`UPDATE tidings_outbox SET
        failed_at = CASE WHEN attempts + 1 >= ? THEN ${d.now} ELSE NULL END,
        status = CASE WHEN attempts + 1 >= ? THEN 'failed' ELSE 'pending' END,
        last_error = ?,
        next_attempt_at = ${d.nowPlusMs},
        attempts = attempts + 1
      WHERE seq IN (${placeholders(seqs.length)}) AND status = 'pending'`),
    [maxAttempts, maxAttempts, error, delayMs, ...seqs],
  );
}

/** Marks rows failed at once: the service refused them for good (params: error, seqs). */
export async function markFailed(tx: Executor, seqs: readonly number[], error: string): Promise<void> {
  const d = dialectOf(tx.dialect);
  await tx.query(
    d.sql(`UPDATE tidings_outbox SET status = 'failed', failed_at = ${d.now}, last_error = ?, attempts = attempts + 1
      WHERE seq IN (${placeholders(seqs.length)}) AND status = 'pending'`),
    [error, ...seqs],
  );
}

/** Failed rows, oldest first (params: limit). */
export async function listFailed(db: Executor, limit: number): Promise<OutboxRow[]> {
  const d = dialectOf(db.dialect);
  return (
    await db.query<RawRow & Record<string, unknown>>(d.sql(`SELECT ${columns(db)} FROM tidings_outbox WHERE status = 'failed' ORDER BY seq LIMIT ?`), [limit])
  ).map(toRow);
}

/** Rows by message id (params: ids). */
export async function getByIds(db: Executor, ids: readonly string[]): Promise<OutboxRow[]> {
  if (ids.length === 0) return [];
  const d = dialectOf(db.dialect);
  return (
    await db.query<RawRow & Record<string, unknown>>(
      d.sql(`SELECT ${columns(db)} FROM tidings_outbox WHERE id IN (${placeholders(ids.length)}) ORDER BY seq`),
      ids,
    )
  ).map(toRow);
}

/** Puts failed rows back to pending with a fresh attempt count (params: ids, or none for all); returns how many. */
export async function retryFailed(db: Executor, ids?: readonly string[]): Promise<number> {
  if (ids && ids.length === 0) return 0;
  const d = dialectOf(db.dialect);
  const where = ids ? ` AND id IN (${placeholders(ids.length)})` : "";
  return db.transaction(async (tx) => {
    const rows = await tx.query<{ seq: number | string }>(d.sql(`SELECT seq FROM tidings_outbox WHERE status = 'failed'${where} FOR UPDATE`), ids ?? []);
    if (rows.length === 0) return 0;
    const seqs = rows.map((r) => Number(r.seq));
    await tx.query(
      d.sql(`UPDATE tidings_outbox SET status = 'pending', failed_at = NULL, attempts = 0, next_attempt_at = ${d.now}
        WHERE seq IN (${placeholders(seqs.length)})`),
      seqs,
    );
    return seqs.length;
  });
}

/** Deletes up to `limit` rows sent more than `retentionMs` ago, oldest first; whether more may be left. */
export async function deleteSentBatch(db: Executor, retentionMs: number, limit: number): Promise<boolean> {
  const d = dialectOf(db.dialect);
  const sql = d.deleteLimited("tidings_outbox", `status = 'sent' AND sent_at < ${d.nowMinusMs}`, "sent_at");
  if (d.returning) return (await db.query(d.sql(`${sql} RETURNING 1`), [retentionMs, limit])).length === limit;
  // MySQL's DELETE returns no rows: look whether any is left instead (indexed, cheap).
  await db.query(d.sql(sql), [retentionMs, limit]);
  const left = await db.query(d.sql(`SELECT 1 AS one FROM tidings_outbox WHERE status = 'sent' AND sent_at < ${d.nowMinusMs} LIMIT 1`), [retentionMs]);
  return left.length > 0;
}

/** Counts rows by status. */
export async function countByStatus(db: Executor): Promise<Record<OutboxStatus, number>> {
  const rows = await db.query<{ status: OutboxStatus; n: number | string }>("SELECT status, COUNT(*) AS n FROM tidings_outbox GROUP BY status");
  const counts: Record<OutboxStatus, number> = { pending: 0, sent: 0, failed: 0 };
  for (const r of rows) counts[r.status] = Number(r.n);
  return counts;
}

/** What a relay's heartbeat reports of its outbox. */
export interface OutboxHealth {
  /** Rows waiting to be sent, counted up to the cap. */
  pending: number;
  /** Rows given up on, counted up to the cap. */
  failed: number;
  /** How long the oldest waiting row has waited, by the database's clock; null when none waits. */
  oldestPendingSeconds: number | null;
}

/**
 * The outbox's waiting and failed rows, each counted up to `cap` through its status index (a
 * million waiting rows cost a read of `cap` index entries, not of the table), and the age of the
 * oldest waiting row (params: cap, cap). The age is taken against the database's own clock, in
 * the same statement, so a session time zone (MySQL DATETIME) cannot skew it.
 */
export async function readOutboxHealth(db: Executor, cap: number): Promise<OutboxHealth> {
  const d = dialectOf(db.dialect);
  const [row] = await db.query<{ pending: number | string; failed: number | string; oldest: Date | string | null; now: Date | string }>(
    d.sql(`SELECT
      (SELECT COUNT(*) FROM (SELECT 1 AS one FROM tidings_outbox WHERE status = 'pending' LIMIT ?) p) AS pending,
      (SELECT COUNT(*) FROM (SELECT 1 AS one FROM tidings_outbox WHERE status = 'failed' LIMIT ?) f) AS failed,
      (SELECT created_at FROM tidings_outbox WHERE status = 'pending' ORDER BY seq LIMIT 1) AS oldest,
      ${d.now} AS now`),
    [cap, cap],
  );
  const oldest = date(row!.oldest);
  return {
    pending: Number(row!.pending),
    failed: Number(row!.failed),
    oldestPendingSeconds: oldest === null ? null : Math.max(0, (date(row!.now)!.getTime() - oldest.getTime()) / 1000),
  };
}

/**
 * Where a walk through the outbox's sent rows stands: the last row seen. `sentAt` is the
 * database's own text of the time, to the microsecond (a JavaScript Date keeps milliseconds: a
 * cursor rounded down would find its own row again, for ever).
 */
export interface SentCursor {
  sentAt: string;
  seq: number;
}

/**
 * Up to `limit` rows of `topic` marked sent from `since` up to `until`, in the order they were
 * marked, after `cursor` (params: topic, since, until, the cursor's sent_at and seq, limit).
 * Keyset paging on (sent_at, seq) through the index of a topic's sent rows (SDK migration 0006):
 * each page starts at its cursor and costs the same however far the walk is.
 */
export async function sentPage(
  db: Executor,
  topic: string,
  since: Date,
  until: Date,
  cursor: SentCursor | null,
  limit: number,
): Promise<Array<{ seq: number; id: string; sentAt: string }>> {
  const d = dialectOf(db.dialect);
  const exact = d.name === "postgres" ? "sent_at::text" : "DATE_FORMAT(sent_at, '%Y-%m-%d %H:%i:%s.%f')";
  // PostgreSQL bounds the index scan by the row comparison; MariaDB/MySQL by the two ranges of the OR.
  const after = !cursor ? "" : d.name === "postgres" ? " AND (sent_at, seq) > (?::timestamptz, ?::bigint)" : " AND (sent_at > ? OR (sent_at = ? AND seq > ?))";
  const rows = await db.query<{ seq: number | string; id: string; sent_text: string }>(
    d.sql(
      `SELECT seq, id, ${exact} AS sent_text FROM tidings_outbox
        WHERE status = 'sent' AND topic = ? AND sent_at >= ? AND sent_at < ?${after} ORDER BY sent_at, seq LIMIT ?`,
    ),
    !cursor
      ? [topic, since, until, limit]
      : d.name === "postgres"
        ? [topic, since, until, cursor.sentAt, cursor.seq, limit]
        : [topic, since, until, cursor.sentAt, cursor.sentAt, cursor.seq, limit],
  );
  return rows.map((r) => ({ seq: Number(r.seq), id: r.id, sentAt: r.sent_text }));
}

/** Up to `limit` failed rows of `topic` that failed from `since` up to `until`, after `afterSeq`, by seq (params: topic, since, until, afterSeq, limit). */
export async function failedPage(
  db: Executor,
  topic: string,
  since: Date,
  until: Date,
  afterSeq: number,
  limit: number,
): Promise<Array<{ seq: number; id: string; lastError: string | null }>> {
  const d = dialectOf(db.dialect);
  const rows = await db.query<{ seq: number | string; id: string; last_error: string | null }>(
    d.sql(
      "SELECT seq, id, last_error FROM tidings_outbox WHERE status = 'failed' AND topic = ? AND failed_at >= ? AND failed_at < ? AND seq > ? ORDER BY seq LIMIT ?",
    ),
    [topic, since, until, afterSeq, limit],
  );
  return rows.map((r) => ({ seq: Number(r.seq), id: r.id, lastError: r.last_error }));
}

/**
 * Puts rows marked sent back to pending, to be sent again at once (params: ids): their send was
 * lost. The message id makes the service's answer the same if it did arrive after all.
 */
export async function resendSent(db: Executor, ids: readonly string[]): Promise<number> {
  if (ids.length === 0) return 0;
  const d = dialectOf(db.dialect);
  const sql = `UPDATE tidings_outbox SET status = 'pending', sent_at = NULL, attempts = 0, next_attempt_at = ${d.now}
    WHERE status = 'sent' AND id IN (${placeholders(ids.length)})`;
  // PostgreSQL: the relay is woken in the same statement (on commit), as by an insert.
  const wake = d.notify(OUTBOX_CHANNEL);
  if (wake) return (await db.query(d.sql(`WITH r AS (${sql} RETURNING 1) ${wake} FROM r`), ids)).length;
  await db.query(d.sql(sql), ids);
  return (
    await db.query<{ n: number | string }>(
      d.sql(`SELECT COUNT(*) AS n FROM tidings_outbox WHERE status = 'pending' AND id IN (${placeholders(ids.length)})`),
      ids,
    )
  ).map((r) => Number(r.n))[0]!;
}
