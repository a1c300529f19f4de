import type { DeliveryRecord } from "../domain/delivery.ts";
import type { DeliveryState } from "../domain/states.ts";
import type { Db } from "./db.ts";
import { toDelivery } from "./messageRows.ts";

export interface ListedDelivery extends DeliveryRecord {
  messageId: string;
  topic: string;
  tag: string | null;
  key: string | null;
  lastAttemptAt: string | null;
  createdAt: string;
}

export interface DeliveryFilter {
  state?: DeliveryState | undefined;
  subscriptionId?: number | undefined;
  /** Only deliveries with a smaller id (keyset paging, newest first). */
  beforeId?: number | undefined;
  limit: number;
}

// Deliveries newest first, with their message's topic, tag and key. The WHERE clause is
// built from the filters given so that the planner sees plain conditions and can use the
// partial indexes: deliveries_dead (subscription, id) and deliveries_dead_id / _pending_id (id).
export async function listDeliveries(db: Db, filter: DeliveryFilter): Promise<{ items: ListedDelivery[]; nextCursor: string | null }> {
  const where: string[] = [];
  const values: unknown[] = [];
  const add = (sql: string, value: unknown) => {
    values.push(value);
    where.push(sql.replace("?", `$${values.length}`));
  };
  if (filter.state !== undefined) add("d.state = ?::delivery_state", filter.state);
  if (filter.subscriptionId !== undefined) add("d.subscription_id = ?", filter.subscriptionId);
  if (filter.beforeId !== undefined) add("d.id < ?", filter.beforeId);
  values.push(filter.limit + 1);
  const { rows } = await db.query(
    `select d.*, s.name as subscription, m.topic, m.tag, m.key
       from deliveries d join subscriptions s on s.id = d.subscription_id join messages m on m.id = d.message_id and m.day = d.message_day
      ${where.length ? `where ${where.join(" and ")}` : ""}
      order by d.id desc limit $${values.length}`,
    values,
  );
  const items = rows.slice(0, filter.limit).map((r) => ({
    ...toDelivery(r),
    messageId: r.message_id as string,
    topic: r.topic as string,
    tag: r.tag as string | null,
    key: r.key as string | null,
    lastAttemptAt: r.last_attempt_at ? (r.last_attempt_at as Date).toISOString() : null,
    createdAt: (r.created_at as Date).toISOString(),
  }));
  const last = items[items.length - 1];
  return { items, nextCursor: rows.length > filter.limit && last ? String(last.id) : null };
}
