import { dialectOf } from "../executor/dialect.ts";
import type { Executor } from "../executor/executor.ts";

export type InboxStatus = "applied" | "failed";

/** What the inbox records of a message. */
export interface InboxMessage {
  id: string;
  topic: string;
  key?: string | null;
  payload?: unknown;
}

/** A row of `tidings_inbox`. */
export interface InboxRecord {
  consumer: string;
  id: string;
  topic: string;
  key: string | null;
  payload: unknown;
  status: InboxStatus;
  attempts: number;
  lastError: string | null;
  firstSeenAt: Date;
  updatedAt: Date;
  appliedAt: Date | null;
}

const params = (consumer: string, m: InboxMessage) => [consumer, m.id, m.topic, m.key ?? null, JSON.stringify(m.payload ?? null)];

/**
 * PostgreSQL fast path: inserts the row already `applied` (params: consumer, id, topic, key,
 * payload). True when it was new: the caller's transaction now holds it, and rolls it back with
 * the business change if that fails. A concurrent insert of the same id waits for the other
 * transaction, then finds the conflict.
 */
export async function insertApplied(tx: Executor, consumer: string, m: InboxMessage): Promise<boolean> {
  const d = dialectOf(tx.dialect);
  const rows = await tx.query(
    d.sql(`INSERT INTO tidings_inbox (consumer, id, topic, msg_key, payload, status, attempts, applied_at)
      VALUES (?, ?, ?, ?, ${d.jsonParam}, 'applied', 1, ${d.now}) ${d.insertIgnore("consumer, id")} RETURNING 1 AS inserted`),
    params(consumer, m),
  );
  return rows.length > 0;
}

/** Inserts the row as `received` unless it exists (params as above); waits behind an in-flight insert. */
export async function insertReceived(tx: Executor, consumer: string, m: InboxMessage, status: "received" | "failed" = "received"): Promise<void> {
  const d = dialectOf(tx.dialect);
  await tx.query(
    d.sql(`INSERT INTO tidings_inbox (consumer, id, topic, msg_key, payload, status, attempts)
      VALUES (?, ?, ?, ?, ${d.jsonParam}, '${status}', 0) ${d.insertIgnore("consumer, id")}`),
    params(consumer, m),
  );
}

/** Locks the row and reads its status (params: consumer, id). */
export async function lockStatus(tx: Executor, consumer: string, id: string): Promise<string | null> {
  const d = dialectOf(tx.dialect);
  const rows = await tx.query<{ status: string }>(d.sql("SELECT status FROM tidings_inbox WHERE consumer = ? AND id = ? FOR UPDATE"), [consumer, id]);
  return rows[0]?.status ?? null;
}

/** Marks the locked row applied (params: consumer, id). */
export async function markApplied(tx: Executor, consumer: string, id: string): Promise<void> {
  const d = dialectOf(tx.dialect);
  await tx.query(
    d.sql(`UPDATE tidings_inbox SET status = 'applied', applied_at = ${d.now}, updated_at = ${d.now}, last_error = NULL, attempts = attempts + 1
      WHERE consumer = ? AND id = ?`),
    [consumer, id],
  );
}

/**
 * Records a failed attempt in its own transaction, after the business one rolled back (params:
 * error, consumer, id). Never overwrites `applied`: a concurrent delivery may have succeeded.
 */
export async function recordFailure(db: Executor, consumer: string, m: InboxMessage, error: string): Promise<void> {
  const d = dialectOf(db.dialect);
  await db.transaction(async (tx) => {
    await insertReceived(tx, consumer, m, "failed");
    await tx.query(
      d.sql(`UPDATE tidings_inbox SET status = 'failed', last_error = ?, updated_at = ${d.now}, attempts = attempts + 1
        WHERE consumer = ? AND id = ? AND status <> 'applied'`),
      [error, consumer, m.id],
    );
  });
}

interface RawRecord {
  consumer: string;
  id: string;
  topic: string;
  msg_key: string | null;
  payload: string | null;
  status: InboxStatus;
  attempts: number | string;
  last_error: string | null;
  first_seen_at: Date | string;
  updated_at: Date | string;
  applied_at: Date | string | null;
}

const date = (v: Date | string | null): Date | null => (v === null ? null : v instanceof Date ? v : new Date(v));

function toRecord(r: RawRecord): InboxRecord {
  return {
    consumer: r.consumer,
    id: r.id,
    topic: r.topic,
    key: r.msg_key,
    payload: r.payload === null ? null : (JSON.parse(r.payload) as unknown),
    status: r.status,
    attempts: Number(r.attempts),
    lastError: r.last_error,
    firstSeenAt: date(r.first_seen_at)!,
    updatedAt: date(r.updated_at)!,
    appliedAt: date(r.applied_at),
  };
}

function columns(db: Executor): string {
  return `consumer, id, topic, msg_key, ${dialectOf(db.dialect).jsonText("payload")} AS payload, status, attempts, last_error,
    first_seen_at, updated_at, applied_at`;
}

/** One record (params: consumer, id). */
export async function getRecord(db: Executor, consumer: string, id: string): Promise<InboxRecord | null> {
  const d = dialectOf(db.dialect);
  const rows = await db.query<RawRecord & Record<string, unknown>>(d.sql(`SELECT ${columns(db)} FROM tidings_inbox WHERE consumer = ? AND id = ?`), [
    consumer,
    id,
  ]);
  return rows[0] ? toRecord(rows[0]) : null;
}

/** Records by status, most recently updated first (params: consumer, status, limit). */
export async function listRecords(db: Executor, consumer: string, status: InboxStatus, limit: number): Promise<InboxRecord[]> {
  const d = dialectOf(db.dialect);
  const rows = await db.query<RawRecord & Record<string, unknown>>(
    d.sql(`SELECT ${columns(db)} FROM tidings_inbox WHERE consumer = ? AND status = ? ORDER BY updated_at DESC LIMIT ?`),
    [consumer, status, limit],
  );
  return rows.map(toRecord);
}

/** Counts by status (params: consumer). */
export async function countRecords(db: Executor, consumer: string): Promise<Record<InboxStatus, number>> {
  const d = dialectOf(db.dialect);
  const rows = await db.query<{ status: InboxStatus; n: number | string }>(
    d.sql("SELECT status, COUNT(*) AS n FROM tidings_inbox WHERE consumer = ? GROUP BY status"),
    [consumer],
  );
  const counts: Record<InboxStatus, number> = { applied: 0, failed: 0 };
  for (const r of rows) if (r.status in counts) counts[r.status] = Number(r.n);
  return counts;
}

/** Deletes up to `limit` records not touched for `retentionMs`; whether more may be left. */
export async function deleteOldBatch(db: Executor, consumer: string, retentionMs: number, limit: number): Promise<boolean> {
  const d = dialectOf(db.dialect);
  const where = `consumer = ? AND updated_at < ${d.nowMinusMs}`;
  const sql = d.deleteLimited("tidings_inbox", where, "updated_at");
  if (d.returning) return (await db.query(d.sql(`${sql} RETURNING 1`), [consumer, retentionMs, limit])).length === limit;
  await db.query(d.sql(sql), [consumer, retentionMs, limit]);
  return (await db.query(d.sql(`SELECT 1 AS one FROM tidings_inbox WHERE ${where} LIMIT 1`), [consumer, retentionMs])).length > 0;
}

/**
 * The records of `ids` this consumer has, by id, with their status (params: consumer, ids): one
 * primary-key look-up for a page of a reconciliation, however long the window.
 */
export async function statusesOf(db: Executor, consumer: string, ids: readonly string[]): Promise<Map<string, InboxStatus>> {
  if (ids.length === 0) return new Map();
  const d = dialectOf(db.dialect);
  const rows = await db.query<{ id: string; status: InboxStatus }>(
    d.sql(`SELECT id, status FROM tidings_inbox WHERE consumer = ? AND id IN (${ids.map(() => "?").join(", ")})`),
    [consumer, ...ids],
  );
  return new Map(rows.map((r) => [r.id, r.status]));
}
