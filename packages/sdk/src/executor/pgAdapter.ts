import type { Executor, Listening, Row, TransactionOptions } from "./executor.ts";
import { beginStatements, inSavepoint } from "./savepoints.ts";
import { statementName } from "./statements.ts";

/** The part of `pg`'s Client and PoolClient the adapter uses. */
export interface PgClientLike {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
  query(config: { text: string; values?: unknown[]; name?: string }): Promise<{ rows: unknown[] }>;
}

export interface PgAdapterOptions {
  /**
   * Prepare the SDK's own statements once per connection (named statements); default true.
   * Turn it off behind a pooler that cannot keep prepared statements (PgBouncer in transaction
   * mode before 1.21).
   */
  prepare?: boolean;
}

/** The part of `pg`'s Pool the adapter uses. */
export interface PgPoolLike extends PgClientLike {
  connect(): Promise<PgClientLike & { release(error?: Error | boolean): void }>;
}

/** Runs `sql` on a pg Client or Pool: the SDK's own statements by name (prepared once per connection). */
function run(db: PgClientLike, sql: string, params: readonly unknown[], prepare: boolean) {
  const name = prepare ? statementName(sql) : undefined;
  return name ? db.query({ name, text: sql, values: params as unknown[] }) : db.query(sql, params as unknown[]);
}

function isPool(db: PgClientLike | PgPoolLike): db is PgPoolLike {
  return typeof (db as PgPoolLike).connect === "function" && "totalCount" in db;
}

/**
 * An executor over node-postgres: a `Pool` (each transaction takes a client of its own) or a
 * `Client`/`PoolClient` (statements run on it; a transaction is BEGIN/COMMIT on it, or a
 * savepoint when it is already one of ours).
 */
export function fromPg(db: PgPoolLike | PgClientLike, options: PgAdapterOptions = {}): Executor {
  const prepare = options.prepare ?? true;
  return isPool(db) ? poolExecutor(db, prepare) : clientExecutor(db, false, prepare);
}

/**
 * The statements that open a transaction, as one simple query: BEGIN (with its isolation level),
 * then `first` when given, sent together in one round trip (a simple query takes several
 * statements when it has no parameters).
 */
function opening(options: TransactionOptions | undefined, first?: string): string {
  return [...beginStatements(options, "postgres"), ...(first === undefined ? [] : [first])].join("; ");
}

/** BEGIN (with `first`), `fn`, COMMIT on `client`; ROLLBACK when anything throws (its own failure told to `rollbackFailed`). */
async function inTransactionOn<T>(
  client: PgClientLike,
  prepare: boolean,
  fn: (tx: Executor) => Promise<T>,
  options: TransactionOptions | undefined,
  first?: string,
  rollbackFailed: (error: Error) => void = () => undefined,
): Promise<T> {
  try {
    await client.query(opening(options, first));
    const result = await fn(clientExecutor(client, true, prepare));
    await client.query("COMMIT");
    return result;
  } catch (error) {
    await client.query("ROLLBACK").catch(rollbackFailed);
    throw error;
  }
}

function clientExecutor(client: PgClientLike, inTransaction: boolean, prepare: boolean): Executor {
  const inNew = <T>(fn: (tx: Executor) => Promise<T>, options: TransactionOptions | undefined, first?: string): Promise<T> =>
    inTransactionOn(client, prepare, fn, options, first);
  const self: Executor = {
    dialect: "postgres",
    async query<R extends Row>(sql: string, params: readonly unknown[] = []) {
      return (await run(client, sql, params, prepare)).rows as R[];
    },
    async transaction<T>(fn: (tx: Executor) => Promise<T>, options?: TransactionOptions): Promise<T> {
      if (inTransaction) return inSavepoint(self, fn);
      return inNew(fn, options);
    },
  };
  // Inside a transaction of ours a nested one is a savepoint: no BEGIN to send `first` with.
  if (!inTransaction) self.transactionFrom = (first, fn, options) => inNew(fn, options, first);
  return self;
}

/** A transaction on a client of its own from the pool (with `first` sent along with BEGIN). */
async function inPooled<T>(
  pool: PgPoolLike,
  prepare: boolean,
  fn: (tx: Executor) => Promise<T>,
  options: TransactionOptions | undefined,
  first?: string,
): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    // A connection whose ROLLBACK fails (reset, killed) must not go back to the pool.
    return await inTransactionOn(client, prepare, fn, options, first, (e) => (broken = e));
  } finally {
    client.release(broken);
  }
}

function poolExecutor(pool: PgPoolLike, prepare: boolean): Executor {
  return {
    dialect: "postgres",
    async query<R extends Row>(sql: string, params: readonly unknown[] = []) {
      return (await run(pool, sql, params, prepare)).rows as R[];
    },
    transaction<T>(fn: (tx: Executor) => Promise<T>, options?: TransactionOptions): Promise<T> {
      return inPooled(pool, prepare, fn, options);
    },
    transactionFrom<T>(first: string, fn: (tx: Executor) => Promise<T>, options?: TransactionOptions): Promise<T> {
      return inPooled(pool, prepare, fn, options, first);
    },
    async listen(channel, onNotify, onError): Promise<Listening> {
      const client = await pool.connect();
      // A pg PoolClient is an EventEmitter: "notification" on NOTIFY, "error" when the connection dies.
      const events = client as unknown as import("node:events").EventEmitter;
      const notification = () => onNotify();
      const failed = (error: unknown) => onError(error);
      events.on("notification", notification);
      events.on("error", failed);
      await client.query(`LISTEN "${channel}"`);
      return {
        async close() {
          await client.query(`UNLISTEN "${channel}"`).catch(() => undefined);
          events.removeListener("notification", notification);
          events.removeListener("error", failed);
          client.release(true);
        },
      };
    },
  };
}
