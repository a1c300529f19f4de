import type { Executor, Listening, Row, TransactionOptions } from "./executor.ts";

/** The part of a postgres.js `sql` (or transaction `sql`) object the adapter uses. */
export interface PostgresJsLike {
  unsafe(query: string, parameters?: unknown[]): PromiseLike<readonly unknown[]>;
  begin?(options: string, fn: (tx: PostgresJsLike) => unknown): PromiseLike<unknown>;
  savepoint?(fn: (tx: PostgresJsLike) => unknown): PromiseLike<unknown>;
  listen?(channel: string, onNotify: (payload: string) => void): PromiseLike<{ unlisten(): PromiseLike<void> }>;
}

/** An executor over postgres.js: `fromPostgresJs(sql)`; inside `sql.begin`, `fromPostgresJs(tx)`. */
export function fromPostgresJs(sql: PostgresJsLike): Executor {
  const self: Executor = {
    dialect: "postgres",
    async query<R extends Row>(text: string, params: readonly unknown[] = []) {
      return [...(await sql.unsafe(text, params as unknown[]))] as R[];
    },
    async transaction<T>(fn: (tx: Executor) => Promise<T>, options?: TransactionOptions): Promise<T> {
      // A transaction's sql has savepoint() and no begin(); the root has begin().
      if (sql.savepoint) return (await sql.savepoint((tx) => fn(fromPostgresJs(tx)))) as T;
      if (!sql.begin) throw new TypeError("fromPostgresJs: this object can neither begin a transaction nor make a savepoint");
      const mode = options?.isolation ? `isolation level ${options.isolation}` : "";
      return (await sql.begin(mode, (tx) => fn(fromPostgresJs(tx)))) as T;
    },
  };
  if (sql.listen && sql.begin) {
    const listen = sql.listen.bind(sql);
    self.listen = async (channel: string, onNotify: () => void, _onError: (error: unknown) => void): Promise<Listening> => {
      // postgres.js reconnects its listener by itself.
      const subscription = await listen(channel, () => onNotify());
      return { close: async () => void (await subscription.unlisten()) };
    };
  }
  return self;
}
