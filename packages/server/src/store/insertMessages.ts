import type { Db, Tx } from "./db.ts";
import { MESSAGE_COLUMNS, toMessage, type MessageRecord } from "./rows.ts";
import { fanOut, splitFanOutRows, type CreatedDelivery } from "./fanOut.ts";

export type { CreatedDelivery };

export interface NewMessage {
  id: string;
  app: string | null;
  topic: string;
  tag: string | null;
  key: string | null;
  /** The payload as JSON text. */
  payloadJson: string;
  headers: Record<string, string>;
  contentHash: Buffer;
  /** null: now. */
  deliverAt: Date | null;
  state: "committed" | "prepared";
  /** Prepared messages: how long after storing to first ask the producer (ms). */
  checkAfterMs: number | null;
}

export type InsertOutcome =
  | { kind: "created"; message: MessageRecord }
  | { kind: "exists"; message: MessageRecord }
  | { kind: "conflict"; message: MessageRecord };

// $1..$11 the message columns as parallel arrays; $12 this node's id, or null to leave the
// deliveries to the poller; $13 the lease in ms.
// One statement inserts the messages, skips ids already taken, and fans each committed
// message out to one delivery per matching subscription (see fanOut).
const INSERT_SQL = `
with input as (
  select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::bytea[], $9::timestamptz[], $10::message_state[], $11::float8[])
    as t(id, app, topic, tag, key, payload, headers, content_hash, deliver_at, state, check_after_ms)
), ins as (
  insert into messages (id, app, topic, tag, key, payload, headers, content_hash, state, deliver_at, committed_at, next_check_at)
  select id, app, topic, tag, key, payload::jsonb, headers::jsonb, content_hash, state,
         coalesce(deliver_at, now()), case when state = 'committed' then now() end,
         case when state = 'prepared' then now() + make_interval(secs => check_after_ms / 1000) end
  from input
  on conflict (id) do nothing
  returning ${MESSAGE_COLUMNS.replaceAll("m.", "")}
), ${fanOut("ins", "$12", "$13")}
select 'm' as kind, to_jsonb(ins) as row from ins
union all
select 'd', to_jsonb(dels) from dels`;

/**
 * Inserts messages in the caller's transaction. Ids already stored are not inserted: their
 * stored message is returned as "exists" (same content) or "conflict" (other content).
 */
export async function insertMessages(
  tx: Tx | Db,
  nodeId: string | null,
  leaseMs: number,
  messages: readonly NewMessage[],
): Promise<{ outcomes: InsertOutcome[]; deliveries: CreatedDelivery[] }> {
  const { rows } = await tx.query<{ kind: string; row: Record<string, unknown> }>({
    name: "insert_messages",
    text: INSERT_SQL,
    values: [
      messages.map((m) => m.id),
      messages.map((m) => m.app),
      messages.map((m) => m.topic),
      messages.map((m) => m.tag),
      messages.map((m) => m.key),
      messages.map((m) => m.payloadJson),
      messages.map((m) => JSON.stringify(m.headers)),
      messages.map((m) => m.contentHash),
      messages.map((m) => m.deliverAt),
      messages.map((m) => m.state),
      messages.map((m) => m.checkAfterMs),
      nodeId,
      leaseMs,
    ],
  });
  const { messages: created, deliveries } = splitFanOutRows(rows);
  const missing = messages.filter((m) => !created.has(m.id)).map((m) => m.id);
  const existing = new Map<string, { message: MessageRecord; hash: Buffer }>();
  if (missing.length > 0) {
    const found = await tx.query(`select ${MESSAGE_COLUMNS}, m.content_hash from messages m where m.id = any ($1)`, [missing]);
    for (const row of found.rows) existing.set(row.id, { message: toMessage(row), hash: row.content_hash });
  }
  const seen = new Set<string>();
  const outcomes = messages.map((m): InsertOutcome => {
    const fresh = created.get(m.id);
    // The first occurrence of an id in this batch is the one inserted; repeats compare with it.
    if (fresh && !seen.has(m.id)) {
      seen.add(m.id);
      return { kind: "created", message: fresh };
    }
    const stored = existing.get(m.id);
    const hash = stored?.hash ?? messages.find((other) => other.id === m.id)!.contentHash;
    const message = stored?.message ?? fresh!;
    return { kind: hash.equals(m.contentHash) ? "exists" : "conflict", message };
  });
  return { outcomes, deliveries };
}
