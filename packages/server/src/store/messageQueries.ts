import type { Db } from "./db.ts";
import { MESSAGE_COLUMNS, toDelivery, toMessage, type DeliveryRecord, type MessageRecord } from "./rows.ts";

export async function getMessage(db: Db, id: string): Promise<MessageRecord | null> {
  const { rows } = await db.query(`select ${MESSAGE_COLUMNS} from messages m where m.id = $1`, [id]);
  return rows[0] ? toMessage(rows[0]) : null;
}

export async function getDeliveries(db: Db, messageId: string): Promise<DeliveryRecord[]> {
  const { rows } = await db.query(
    `select d.*, s.name as subscription from deliveries d join subscriptions s on s.id = d.subscription_id
      where d.message_id = $1 order by s.name`,
    [messageId],
  );
  return rows.map(toDelivery);
}

export interface AttemptRecord {
  at: string;
  subscription: string;
  attempt: number;
  outcome: string;
  statusCode: number | null;
  latencyMs: number;
  error: string | null;
}

export async function getAttempts(db: Db, messageId: string): Promise<AttemptRecord[]> {
  const { rows } = await db.query(
    `select a.*, s.name as subscription from attempts a join subscriptions s on s.id = a.subscription_id
      where a.message_id = $1 order by a.id`,
    [messageId],
  );
  return rows.map((r) => ({
    at: (r.started_at as Date).toISOString(),
    subscription: r.subscription,
    attempt: r.attempt,
    outcome: r.outcome,
    statusCode: r.status_code,
    latencyMs: r.latency_ms,
    error: r.error,
  }));
}

export interface MessageFilter {
  app?: string | undefined;
  /** Full ids; or `anyApp`: a bare id in every app's namespace and the admin's own. */
  ids?: string[] | { anyApp: string } | undefined;
  /** An app key's view: its own messages and those of its read topics. */
  visibleTo?: { app: string; readTopics: readonly string[] } | undefined;
  topic?: string | undefined;
  key?: string | undefined;
  tag?: string | undefined;
  createdAfter?: string | undefined;
  createdBefore?: string | undefined;
  state?: string | undefined;
  subscription?: string | undefined;
  deliveryState?: string | undefined;
  /** Only messages older than this seq (keyset paging, newest first). */
  beforeSeq?: number | undefined;
  limit: number;
}

export async function listMessages(db: Db, filter: MessageFilter): Promise<{ items: MessageRecord[]; nextCursor: string | null }> {
  const where: string[] = [];
  const values: unknown[] = [];
  const add = (sql: string, value: unknown) => {
    values.push(value);
    where.push(sql.replace("?", `$${values.length}`));
  };
  if (filter.app !== undefined) add("m.app = ?", filter.app);
  // One primary-key probe per candidate full id (one per app), never a scan for a suffix.
  if (Array.isArray(filter.ids)) add("m.id = any (?::text[])", filter.ids);
  else if (filter.ids !== undefined) {
    values.push(filter.ids.anyApp);
    const id = `$${values.length}::text`;
    where.push(`m.id = any (array(select name || '/' || ${id} from apps) || ${id})`);
  }
  if (filter.visibleTo !== undefined) {
    values.push(filter.visibleTo.app, filter.visibleTo.readTopics);
    where.push(`(m.app = $${values.length - 1} or m.topic = any ($${values.length}::text[]))`);
  }
  if (filter.topic !== undefined) add("m.topic = ?", filter.topic);
  if (filter.key !== undefined) add("m.key = ?", filter.key);
  if (filter.tag !== undefined) add("m.tag = ?", filter.tag);
  if (filter.createdAfter !== undefined) add("m.created_at >= ?", filter.createdAfter);
  if (filter.createdBefore !== undefined) add("m.created_at < ?", filter.createdBefore);
  if (filter.state === "in_doubt") where.push("m.state = 'prepared' and m.in_doubt_at is not null");
  else if (filter.state !== undefined) add("m.state = ?::message_state", filter.state);
  if (filter.beforeSeq !== undefined) add("m.seq < ?", filter.beforeSeq);
  if (filter.subscription !== undefined || filter.deliveryState !== undefined) {
    const inner: string[] = ["d.message_id = m.id"];
    if (filter.subscription !== undefined) {
      values.push(filter.subscription);
      inner.push(`d.subscription_id = (select id from subscriptions where name = $${values.length})`);
    }
    if (filter.deliveryState !== undefined) {
      values.push(filter.deliveryState);
      inner.push(`d.state = $${values.length}::delivery_state`);
    }
    where.push(`exists (select 1 from deliveries d where ${inner.join(" and ")})`);
  }
  values.push(filter.limit + 1);
  const { rows } = await db.query(
    `select ${MESSAGE_COLUMNS} from messages m ${where.length ? "where " + where.join(" and ") : ""}
      order by m.seq desc limit $${values.length}`,
    values,
  );
  const items = rows.slice(0, filter.limit).map(toMessage);
  const last = items[items.length - 1];
  return { items, nextCursor: rows.length > filter.limit && last ? String(last.seq) : null };
}
