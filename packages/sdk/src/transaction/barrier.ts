// Every SQL statement of transactional messages, on the user's own database, through the
// executor port. See sql/<dialect>/0002_transaction_barrier.sql for the tables, and
// docs/architecture.md ("The barrier") for why the answer cannot race the local transaction.
import { dialectOf } from "../executor/dialect.ts";
import type { Executor } from "../executor/executor.ts";
import { TidingsError } from "../errors.ts";

/** What a barrier row says: the local transaction committed, or it never will. */
export type BarrierOutcome = "commit" | "rollback";
/** A check-back's answer: the barrier's outcome, or `unknown` while the local transaction still runs. */
export type CheckAnswer = BarrierOutcome | "unknown";

/** Whether an error says a table is missing (migrate(db) was not run). */
function isMissingTable(error: unknown): boolean {
  const e = error as { code?: unknown; errno?: unknown } | undefined;
  return e?.code === "42P01" || e?.code === "ER_NO_SUCH_TABLE" || e?.errno === 1146;
}

function missingTables(error: unknown): TidingsError {
  return new TidingsError(
    "config",
    "the tidings_tx_database / tidings_tx_intent / tidings_tx_barrier tables are missing: run `await migrate(db)` (or sql/<dialect>/0002_transaction_barrier.sql and 0005_transaction_database.sql)",
    {
      cause: error,
    },
  );
}

/** Each executor's database identity, read once (the promise, so concurrent first calls share one read). */
const identities = new WeakMap<Executor, Promise<string>>();

/**
 * This database's identity (tidings_tx_database, made by migrate): `transaction()` sends it with
 * each prepare as the message's check context, and the check-back handler answers only for
 * messages that carry it. Read once per executor.
 */
export function databaseIdentity(db: Executor): Promise<string> {
  let identity = identities.get(db);
  if (!identity) {
    identity = readIdentity(db);
    identities.set(db, identity);
    // A failed read is not kept: the next call reads again (after migrate(db), say).
    identity.catch(() => identities.delete(db));
  }
  return identity;
}

async function readIdentity(db: Executor): Promise<string> {
  let rows: Array<{ id: unknown }>;
  try {
    rows = await db.query<{ id: unknown }>("SELECT id FROM tidings_tx_database WHERE one = 1");
  } catch (error) {
    throw isMissingTable(error) ? missingTables(error) : error;
  }
  const id = rows[0]?.id;
  if (typeof id !== "string" || id.length === 0) throw missingTables(new Error("tidings_tx_database has no row"));
  return id;
}

/**
 * Whether a database error means "a lock could not be had in time" (or a deadlock victim): the
 * other transaction holding the key is still running, so the honest answer is unknown.
 */
export function isLockTimeout(error: unknown): boolean {
  for (let e = error as { code?: unknown; errno?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; depth++) {
    // PostgreSQL: lock_not_available, deadlock_detected, serialization_failure; MySQL: lock wait timeout, deadlock.
    if (e.code === "55P03" || e.code === "40P01" || e.code === "40001") return true;
    if (e.errno === 1205 || e.errno === 1213 || e.code === "ER_LOCK_WAIT_TIMEOUT" || e.code === "ER_LOCK_DEADLOCK") return true;
    e = e.cause as typeof e;
  }
  return false;
}

/**
 * Records, in a statement of its own (committed before the message is prepared), that this
 * database is about to run the local transaction of message `id`. Idempotent. What
 * `transaction()` did before messages carried the database's identity (`databaseIdentity`):
 * kept for the checks of messages prepared that way, and for a prepare without one.
 */
export async function recordIntent(db: Executor, id: string, topic: string, key: string | null): Promise<void> {
  const d = dialectOf(db.dialect);
  try {
    await db.query(d.sql(`INSERT INTO tidings_tx_intent (id, topic, msg_key) VALUES (?, ?, ?) ${d.insertIgnore("id")}`), [id, topic, key]);
  } catch (error) {
    throw isMissingTable(error) ? missingTables(error) : error;
  }
}

/** Whether `transaction()` on this database recorded the intent to run message `id` (messages prepared without a check context). */
export async function hasIntent(db: Executor, id: string): Promise<boolean> {
  const d = dialectOf(db.dialect);
  try {
    return (await db.query(d.sql("SELECT 1 AS one FROM tidings_tx_intent WHERE id = ?"), [id])).length > 0;
  } catch (error) {
    throw isMissingTable(error) ? missingTables(error) : error;
  }
}

/**
 * The commit barrier, first statement of the local transaction `tx`. A plain INSERT: it waits
 * behind a check-back's rollback insert in flight, and fails with a unique violation once a
 * rollback barrier exists.
 */
export async function insertCommitBarrier(tx: Executor, id: string): Promise<void> {
  const d = dialectOf(tx.dialect);
  try {
    await tx.query(d.sql("INSERT INTO tidings_tx_barrier (id, outcome) VALUES (?, 'commit')"), [id]);
  } catch (error) {
    throw isMissingTable(error) ? missingTables(error) : error;
  }
}

/**
 * The commit barrier as SQL without parameters, for `Executor.transactionFrom` (PostgreSQL: sent
 * with BEGIN in one round trip). The id is a message id (letters, digits and `_.:@=+-`, checked
 * before the prepare); it is quoted as a standard string literal all the same.
 */
export function commitBarrierSql(id: string): string {
  if (id.includes("\\") || id.includes("\0")) throw new TidingsError("invalid_message", `message id ${JSON.stringify(id)} cannot be a barrier key`);
  return `INSERT INTO tidings_tx_barrier (id, outcome) VALUES ('${id.replaceAll("'", "''")}', 'commit')`;
}

/** An error of a barrier statement, with a missing table said as the config error it is. */
export function barrierError(error: unknown): unknown {
  return isMissingTable(error) ? missingTables(error) : error;
}

/** The committed barrier of message `id`, if any (a statement of its own: a fresh snapshot). */
export async function readBarrier(db: Executor, id: string): Promise<BarrierOutcome | null> {
  const d = dialectOf(db.dialect);
  const rows = await db.query<{ outcome: string }>(d.sql("SELECT outcome FROM tidings_tx_barrier WHERE id = ?"), [id]);
  const outcome = rows[0]?.outcome;
  return outcome === "commit" || outcome === "rollback" ? outcome : null;
}

/** How long `decide` waits for a local transaction that holds the barrier key, by default. */
export const DEFAULT_LOCK_TIMEOUT_MS = 5000;

/**
 * Decides the outcome of message `id`'s local transaction, the one way that cannot race it:
 *
 * 1. a committed barrier row is the answer (it is never changed, so the answer repeats);
 * 2. otherwise insert a 'rollback' row, insert-if-absent. If the local transaction holds the key
 *    (its 'commit' row is inserted but not committed), the insert waits for it: it commits →
 *    nothing is inserted and step 3 reads 'commit'; it rolls back (or its process dies) → the
 *    'rollback' row goes in. If the local transaction has not inserted its row yet, the
 *    'rollback' row goes in and its later insert fails, so it can never commit;
 * 3. read the committed row again, in a new statement (a new snapshot on both databases).
 *
 * The wait is bounded by `lockTimeoutMs`: a local transaction still running after it gets
 * `unknown`, and the service asks again later.
 */
export async function decide(db: Executor, id: string, lockTimeoutMs: number): Promise<CheckAnswer> {
  const seen = await readBarrier(db, id);
  if (seen) return seen;
  const d = dialectOf(db.dialect);
  const insert = d.sql(`INSERT INTO tidings_tx_barrier (id, outcome) VALUES (?, 'rollback') ${d.insertIgnore("id")}`);
  try {
    await db.transaction(
      async (tx) => {
        if (db.dialect === "postgres") {
          await tx.query(`SET LOCAL lock_timeout = '${Math.max(1, Math.round(lockTimeoutMs))}ms'`);
          await tx.query(insert, [id]);
          return;
        }
        // InnoDB's wait is a session variable in whole seconds: set it for this statement, then
        // put back what the pooled connection had.
        const [previous] = await tx.query<{ t: unknown }>("SELECT @@SESSION.innodb_lock_wait_timeout AS t");
        const restore = Number(previous?.t ?? 50);
        await tx.query(`SET SESSION innodb_lock_wait_timeout = ${Math.max(1, Math.ceil(lockTimeoutMs / 1000))}`);
        try {
          await tx.query(insert, [id]);
        } finally {
          await tx.query(`SET SESSION innodb_lock_wait_timeout = ${Number.isFinite(restore) ? Math.round(restore) : 50}`);
        }
      },
      { isolation: "read committed" },
    );
  } catch (error) {
    if (isLockTimeout(error)) return "unknown";
    throw isMissingTable(error) ? missingTables(error) : error;
  }
  return (await readBarrier(db, id)) ?? "unknown";
}

export interface BarrierCleanupOptions {
  /** Keep rows younger than this; default 7 days (far past the service's last check-back). */
  olderThanMs?: number;
  /** Rows per DELETE statement; default 1000. */
  batchSize?: number;
}

/**
 * Deletes intent and barrier rows older than `olderThanMs`, in batches; resolves to how many.
 * Only rows of messages the service can no longer check: keep the window longer than
 * checkAfter + interval × limit of the service (10 s + 30 s × 15 by default), or a check of a
 * message still prepared would find no barrier and roll it back.
 */
export async function cleanupBarriers(db: Executor, options: BarrierCleanupOptions = {}): Promise<number> {
  const olderThanMs = options.olderThanMs ?? 7 * 86_400_000;
  const batchSize = options.batchSize ?? 1000;
  const d = dialectOf(db.dialect);
  let total = 0;
  for (const table of ["tidings_tx_barrier", "tidings_tx_intent"]) {
    for (;;) {
      const ids = (
        await db.query<{ id: string }>(d.sql(`SELECT id FROM ${table} WHERE created_at < ${d.nowMinusMs} ORDER BY created_at LIMIT ?`), [
          olderThanMs,
          batchSize,
        ])
      ).map((r) => r.id);
      if (ids.length === 0) break;
      await db.query(d.sql(`DELETE FROM ${table} WHERE id IN (${ids.map(() => "?").join(", ")})`), ids);
      total += ids.length;
      if (ids.length < batchSize) break;
    }
  }
  return total;
}
