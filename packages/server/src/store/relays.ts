import { ALERT_CONDITIONS as C, NEXT_STEPS, relaySubject } from "../domain/alerts.ts";
import { clearAlert, raiseAlert } from "./alerts.ts";
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

/**
 * The relays' alerts, as states: each relay that stopped reporting has its relay_stale alert open,
 * each that holds failed rows its relay_failed_rows alert (the count: its failed rows); an open
 * one whose relay is fine again (or forgotten) is resolved. Answers how many relays are unwell.
 */
export async function checkRelays(db: Db, staleAfterMs: number): Promise<number> {
  const unwell = await staleOrFailingRelays(db, staleAfterMs);
  const still = new Set<string>();
  for (const r of unwell) {
    const subject = relaySubject(r.app, r.name);
    const common = { subject, app: r.app, link: "#/overview", mode: "set" as const };
    if (r.stale) {
      still.add(`${C.relayStale} ${subject}`);
      await raiseAlert(db, {
        ...common,
        condition: C.relayStale,
        detail: `no heartbeat for ${Math.round(r.heartbeatAgeSeconds)} s (${r.pending} rows waiting at the last one)`,
        nextStep: NEXT_STEPS.relay_stale,
      });
    }
    if (r.failed > 0) {
      still.add(`${C.relayFailedRows} ${subject}`);
      await raiseAlert(db, {
        ...common,
        condition: C.relayFailedRows,
        count: r.failed,
        detail: `${r.failed} outbox ${r.failed === 1 ? "row" : "rows"} the service refused`,
        nextStep: NEXT_STEPS.relay_failed_rows,
      });
    }
  }
  const { rows } = await db.query<{ condition: string; subject: string }>(
    "select condition, subject from alerts where resolved_at is null and condition = any ($1::text[])",
    [[C.relayStale, C.relayFailedRows]],
  );
  for (const a of rows) {
    if (still.has(`${a.condition} ${a.subject}`)) continue;
    await clearAlert(
      db,
      a.condition,
      a.subject,
      a.condition === C.relayStale ? "the relay reports again (or stopped on purpose, or was forgotten)" : "the relay holds no failed rows",
    );
  }
  return unwell.length;
}
