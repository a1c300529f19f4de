import type { ChannelRow } from "../domain/channel.ts";
import type { AlertEvent } from "../domain/notification.ts";
import { toAlertEvent, toChannel } from "./channels.ts";
import type { Db } from "./db.ts";

/** A channel taken by one node to send what waits for it, with the token that proves it. */
export interface ClaimedChannel {
  readonly channel: ChannelRow;
  readonly lease: string;
}

/**
 * Takes up to `limit` enabled channels that have alert events waiting and whose wait (retry,
 * rate limit) is over, each leased for `leaseMs` to the token `lease`:<id>. Rows another node
 * is taking are skipped (`skip locked`) and a lease still running is never taken, so a channel
 * has one sender at a time across all processes.
 * Params: $1 the lease token, $2 lease ms, $3 limit.
 */
export async function claimChannels(db: Db, lease: string, leaseMs: number, limit: number): Promise<ClaimedChannel[]> {
  const { rows } = await db.query(
    `with due as (
       select c.id from notification_channels c
        where c.enabled and c.not_before <= now()
          and (c.lease_until is null or c.lease_until < now())
          and exists (select 1 from alert_events e where e.id > c.cursor)
        order by c.not_before
        limit $3
        for update skip locked
     )
     update notification_channels c
        set lease_owner = $1 || ':' || c.id, lease_until = now() + $2 * interval '1 millisecond'
       from due where c.id = due.id
     returning c.*`,
    [lease, leaseMs, limit],
  );
  return rows.map((r) => ({ channel: toChannel(r), lease: r.lease_owner as string }));
}

/** The alert events after a channel's cursor, oldest first. Params: $1 cursor, $2 limit. */
export async function eventsAfter(db: Db, cursor: number, limit: number): Promise<AlertEvent[]> {
  const { rows } = await db.query("select * from alert_events where id > $1 order by id limit $2", [cursor, limit]);
  return rows.map(toAlertEvent);
}

/** When the channel sent (or tried) its notifications of the last minute. Params: $1 the channel. */
export async function recentSends(db: Db, channelId: number): Promise<Date[]> {
  const { rows } = await db.query("select at from channel_notifications where channel_id = $1 and at > now() - interval '1 minute'", [channelId]);
  return rows.map((r) => r.at as Date);
}

export interface SendOutcome {
  /** The last event the notification covered (the cursor moves there on success). */
  lastEvent: number;
  /** The first event it covered, and how many it told of. */
  firstEvent: number | null;
  events: number;
  /** null: it went through. */
  error: string | null;
  /** After a failure: the wait before the next try. */
  retryMs: number;
}

/**
 * The outcome of a notification, by the holder of the lease only (a node whose lease ran out
 * and was taken over writes nothing): on success the cursor moves past its events and the
 * failures are cleared; on a failure the channel waits `retryMs` with its last error kept. In
 * both cases it is logged (the rate limit counts it) and the lease is given back; the log keeps
 * a day. Returns false when the lease was lost.
 * Params: $1 channel, $2 lease, $3 last event, $4 error, $5 retry ms, $6 first event, $7 events.
 */
export async function recordSend(db: Db, channelId: number, lease: string, o: SendOutcome): Promise<boolean> {
  const { rows } = await db.query(
    `with done as (
       update notification_channels set
           cursor = case when $4::text is null then greatest(cursor, $3) else cursor end,
           failures = case when $4::text is null then 0 else failures + 1 end,
           last_sent_at = case when $4::text is null then now() else last_sent_at end,
           sent = sent + case when $4::text is null then 1 else 0 end,
           last_error = coalesce($4, last_error),
           last_error_at = case when $4::text is null then last_error_at else now() end,
           not_before = case when $4::text is null then now() else now() + $5 * interval '1 millisecond' end,
           lease_owner = null, lease_until = null
         where id = $1 and lease_owner = $2
       returning id
     ), logged as (
       insert into channel_notifications (channel_id, events, first_event, last_event, ok, error)
       select id, $7, $6, $3, $4::text is null, $4 from done
     ), pruned as (
       delete from channel_notifications where channel_id = $1 and at < now() - interval '1 day'
     )
     select count(*)::int as n from done`,
    [channelId, lease, o.lastEvent, o.error, o.retryMs, o.firstEvent, o.events],
  );
  return rows[0].n > 0;
}

/**
 * Gives a channel back without sending: its cursor moves to `lastEvent` (events its filter passes
 * over) and it waits `waitMs` (its rate limit's next slot; 0: none).
 * Params: $1 channel, $2 lease, $3 cursor (null: unchanged), $4 wait ms.
 */
export async function releaseChannel(db: Db, channelId: number, lease: string, lastEvent: number | null, waitMs: number): Promise<void> {
  await db.query(
    `update notification_channels set cursor = greatest(cursor, coalesce($3, cursor)),
         not_before = greatest(not_before, now() + $4 * interval '1 millisecond'), lease_owner = null, lease_until = null
       where id = $1 and lease_owner = $2`,
    [channelId, lease, lastEvent, waitMs],
  );
}
