import type { MessageRecord } from "../domain/message.ts";
import { toMessage } from "./messageRows.ts";
import { parseExact } from "../domain/rawJson.ts";

/** A delivery created for a committed message; leased to this node when due now. */
export interface CreatedDelivery {
  deliveryId: number;
  messageId: string;
  subscriptionId: number;
  leased: boolean;
}

/**
 * The `dels` CTE: one delivery per matching subscription (topic, and tag when it lists tags)
 * for each committed row of `source`. Deliveries due now on an enabled subscription are leased
 * to the node `nodeParam` (unless it is null), so that it can dispatch them from memory without
 * a claim round trip; the rest wait for the poller.
 *
 * A keyed message on a subscription ordered by key gets its place in the key: `order_key`, and
 * `order_at`, when it became deliverable (now, the statement that accepts or commits it, or its
 * `deliver_at` if later; ties go by delivery id, made in the order of `seq`). Such a delivery is
 * never leased here: only a claim, which sees the key's other deliveries, may start it.
 */
export function fanOut(source: string, nodeParam: string, leaseParam: string): string {
  return `dels as (
  insert into deliveries (message_id, subscription_id, next_attempt_at, lease_owner, order_key, order_at)
  select src.id, s.id,
         case when ${nodeParam}::text is not null and s.enabled and src.deliver_at <= now() and not (s.ordering = 'key' and src.key is not null)
              then now() + make_interval(secs => ${leaseParam}::float8 / 1000) else src.deliver_at end,
         case when s.enabled and src.deliver_at <= now() and not (s.ordering = 'key' and src.key is not null) then ${nodeParam}::text end,
         case when s.ordering = 'key' then src.key end,
         case when s.ordering = 'key' and src.key is not null then greatest(src.deliver_at, now()) end
  from ${source} src join subscriptions s on s.topic = src.topic and (s.tags is null or src.tag = any (s.tags))
  where src.state = 'committed'
  order by src.seq
  returning id, message_id, subscription_id, lease_owner
)`;
}

/** Splits rows of `select 'm', to_jsonb(msg) … union all select 'd', to_jsonb(dels)`. */
export function splitFanOutRows(rows: Array<{ kind: string; row: Record<string, unknown> }>): {
  messages: Map<string, MessageRecord>;
  deliveries: CreatedDelivery[];
} {
  const messages = new Map<string, MessageRecord>();
  const deliveries: CreatedDelivery[] = [];
  for (const { kind, row } of rows) {
    if (kind === "m") {
      const message = toMessage(row);
      // The payload comes as its stored text (not inside the row): exact (a RawJson) where
      // JSON.parse would change a number.
      if (typeof row.payload_text === "string") message.payload = parseExact(row.payload_text);
      messages.set(message.id, message);
    } else {
      deliveries.push({
        deliveryId: row.id as number,
        messageId: row.message_id as string,
        subscriptionId: row.subscription_id as number,
        leased: row.lease_owner !== null,
      });
    }
  }
  return { messages, deliveries };
}
