import type { DialectName } from "./dialect.ts";

/** A row as the database client returns it. */
export type Row = Record<string, unknown>;

export interface TransactionOptions {
  /**
   * Isolation level of the new transaction. The relay asks for `read committed` so that on
   * MySQL its `FOR UPDATE SKIP LOCKED` takes no gap locks that would block producers' inserts.
   */
  isolation?: "read committed" | "repeatable read" | "serializable";
}

/** A LISTEN subscription held open on its own connection; close it to stop. */
export interface Listening {
  close(): Promise<void>;
}

/**
 * The one port through which the SDK reaches the user's own database: run a statement, run a
 * transaction. SQL uses the database's native placeholders (`$1` on PostgreSQL, `?` on MySQL),
 * so user code passed a `tx` can write the SQL it would write anyway. The outbox, the inbox and
 * the transactional-message barrier all use only this. Adapters: `fromPg`, `fromPostgresJs`,
 * `fromMysql2`, `fromDrizzle`, `fromKysely`, `fromKnex`.
 */
export interface Executor {
  readonly dialect: DialectName;
  /** Runs one statement; resolves to its rows (none for statements that return none). */
  query<R extends Row = Row>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  /**
   * Runs `fn` in a transaction: commits when it resolves, rolls back and rethrows when it
   * throws. Called on an executor that is already a transaction, it nests (a savepoint).
   */
  transaction<T>(fn: (tx: Executor) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /**
   * Optional: `transaction()` whose first statement, `first` (SQL without parameters), goes to
   * the database together with BEGIN in one round trip, before `fn` runs. `transaction()` of
   * transactional messages sends its barrier row this way where the adapter offers it (`fromPg`
   * outside a transaction of its own).
   */
  transactionFrom?<T>(first: string, fn: (tx: Executor) => Promise<T>, options?: TransactionOptions): Promise<T>;
  /**
   * Optional: LISTEN on a channel on a dedicated connection (PostgreSQL drivers only). The relay
   * uses it to wake at once after a commit; without it, it polls.
   */
  listen?(channel: string, onNotify: () => void, onError: (error: unknown) => void): Promise<Listening>;
}
