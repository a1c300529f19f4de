import type { Db } from "./db.ts";

/** What a relay reports in a heartbeat, for the app it ships for ('' for the admin's own messages). */
export interface RelayHeartbeat {
  app: string;
  name: string;
  pending: number;
  failed: number;
  oldestPendingSeconds: number | null;
  lastSentAt: Date | null;
  intervalMs: number;
  /** The relay stopped on purpose: it is not awaited any more. */
  stopped: boolean;
}

/** A relay as the API and the alerts see it. */
export interface RelayRecord {
  app: string | null;
  name: string;
  pending: number;
  failed: number;
  oldestPendingSeconds: number | null;
  lastSentAt: string | null;
  intervalMs: number;
  firstSeenAt: string;
  lastSeenAt: string;
  stoppedAt: string | null;
  /** Seconds since its last heartbeat, by the database's clock. */
  heartbeatAgeSeconds: number;
  /** Not stopped, and its last heartbeat is older than the threshold. */
  stale: boolean;
}

/** Rows of relays that stopped on purpose are kept this long, then dropped by the app's next heartbeat. */
const STOPPED_KEPT = "1 day";

// $1 app, $2 name, $3 pending, $4 failed, $5 oldest pending seconds, $6 last sent at, $7 interval
// ms, $8 stopped. One row per app and name: each heartbeat replaces the last one's counts, and a
// heartbeat after a stop brings the relay back. The same statement drops the app's relays that
// stopped on purpose a day ago (a relay named by host and pid gets a new name at each start).
const HEARTBEAT_SQL = `
with beat as (
  insert into relays (app, name, pending, failed, oldest_pending_seconds, last_sent_at, interval_ms, stopped_at)
  values ($1, $2, $3, $4, $5, $6, $7, case when $8::boolean then now() end)
  on conflict (app, name) do update set
    pending = excluded.pending, failed = excluded.failed, oldest_pending_seconds = excluded.oldest_pending_seconds,
    last_sent_at = excluded.last_sent_at, interval_ms = excluded.interval_ms, last_seen_at = now(),
    stopped_at = excluded.stopped_at
  returning 1
), forgotten as (
  delete from relays where app = $1 and name <> $2 and stopped_at < now() - interval '${STOPPED_KEPT}'
)
select 1 from beat`;

export async function recordHeartbeat(db: Db, h: RelayHeartbeat): Promise<void> {
  await db.query(HEARTBEAT_SQL, [h.app, h.name, h.pending, h.failed, h.oldestPendingSeconds, h.lastSentAt, h.intervalMs, h.stopped]);
}

const SELECT = `select app, name, pending, failed, oldest_pending_seconds, last_sent_at, interval_ms, first_seen_at, last_seen_at, stopped_at,
    greatest(0, extract(epoch from now() - last_seen_at))::float8 as age,
    stopped_at is null and last_seen_at < now() - make_interval(secs => $1 / 1000.0) as stale
  from relays`;

function toRecord(r: Record<string, unknown>): RelayRecord {
  const iso = (v: unknown) => (v instanceof Date ? v.toISOString() : null);
  return {
    app: r.app === "" ? null : (r.app as string),
    name: r.name as string,
    pending: Number(r.pending),
    failed: Number(r.failed),
    oldestPendingSeconds: r.oldest_pending_seconds === null ? null : Number(r.oldest_pending_seconds),
    lastSentAt: iso(r.last_sent_at),
    intervalMs: Number(r.interval_ms),
    firstSeenAt: iso(r.first_seen_at)!,
    lastSeenAt: iso(r.last_seen_at)!,
    stoppedAt: iso(r.stopped_at),
    heartbeatAgeSeconds: Number(r.age),
    stale: r.stale === true,
  };
}

// $1 stale after (ms). Every relay, by app and name; a few rows per producer process.
export async function listRelays(db: Db, staleAfterMs: number): Promise<RelayRecord[]> {
  const { rows } = await db.query(`${SELECT} order by app, name`, [staleAfterMs]);
  return rows.map(toRecord);
}

// $1 stale after (ms). What the alerts look at: relays that stopped reporting without saying they
// stop, and relays that hold rows they could not ship (failed rows wait for a person: `outbox.retry()`).
export async function staleOrFailingRelays(db: Db, staleAfterMs: number): Promise<RelayRecord[]> {
  const { rows } = await db.query(
    `${SELECT} where stopped_at is null and (last_seen_at < now() - make_interval(secs => $1 / 1000.0) or failed > 0) order by app, name`,
    [staleAfterMs],
  );
  return rows.map(toRecord);
}

// $1 app ('' for the admin's), $2 name. Forgets a relay (one that will not come back); whether there was one.
export async function deleteRelay(db: Db, app: string, name: string): Promise<boolean> {
  const { rowCount } = await db.query("delete from relays where app = $1 and name = $2", [app, name]);
  return (rowCount ?? 0) > 0;
}
