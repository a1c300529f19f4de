import type { DeliveryRecord } from "../domain/delivery.ts";
import type { MessageRecord } from "../domain/message.ts";
import type { Db } from "./db.ts";
import { EXACT_TYPES, MESSAGE_COLUMNS, toDelivery, toMessage } from "./messageRows.ts";

export async function getMessage(db: Db, id: string): Promise<MessageRecord | null> {
  // $1 the message id
  const { rows } = await db.query({ text: `select ${MESSAGE_COLUMNS} from messages m where m.id = $1`, values: [id], types: EXACT_TYPES });
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

/** An app key's view: its own messages and those of its read topics (its two parameters pushed onto `values`). */
export interface Visibility {
  app: string;
  readTopics: readonly string[];
}
function visibleTo(values: unknown[], v: Visibility): string {
  values.push(v.app, v.readTopics);
  return `(m.app = $${values.length - 1} or m.topic = any ($${values.length}::text[]))`;
}

/**
 * Of the messages with these full ids, those `visible` (all when undefined), with their state:
 * one statement, a primary-key probe per id in each day's partition (as `getMessage`'s); an id
 * is unique across the days (the insert checks the older days), so at most one row per id.
 */
export async function lookupMessages(db: Db, ids: readonly string[], visible: Visibility | undefined): Promise<Map<string, string>> {
  const values: unknown[] = [ids];
  const where = visible === undefined ? "" : ` and ${visibleTo(values, visible)}`;
  // $1 the full ids; with an app's view, $2 its app and $3 its read topics
  const { rows } = await db.query<{ id: string; state: string }>(`select m.id, m.state from messages m where m.id = any ($1::text[])${where}`, values);
  return new Map(rows.map((r) => [r.id, r.state]));
}

export interface MessageFilter {
  app?: string | undefined;
  /** Full ids; or `anyApp`: a bare id in every app's namespace and the admin's own. */
  ids?: string[] | { anyApp: string } | undefined;
  /** An app key's view: its own messages and those of its read topics. */
  visibleTo?: Visibility | undefined;
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
  /** The page ends once its payloads and headers pass this many bytes (it holds one message at least). */
  maxBytes?: number | undefined;
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
  if (filter.visibleTo !== undefined) where.push(visibleTo(values, filter.visibleTo));
  if (filter.topic !== undefined) add("m.topic = ?", filter.topic);
  if (filter.key !== undefined) add("m.key = ?", filter.key);
  if (filter.tag !== undefined) add("m.tag = ?", filter.tag);
  if (filter.createdAfter !== undefined) add("m.created_at >= ?", filter.createdAfter);
  if (filter.createdBefore !== undefined) add("m.created_at < ?", filter.createdBefore);
  if (filter.state === "in_doubt") where.push("m.state = 'prepared' and m.in_doubt_at is not null");
  else if (filter.state !== undefined) add("m.state = ?::message_state", filter.state);
  if (filter.beforeSeq !== undefined) add("m.seq < ?", filter.beforeSeq);
  if (filter.subscription !== undefined || filter.deliveryState !== undefined) {
    const inner: string[] = ["d.message_id = m.id and d.message_day = m.day"];
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
  const limitParam = values.length;
  values.push(filter.maxBytes ?? Number.MAX_SAFE_INTEGER);
  const budgetParam = values.length;
  // The filter's parameters, then the page size + 1 and the byte budget. Running sums of the
  // rows' sizes tell which fit: first of the sizes as stored (pg_column_size, free: no value is
  // read), then, only for the rows still within the budget by that measure, of their text
  // (which reads them: a compressed payload is larger than stored). Rows past the budget come
  // back without payload, as the sign of more.
  const { rows } = await db.query({
    text: `select p.seq, p.id, p.app, p.topic, p.tag, p.key, case when p.fits then p.payload_all end as payload,
             case when p.fits then p.headers_all end as headers, p.state, p.deliver_at, p.created_at, p.committed_at,
             p.rolled_back_at, p.checks, p.next_check_at, p.in_doubt_at, p.completed_at, p.fits
      from (
        select s.*, (s.rn = 1 or sum(case when s.stored_bytes <= $${budgetParam}::bigint
                                          then octet_length(s.payload_all::text) + octet_length(s.headers_all::text)
                                          else $${budgetParam}::bigint + 1 end) over w <= $${budgetParam}::bigint) as fits
          from (
            select m.seq, m.id, m.app, m.topic, m.tag, m.key, m.payload as payload_all, m.headers as headers_all, m.state,
                   m.deliver_at, m.created_at, m.committed_at, m.rolled_back_at, m.checks, m.next_check_at, m.in_doubt_at, m.completed_at,
                   row_number() over w as rn, sum(pg_column_size(m.payload) + pg_column_size(m.headers)) over w as stored_bytes
              from messages m ${where.length ? `where ${where.join(" and ")}` : ""}
            window w as (order by m.seq desc rows between unbounded preceding and current row)
            order by m.seq desc limit $${limitParam}
          ) s
        window w as (order by s.seq desc rows between unbounded preceding and current row)
      ) p order by p.seq desc`,
    values,
    types: EXACT_TYPES,
  });
  let end = rows.findIndex((r) => !r.fits);
  if (end === -1 || end > filter.limit) end = Math.min(rows.length, filter.limit);
  const items = rows.slice(0, end).map(toMessage);
  const last = items[items.length - 1];
  return { items, nextCursor: rows.length > end && last ? String(last.seq) : null };
}
