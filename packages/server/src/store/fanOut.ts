import type { MessageRecord } from "../domain/message.ts";
import { toMessage } from "./messageRows.ts";
import { TODAY_UTC } from "./retention.ts";
import { parseExact } from "../domain/rawJson.ts";

/** A delivery created for a committed message; leased to this node when due now. */
export interface CreatedDelivery {
  deliveryId: number;
  /** Its message's UTC day ("YYYY-MM-DD"): the partition it went in. */
  messageDay: string;
  messageId: string;
  subscriptionId: number;
  leased: boolean;
}

/**
 * How long a keyed delivery of an ordered subscription found waiting behind an earlier one of its
 * key is left out of claims ("parked"). It is woken as soon as the one before it stops holding the
 * key (orderedClaim.ts, WAKE_SQL); this is only the safety net for what does not announce itself,
 * and it bounds how often a deep backlog of one key is read: each row once per 30 s.
 */
export const PARK_MS = 30_000;

/**
 * The `dels` CTE: one delivery per matching subscription (topic, and tag when it lists tags)
 * for each committed row of `source` (which has the message's `day`: its deliveries go in that
 * day's partition). Deliveries due now on an enabled subscription are leased
 * to the node `nodeParam` (unless it is null), so that it can dispatch them from memory without
 * a claim round trip; the rest wait for the poller.
 *
 * A keyed message on a subscription ordered by key gets its place in the key: `order_key`, and
 * `order_at`, when it became deliverable (now, the statement that accepts or commits it, or its
 * `deliver_at` if later; ties go by delivery id, made in the order of `seq`). Such a delivery is
 * never leased here: only a claim, which sees the key's other deliveries, may start it. One due
 * now with two or more unfinished deliveries before it in its key is created parked: claims do
 * not read it until the one before it finishes and wakes it (a backlog of a key costs no parking
 * writes). Not the one right behind the head: that one the head may finish while this statement
 * runs, unseen by the wake; a claim parks it if need be, serialized with the wakes.
 */
export function fanOut(source: string, nodeParam: string, leaseParam: string): string {
  return `dels as (
  insert into deliveries (message_id, message_day, subscription_id, next_attempt_at, lease_owner, order_key, order_at, parked)
  select f.id, f.day, f.subscription_id,
         case when f.parked then now() + make_interval(secs => ${PARK_MS / 1000})
              when ${nodeParam}::text is not null and f.lease then now() + make_interval(secs => ${leaseParam}::float8 / 1000)
              else f.deliver_at end,
         case when f.lease then ${nodeParam}::text end,
         f.order_key, f.order_at, f.parked
  from (
    select src.id, src.day, src.seq, src.deliver_at, s.id as subscription_id,
           s.enabled and src.deliver_at <= now() and not (s.ordering = 'key' and src.key is not null) as lease,
           case when s.ordering = 'key' then src.key end as order_key,
           case when s.ordering = 'key' and src.key is not null then greatest(src.deliver_at, now()) end as order_at,
           case when s.ordering = 'key' and src.key is not null and src.deliver_at <= now()
                then (select count(*) from (select 1 from deliveries e
                        where e.subscription_id = s.id and e.order_key = src.key and e.message_day <= ${TODAY_UTC}
                          and (e.state = 'pending' or (e.state = 'dead' and e.skipped_at is null)) limit 2) two) = 2
                else false end as parked
    from ${source} src join subscriptions s on s.topic = src.topic and (s.tags is null or src.tag = any (s.tags))
    where src.state = 'committed'
  ) f
  order by f.seq
  returning id, message_id, message_day::text as message_day, subscription_id, lease_owner
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
        messageDay: row.message_day as string,
        messageId: row.message_id as string,
        subscriptionId: row.subscription_id as number,
        leased: row.lease_owner !== null,
      });
    }
  }
  return { messages, deliveries };
}
