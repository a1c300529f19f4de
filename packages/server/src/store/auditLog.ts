import type { AuditEntry } from "../domain/audit.ts";
import { inTransaction, type Db } from "./db.ts";

export interface AuditRecord extends AuditEntry {
  id: number;
  at: string;
}

const toRecord = (r: Record<string, unknown>): AuditRecord => ({
  id: r.id as number,
  at: (r.at as Date).toISOString(),
  actorKind: r.actor_kind as AuditRecord["actorKind"],
  actor: r.actor as string,
  address: r.address as string | null,
  action: r.action as string,
  target: r.target as string | null,
  before: r.before,
  after: r.after,
  detail: r.detail,
});

const json = (value: unknown): string | null => (value === undefined || value === null ? null : JSON.stringify(value));

// $1 actor kind; $2 actor; $3 address; $4 action; $5 target; $6 before; $7 after; $8 detail.
export async function appendAudit(db: Db, e: AuditEntry): Promise<void> {
  await db.query({
    name: "append_audit",
    text: "insert into audit_log (actor_kind, actor, address, action, target, before, after, detail) values ($1, $2, $3, $4, $5, $6, $7, $8)",
    values: [e.actorKind, e.actor, e.address, e.action, e.target, json(e.before), json(e.after), json(e.detail)],
  });
}

export interface AuditFilter {
  actor?: string;
  /** An action (`subscription.update`), or an object's every action (`subscription`). */
  action?: string;
  target?: string;
  since?: string;
  until?: string;
  /** Entries with a smaller id than this (the previous page's cursor). */
  beforeId?: number;
  limit: number;
}

// Newest first, keyset paging on the id. Each filter is skipped when null.
export async function listAudit(db: Db, f: AuditFilter): Promise<{ items: AuditRecord[]; nextCursor: string | null }> {
  const { rows } = await db.query(
    `select * from audit_log
      where ($1::text is null or actor = $1)
        and ($2::text is null or action = $2 or action like replace(replace($2, '%', '\\%'), '_', '\\_') || '.%')
        and ($3::text is null or target = $3)
        and ($4::timestamptz is null or at >= $4)
        and ($5::timestamptz is null or at < $5)
        and ($6::bigint is null or id < $6)
      order by id desc
      limit $7`,
    [f.actor ?? null, f.action ?? null, f.target ?? null, f.since ?? null, f.until ?? null, f.beforeId ?? null, f.limit + 1],
  );
  const items = rows.slice(0, f.limit).map(toRecord);
  return { items, nextCursor: rows.length > f.limit ? String(items.at(-1)!.id) : null };
}

// $1 retention in ms; $2 batch size. Deletes the oldest entries past the retention; the table's
// trigger lets this transaction delete entries older than the instant it names, and nothing else.
export async function sweepAudit(db: Db, retentionMs: number, batchSize: number): Promise<number> {
  return inTransaction(db, async (tx) => {
    const { rows } = await tx.query(
      "select set_config('tidings.audit_sweep_before', (now() - make_interval(secs => $1::float8 / 1000))::text, true) as before",
      [retentionMs],
    );
    const { rowCount } = await tx.query(
      `delete from audit_log where id in (
         select id from audit_log where at < $1::timestamptz order by id limit $2)`,
      [rows[0].before, batchSize],
    );
    return rowCount ?? 0;
  });
}
