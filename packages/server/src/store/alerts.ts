import type { Db } from "./db.ts";

export interface AlertRecord {
  id: number;
  kind: string;
  messageId: string | null;
  subscription: string | null;
  detail: string;
  createdAt: string;
  resolvedAt: string | null;
}

export async function listAlerts(db: Db, open: boolean, limit: number, beforeId?: number): Promise<AlertRecord[]> {
  const { rows } = await db.query(
    `select a.*, s.name as subscription from alerts a left join subscriptions s on s.id = a.subscription_id
      where ($1::boolean is false or a.resolved_at is null) and ($3::bigint is null or a.id < $3)
      order by a.id desc limit $2`,
    [open, limit, beforeId ?? null],
  );
  return rows.map((r) => ({
    id: r.id,
    kind: r.kind,
    messageId: r.message_id,
    subscription: r.subscription,
    detail: r.detail,
    createdAt: (r.created_at as Date).toISOString(),
    resolvedAt: r.resolved_at ? (r.resolved_at as Date).toISOString() : null,
  }));
}

export async function resolveAlert(db: Db, id: number): Promise<boolean> {
  const { rowCount } = await db.query("update alerts set resolved_at = coalesce(resolved_at, now()) where id = $1", [id]);
  return (rowCount ?? 0) > 0;
}
