import type { Db } from "./db.ts";
import { inTransaction } from "./db.ts";

/**
 * Today, UTC, on the database's clock: a message's day is this at its insert, so no message (nor
 * its deliveries, attempts, checks) is of a later day. Said in a probe of the partitioned tables,
 * it lets PostgreSQL leave the days created ahead (always empty) out when the statement starts.
 */
export const TODAY_UTC = "(now() at time zone 'utc')::date";

/** The four tables partitioned by their message's day (0027), dropped together. */
const DAY_TABLES = ["attempts", "deliveries", "checks", "messages"] as const;

/**
 * Days created ahead of today: a node that stops running its maintenance (or a database that
 * refuses the lock for a while) leaves three days before publishes find no partition.
 */
export const DAYS_AHEAD = 3;

/**
 * How long creating or dropping a day's partitions waits for its locks: it needs the parents
 * exclusively for a moment, and publishes queue behind a waiting lock, so a busy table (a long
 * console search, a feed read) makes it give up quickly and try at the next pass rather than
 * stall writes.
 */
export const LOCK_TIMEOUT_MS = 500;

/** One day's partitions (or the legacy ones, which hold every day before migration 0027). */
export interface DayPartition {
  /** The name's suffix shared by the four tables' partitions: "20261205", or "legacy". */
  suffix: string;
  /** The first day after it (its upper bound, exclusive), as YYYY-MM-DD. */
  until: string;
  /** Whether it starts at MINVALUE: the legacy partitions, whose rows' day says nothing. */
  legacy: boolean;
}

/**
 * Creates the day partitions of today (UTC, the database's clock) and DAYS_AHEAD days after it
 * where missing. Run at start and by every retention pass on every node: idempotent, and the
 * function serializes nodes on an advisory lock. Creating a partition locks its parent
 * exclusively for a moment, so it waits for its lock no longer than a drop does (the days ahead
 * leave many passes to try again). Returns the tables created.
 */
export async function createDayPartitions(db: Db, daysAhead = DAYS_AHEAD): Promise<number> {
  return inTransaction(db, async (tx) => {
    await tx.query(`set local lock_timeout = ${LOCK_TIMEOUT_MS}`);
    const { rows } = await tx.query(`select tidings_create_day_partitions(${TODAY_UTC}, ${TODAY_UTC} + $1::int) as made`, [daysAhead]);
    return rows[0].made;
  });
}

/** The partitions of messages, oldest first, from the catalog. */
export async function dayPartitions(db: Db): Promise<DayPartition[]> {
  const { rows } = await db.query<{ name: string; bound: string }>(
    `select c.relname as name, pg_get_expr(c.relpartbound, c.oid) as bound
       from pg_inherits i join pg_class c on c.oid = i.inhrelid
      where i.inhparent = 'messages'::regclass`,
  );
  const parts: DayPartition[] = [];
  for (const { name, bound } of rows) {
    const until = /TO \('(\d{4}-\d{2}-\d{2})'\)/.exec(bound)?.[1];
    if (!until || !name.startsWith("messages_")) continue;
    parts.push({ suffix: name.slice("messages_".length), until, legacy: bound.includes("MINVALUE") });
  }
  return parts.sort((a, b) => a.until.localeCompare(b.until));
}

// A partition's tables by name: the suffix comes from the catalog, quoted all the same.
const table = (name: string, suffix: string) => `"${`${name}_${suffix}`.replaceAll('"', '""')}"`;

/**
 * What keeps a partition: a message not finished (prepared, or committed with a delivery pending
 * or dead), each found through a small partial index of its partition. Rows committed or rolled
 * back more recently than the retention are checked apart (RECENT), by a read of the partition.
 */
const holdsSql = (suffix: string) => `select
  exists (select 1 from ${table("messages", suffix)} where state = 'prepared')
  or exists (select 1 from ${table("deliveries", suffix)} where state = 'pending')
  or exists (select 1 from ${table("deliveries", suffix)} where state = 'dead') as held`;

// $1 retention in ms. Whether any message of the partition finished more recently than that.
const recentSql = (suffix: string) => `select exists (
  select 1 from ${table("messages", suffix)}
   where committed_at >= now() - make_interval(secs => $1::float8 / 1000)
      or rolled_back_at >= now() - make_interval(secs => $1::float8 / 1000)) as recent`;

// $1 retention in ms. Whether the partition's whole range is older than the retention: a day's
// end (its upper bound, midnight UTC) for a day, the newest message for the legacy partitions.
async function pastRetention(db: Db, p: DayPartition, retentionMs: number): Promise<boolean> {
  const { rows } = await db.query(
    p.legacy
      ? `select coalesce(max(created_at) < now() - make_interval(secs => $1::float8 / 1000), true) as past from ${table("messages", p.suffix)}`
      : `select ($2::date::timestamp at time zone 'utc') <= now() - make_interval(secs => $1::float8 / 1000) as past`,
    p.legacy ? [retentionMs] : [retentionMs, p.until],
  );
  return rows[0].past;
}

export interface RetentionPass {
  /** Suffixes of the partitions dropped. */
  dropped: string[];
  /** Suffixes of the partitions past the retention kept for a message not finished. */
  held: string[];
  /** Suffixes whose drop gave up waiting for its locks (tried again at the next pass). */
  busy: string[];
  /** The longest a pass held (or waited for) the parents' locks, in ms: what a publish may wait. */
  lockedMs: number;
}

/**
 * One retention pass: removes each day's partitions (attempts, deliveries, checks, messages: one
 * transaction) once the whole day is older than the retention and every message of it is
 * finished (committed with every delivery delivered, or rolled back), and finished longer ago
 * than the retention: today's rule for rows, by days. A day with a message not finished is kept
 * whole (`held`); nothing acknowledged and unfinished is ever dropped. The conditions are read
 * again under the exclusive locks, so a re-send that made a delivery pending meanwhile keeps it.
 * Today (and any later day) is never dropped: its end is in the future.
 *
 * The transaction holding the parents' locks only detaches the four partitions (catalog rows);
 * the tables are dropped after it, holding no lock anyone else wants. Dropped under the parents'
 * locks, a day of 1,250,000 messages (with as many deliveries and attempts) held them 1.76 s
 * while its files were removed at commit: every publish waited that long. Tables left detached
 * by a crash between the two are dropped by the next pass.
 */
export async function dropFinishedDays(db: Db, retentionMs: number): Promise<RetentionPass> {
  const pass: RetentionPass = { dropped: [], held: [], busy: [], lockedMs: 0 };
  await dropDetached(db);
  for (const p of await dayPartitions(db)) {
    if (!(await pastRetention(db, p, retentionMs))) continue;
    if ((await db.query(holdsSql(p.suffix))).rows[0].held || (await db.query(recentSql(p.suffix), [retentionMs])).rows[0].recent) {
      pass.held.push(p.suffix);
      continue;
    }
    const started = performance.now();
    const outcome = await detachDay(db, p.suffix);
    pass.lockedMs = Math.max(pass.lockedMs, Math.round(performance.now() - started));
    if (outcome === "dropped") await dropDetached(db);
    pass[outcome].push(p.suffix);
  }
  return pass;
}

async function detachDay(db: Db, suffix: string): Promise<"dropped" | "held" | "busy"> {
  try {
    return await inTransaction(db, async (tx) => {
      await tx.query(`set local lock_timeout = ${LOCK_TIMEOUT_MS}`);
      // Parents first, in the order a publish takes them, then the partitions: a statement
      // holding a parent never waits here for a partition this transaction holds.
      await tx.query("lock table only messages, deliveries, attempts, checks in access exclusive mode");
      await tx.query(`lock table ${DAY_TABLES.map((t) => table(t, suffix)).join(", ")} in access exclusive mode`);
      if ((await tx.query(holdsSql(suffix))).rows[0].held) return "held";
      for (const t of DAY_TABLES) await tx.query(`alter table ${t} detach partition ${table(t, suffix)}`);
      return "dropped";
    });
  } catch (error) {
    if ((error as { code?: string }).code === "55P03") return "busy";
    throw error;
  }
}

/**
 * Drops the day tables no longer attached: those a pass detached (just now, or before a crash).
 * Only tables named as day partitions are, and the service never detaches one it keeps.
 */
async function dropDetached(db: Db): Promise<void> {
  const { rows } = await db.query<{ name: string }>(
    `select c.relname as name from pg_class c
      where c.relkind = 'r' and not c.relispartition and c.relnamespace = current_schema()::regnamespace
        and c.relname ~ '^(messages|deliveries|attempts|checks)_([0-9]{8}|legacy)$'`,
  );
  if (rows.length > 0) await db.query(`drop table if exists ${rows.map((r) => `"${r.name}"`).join(", ")}`);
}
