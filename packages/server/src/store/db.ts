import pg from "pg";

export type Db = pg.Pool;
export type Tx = pg.PoolClient;

// bigint columns (identity ids, counts) come back as strings by default; ours stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));

export interface PoolLimits {
  /** How long a query waits for a free connection before failing (then the API answers 503). */
  connectTimeoutMs: number;
  /** PostgreSQL's statement_timeout for every statement (0: none). */
  statementTimeoutMs: number;
}

/**
 * How the service reaches PostgreSQL: "none", a connection of its own for as long as it likes
 * (directly, or through a pooler in session mode); "transaction", through a pooler that hands
 * each transaction a server connection of its own (PgBouncer's `pool_mode = transaction`).
 */
export type DbPooling = "none" | "transaction";

/**
 * A client for a transaction-mode pooler: its queries go unnamed. A named prepared statement
 * lives in one server connection, and the next transaction may get another (PgBouncer 1.18
 * does not carry them: "prepared statement ... does not exist"). The unnamed statement of the
 * extended protocol lasts only its own Parse/Bind/Execute, which the pooler keeps together.
 * Dropping the name costs the server a parse and plan per query, paid only behind a pooler.
 */
class UnnamedStatementsClient extends pg.Client {
  // biome-ignore lint/suspicious/noExplicitAny: pg's query is a set of overloads; all are passed on as they are
  override query(config: any, values?: any, callback?: any): any {
    if (config !== null && typeof config === "object" && typeof config.submit !== "function" && config.name !== undefined) {
      const { name: _name, ...unnamed } = config;
      return super.query(unnamed, values, callback);
    }
    return super.query(config, values, callback);
  }
}

/**
 * A pool of `max` connections. Behind a transaction-mode pooler (`pooling`) its statements go
 * unnamed and statement_timeout is not sent at connection start (PgBouncer refuses a startup
 * parameter it does not know: "unsupported startup parameter"); it is the role's setting there
 * (see statementTimeoutMs). Without one, the pool is the plain pg.Pool it always was.
 */
export function createPool(connectionString: string, max: number, limits?: PoolLimits, pooling: DbPooling = "none"): Db {
  const behindPooler = pooling === "transaction";
  const pool = new pg.Pool({
    connectionString,
    max,
    application_name: "tidings",
    ...(limits ? { connectionTimeoutMillis: limits.connectTimeoutMs, ...(behindPooler ? {} : { statement_timeout: limits.statementTimeoutMs }) } : {}),
    ...(behindPooler ? { Client: UnnamedStatementsClient } : {}),
  });
  // An idle client's error (server restart) must not crash the process; the pool drops it.
  pool.on("error", () => {});
  // Nor a checked-out one's: pg emits "Connection terminated unexpectedly" on the client itself
  // when its connection ends between the statements of a transaction (a pooler's
  // query_wait_timeout ends the client's connection while its "begin" waits; a terminated
  // backend), after the statement in flight has failed with it. The transaction's code sees that
  // failure; the client, no longer queryable, is dropped when released.
  pool.on("connect", (client) => client.on("error", () => {}));
  return pool;
}

/**
 * The statement_timeout the database gives a new session, in ms (0: none). Behind a
 * transaction-mode pooler that is the role's (or database's) setting, not the service's: the
 * service compares the two at start and says how to align them.
 */
export async function statementTimeoutMs(db: Db): Promise<number> {
  const { rows } = await db.query<{ ms: number }>("select (extract(epoch from current_setting('statement_timeout')::interval) * 1000)::float8 as ms");
  return rows[0]?.ms ?? 0;
}

/** Runs fn in a transaction on one client; rolls back and rethrows on error. */
export async function inTransaction<T>(db: Db, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const client = await db.connect();
  try {
    await client.query("begin");
    const result = await fn(client);
    await client.query("commit");
    return result;
  } catch (error) {
    await client.query("rollback").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

const sqlState = (error: unknown): string | undefined => {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
};

/**
 * Whether a statement failed on the data it was given rather than the database's health
 * (PostgreSQL's data exceptions, class 22, integrity constraint violations, class 23, and
 * program limits, class 54), or its parameter could not be written (a RangeError or TypeError
 * of JSON.stringify): the same rows would fail again forever, so they are tried in parts to
 * find the one at fault.
 */
export function isDataError(error: unknown): boolean {
  const state = sqlState(error);
  if (state !== undefined) return state.startsWith("22") || state.startsWith("23") || state.startsWith("54");
  return error instanceof RangeError || error instanceof TypeError;
}

/** A PostgreSQL data exception (class 22): a value the database refused, so the request's fault. */
export const isDataException = (error: unknown): boolean => sqlState(error)?.startsWith("22") ?? false;

/**
 * Whether the database is slow or away rather than the request wrong: no free connection in
 * time, statement_timeout, too many connections, shutdown, lost connection, or a server still in
 * recovery (25006, read_only_sql_transaction: during a failover a router such as HAProxy behind
 * Patroni sends connections to the new primary a few hundred ms before its promotion ends, and
 * those writes fail; the same connection writes once it has). Answered with 503.
 */
export function isDbUnavailable(error: unknown): boolean {
  const state = sqlState(error);
  if (state !== undefined) return state === "57014" || state === "53300" || state === "25006" || state.startsWith("57P") || state.startsWith("08");
  const message = error instanceof Error ? error.message : "";
  const code = (error as { code?: unknown } | null)?.code;
  return /timeout exceeded when trying to connect|Connection terminated|connection timeout/i.test(message) || code === "ECONNREFUSED" || code === "ECONNRESET";
}
