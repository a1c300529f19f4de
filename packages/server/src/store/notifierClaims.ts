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
          and exists (select 1 from alert_events e
                       where (e.tx, e.id) > (c.cursor_tx, c.cursor) and e.tx < pg_snapshot_xmin(pg_current_snapshot()))
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

/**
 * The alert events after a channel's place, in (tx, id) order, of transactions older than every
 * one still running: an event of a transaction still running could commit below one read now.
 * Params: $1 cursor tx, $2 cursor id, $3 limit.
 */
export async function eventsAfter(db: Db, cursorTx: string, cursor: number, limit: number): Promise<AlertEvent[]> {
  const { rows } = await db.query(
    `select * from alert_events
      where (tx, id) > ($1::xid8, $2) and tx < pg_snapshot_xmin(pg_current_snapshot())
      order by tx, id limit $3`,
    [cursorTx, cursor, limit],
  );
  return rows.map(toAlertEvent);
}

/** When the channel sent (or tried) its notifications of the last minute. Params: $1 the channel. */
export async function recentSends(db: Db, channelId: number): Promise<Date[]> {
  const { rows } = await db.query("select at from channel_notifications where channel_id = $1 and at > now() - interval '1 minute'", [channelId]);
  return rows.map((r) => r.at as Date);
}

export interface SendOutcome {
  /** The last event the notification covered, as (tx, id): the cursor moves there on success. */
  lastTx: string;
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
 * Params: $1 channel, $2 lease, $3 last event, $4 error, $5 retry ms, $6 first event, $7 events, $8 last event's tx.
 */
export async function recordSend(db: Db, channelId: number, lease: string, o: SendOutcome): Promise<boolean> {
  const { rows } = await db.query(
    `with done as (
       update notification_channels set
           cursor_tx = case when $4::text is null and (cursor_tx, cursor) < ($8::xid8, $3) then $8::xid8 else cursor_tx end,
           cursor = case when $4::text is null and (cursor_tx, cursor) < ($8::xid8, $3) then $3 else cursor end,
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
    [channelId, lease, o.lastEvent, o.error, o.retryMs, o.firstEvent, o.events, o.lastTx],
  );
  return rows[0].n > 0;
}

/**
 * Gives a channel back without sending: its cursor moves to `last` (events its filter passes
 * over) and it waits `waitMs` (its rate limit's next slot; 0: none).
 * Params: $1 channel, $2 lease, $3 last event's id and $5 its tx (null: unchanged), $4 wait ms.
 */
export async function releaseChannel(db: Db, channelId: number, lease: string, last: { tx: string; id: number } | null, waitMs: number): Promise<void> {
  await db.query(
    `update notification_channels set
         cursor_tx = case when $3::bigint is not null and (cursor_tx, cursor) < ($5::xid8, $3) then $5::xid8 else cursor_tx end,
         cursor = case when $3::bigint is not null and (cursor_tx, cursor) < ($5::xid8, $3) then $3 else cursor end,
         not_before = greatest(not_before, now() + $4 * interval '1 millisecond'), lease_owner = null, lease_until = null
       where id = $1 and lease_owner = $2`,
    [channelId, lease, last?.id ?? null, waitMs, last?.tx ?? null],
  );
}
