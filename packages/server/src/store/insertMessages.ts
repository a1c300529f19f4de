import type { Db, Tx } from "./db.ts";
import { MESSAGE_COLUMNS, toMessage, type MessageRecord } from "./rows.ts";

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
}

/** A delivery created already leased to this node, to be dispatched from memory at once. */
export interface CreatedDelivery {
  deliveryId: number;
  messageId: string;
  subscriptionId: number;
  leased: boolean;
}

export type InsertOutcome =
  | { kind: "created"; message: MessageRecord }
  | { kind: "exists"; message: MessageRecord }
  | { kind: "conflict"; message: MessageRecord };

// $1..$10 the message columns as parallel arrays; $11 this node's id, or null to leave the
// deliveries to the poller; $12 the lease in ms.
// One statement inserts the messages, skips ids already taken, and fans each committed
// message out to one delivery per matching subscription. Deliveries due now are leased to
// this node so that it can dispatch them from memory without a claim round trip.
const INSERT_SQL = `
with input as (
  select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                       $8::bytea[], $9::timestamptz[], $10::message_state[])
    as t(id, app, topic, tag, key, payload, headers, content_hash, deliver_at, state)
), ins as (
  insert into messages (id, app, topic, tag, key, payload, headers, content_hash, state, deliver_at, committed_at)
  select id, app, topic, tag, key, payload::jsonb, headers::jsonb, content_hash, state,
         coalesce(deliver_at, now()), case when state = 'committed' then now() end
  from input
  on conflict (id) do nothing
  returning ${MESSAGE_COLUMNS.replaceAll("m.", "")}
), dels as (
  insert into deliveries (message_id, subscription_id, next_attempt_at, lease_owner)
  select ins.id, s.id,
         case when $11::text is not null and s.enabled and ins.deliver_at <= now()
              then now() + make_interval(secs => $12::float8 / 1000) else ins.deliver_at end,
         case when s.enabled and ins.deliver_at <= now() then $11::text end
  from ins join subscriptions s on s.topic = ins.topic and (s.tags is null or ins.tag = any (s.tags))
  where ins.state = 'committed'
  returning id, message_id, subscription_id, lease_owner
)
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
      nodeId,
      leaseMs,
    ],
  });
  const created = new Map<string, MessageRecord>();
  const deliveries: CreatedDelivery[] = [];
  for (const { kind, row } of rows) {
    if (kind === "m") {
      const message = toMessage({
        ...row,
        deliver_at: new Date(row.deliver_at as string),
        created_at: new Date(row.created_at as string),
        committed_at: row.committed_at ? new Date(row.committed_at as string) : null,
        rolled_back_at: null,
      });
      created.set(message.id, message);
    } else {
      deliveries.push({
        deliveryId: row.id as number,
        messageId: row.message_id as string,
        subscriptionId: row.subscription_id as number,
        leased: row.lease_owner !== null,
      });
    }
  }
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
