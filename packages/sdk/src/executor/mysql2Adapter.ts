import type { Executor, Row, TransactionOptions } from "./executor.ts";
import { beginStatements, inSavepoint } from "./savepoints.ts";

/** The part of a `mysql2/promise` Connection or PoolConnection the adapter uses. */
export interface Mysql2ConnectionLike {
  query(sql: string, values?: unknown): Promise<[unknown, unknown]>;
}
/** The part of a `mysql2/promise` Pool the adapter uses. */
export interface Mysql2PoolLike extends Mysql2ConnectionLike {
  getConnection(): Promise<Mysql2ConnectionLike & { release(): void; destroy?(): void }>;
}

function rowsOf(result: unknown): Row[] {
  // SELECT gives an array of rows; INSERT/UPDATE/DELETE a ResultSetHeader (no rows).
  return Array.isArray(result) ? (result as Row[]) : [];
}

/** An executor over mysql2 (`mysql2/promise`): a Pool, or a Connection. Tested on MariaDB. */
export function fromMysql2(db: Mysql2PoolLike | Mysql2ConnectionLike): Executor {
  return "getConnection" in db && typeof db.getConnection === "function" ? poolExecutor(db) : connectionExecutor(db, false);
}

function connectionExecutor(connection: Mysql2ConnectionLike, inTransaction: boolean): Executor {
  const self: Executor = {
    dialect: "mysql",
    async query<R extends Row>(sql: string, params: readonly unknown[] = []) {
      const [result] = await connection.query(sql, params);
      return rowsOf(result) as R[];
    },
    async transaction<T>(fn: (tx: Executor) => Promise<T>, options?: TransactionOptions): Promise<T> {
      if (inTransaction) return inSavepoint(self, fn);
      for (const statement of beginStatements(options, "mysql")) await connection.query(statement);
      try {
        const result = await fn(connectionExecutor(connection, true));
        await connection.query("COMMIT");
        return result;
      } catch (error) {
        await connection.query("ROLLBACK").catch(() => undefined);
        throw error;
      }
    },
  };
  return self;
}

function poolExecutor(pool: Mysql2PoolLike): Executor {
  return {
    dialect: "mysql",
    async query<R extends Row>(sql: string, params: readonly unknown[] = []) {
      const [result] = await pool.query(sql, params);
      return rowsOf(result) as R[];
    },
    async transaction<T>(fn: (tx: Executor) => Promise<T>, options?: TransactionOptions): Promise<T> {
      const connection = await pool.getConnection();
      let broken = false;
      try {
        for (const statement of beginStatements(options, "mysql")) await connection.query(statement);
        const result = await fn(connectionExecutor(connection, true));
        await connection.query("COMMIT");
        return result;
      } catch (error) {
        await connection.query("ROLLBACK").catch(() => (broken = true));
        throw error;
      } finally {
        if (broken && connection.destroy) connection.destroy();
        else connection.release();
      }
    },
  };
}
