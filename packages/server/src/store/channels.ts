import type { ChannelFilter, ChannelRow, ChannelSettings, ChannelType } from "../domain/channel.ts";
import type { AlertEvent } from "../domain/notification.ts";
import type { Db } from "./db.ts";

export const toChannel = (r: Record<string, unknown>): ChannelRow => ({
  id: Number(r.id),
  name: r.name as string,
  type: r.type as ChannelType,
  settings: r.settings as ChannelSettings,
  secret: (r.secret as string | null) ?? null,
  filter: { conditions: (r.conditions as string[] | null) ?? null, events: (r.events as string[] | null) ?? null },
  perMinute: r.per_minute as number,
  retrySchedule: r.retry_schedule as number[],
  enabled: r.enabled as boolean,
  cursorTx: String(r.cursor_tx),
  cursor: Number(r.cursor),
  notBefore: r.not_before as Date,
  failures: r.failures as number,
  lastError: (r.last_error as string | null) ?? null,
  lastErrorAt: (r.last_error_at as Date | null) ?? null,
  lastSentAt: (r.last_sent_at as Date | null) ?? null,
  sent: Number(r.sent),
  createdAt: r.created_at as Date,
  updatedAt: r.updated_at as Date,
});

export interface NewChannel {
  name: string;
  type: ChannelType;
  settings: ChannelSettings;
  secret: string | null;
  filter: ChannelFilter;
  perMinute: number;
  retrySchedule: number[];
  enabled: boolean;
}

/** Creates a channel placed after the events of every finished transaction; null when the name is taken. Params: the channel. */
export async function createChannel(db: Db, c: NewChannel): Promise<ChannelRow | null> {
  const { rows } = await db.query(
    `insert into notification_channels (name, type, settings, secret, conditions, events, per_minute, retry_schedule, enabled, cursor_tx, cursor)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, pg_snapshot_xmin(pg_current_snapshot()), 0)
     on conflict (name) do nothing returning *`,
    [c.name, c.type, c.settings, c.secret, c.filter.conditions, c.filter.events, c.perMinute, c.retrySchedule, c.enabled],
  );
  return rows[0] ? toChannel(rows[0]) : null;
}

export async function listChannels(db: Db): Promise<ChannelRow[]> {
  const { rows } = await db.query("select * from notification_channels order by name");
  return rows.map(toChannel);
}

/** Params: $1 the channel's id. */
export async function getChannel(db: Db, id: number): Promise<ChannelRow | null> {
  const { rows } = await db.query("select * from notification_channels where id = $1", [id]);
  return rows[0] ? toChannel(rows[0]) : null;
}

export interface ChannelPatch {
  name?: string | undefined;
  settings?: ChannelSettings | undefined;
  /** undefined: keep; null: none. */
  secret?: string | null | undefined;
  filter?: ChannelFilter | undefined;
  perMinute?: number | undefined;
  retrySchedule?: number[] | undefined;
  enabled?: boolean | undefined;
}

/**
 * Changes a channel. A changed target or a resumed channel is worth a try at once: its wait
 * after failures ends. Returns null when there is none; throws the unique violation of a taken name.
 */
export async function updateChannel(db: Db, id: number, p: ChannelPatch): Promise<ChannelRow | null> {
  const retarget = p.settings !== undefined || p.secret !== undefined || p.enabled === true;
  const { rows } = await db.query(
    `update notification_channels set
         name = coalesce($2, name),
         settings = coalesce($3, settings),
         secret = case when $4 then $5 else secret end,
         conditions = case when $6 then $7 else conditions end,
         events = case when $6 then $8 else events end,
         per_minute = coalesce($9, per_minute),
         retry_schedule = coalesce($10, retry_schedule),
         enabled = coalesce($11, enabled),
         not_before = case when $12 then least(not_before, now()) else not_before end,
         updated_at = now()
       where id = $1 returning *`,
    [
      id,
      p.name ?? null,
      p.settings ?? null,
      p.secret !== undefined,
      p.secret ?? null,
      p.filter !== undefined,
      p.filter?.conditions ?? null,
      p.filter?.events ?? null,
      p.perMinute ?? null,
      p.retrySchedule ?? null,
      p.enabled ?? null,
      retarget,
    ],
  );
  return rows[0] ? toChannel(rows[0]) : null;
}

/** Params: $1 the channel's id. */
export async function deleteChannel(db: Db, id: number): Promise<boolean> {
  const { rowCount } = await db.query("delete from notification_channels where id = $1", [id]);
  return (rowCount ?? 0) > 0;
}

export interface ChannelNotificationRecord {
  at: string;
  events: number;
  ok: boolean;
  error: string | null;
}

/** The last notifications of a channel, newest first. Params: $1 the channel, $2 how many. */
export async function recentNotifications(db: Db, id: number, limit: number): Promise<ChannelNotificationRecord[]> {
  const { rows } = await db.query("select at, events, ok, error from channel_notifications where channel_id = $1 order by id desc limit $2", [id, limit]);
  return rows.map((r) => ({ at: (r.at as Date).toISOString(), events: r.events, ok: r.ok, error: r.error }));
}

/** Alert events a channel has not told of yet, how many are waiting per channel: for the list. */
export async function waitingEvents(db: Db): Promise<Map<number, number>> {
  const { rows } = await db.query(
    `select c.id, (select count(*) from (select 1 from alert_events e where (e.tx, e.id) > (c.cursor_tx, c.cursor) limit 10000) w)::int as waiting
       from notification_channels c`,
  );
  return new Map(rows.map((r) => [Number(r.id), r.waiting as number]));
}

export const toAlertEvent = (r: Record<string, unknown>): AlertEvent => ({
  id: Number(r.id),
  tx: String(r.tx),
  alertId: Number(r.alert_id),
  event: r.event as string,
  condition: r.condition as string,
  subject: r.subject as string,
  summary: r.summary as string,
  nextStep: r.next_step as string,
  link: r.link as string,
  at: r.at as Date,
});
