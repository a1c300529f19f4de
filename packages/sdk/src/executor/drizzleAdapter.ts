import { sql as drizzleSql, type SQL } from "drizzle-orm";
import type { DialectName } from "./dialect.ts";
import type { Executor, Row, TransactionOptions } from "./executor.ts";
import { splitPlaceholders } from "./placeholders.ts";

/** The part of a Drizzle database or transaction (node-postgres, postgres-js or mysql2 driver) the adapter uses. */
export interface DrizzleLike {
  execute(query: SQL): PromiseLike<unknown>;
  transaction<T>(fn: (tx: unknown) => Promise<T>, config?: { isolationLevel: NonNullable<TransactionOptions["isolation"]> }): Promise<T>;
}

function rowsOf(result: unknown): Row[] {
  if (Array.isArray(result)) {
    // mysql2 driver: [rows | ResultSetHeader, fields]; postgres-js driver: the rows themselves.
    const first = result[0];
    if (result.length === 2 && (Array.isArray(first) || (first && typeof first === "object" && "affectedRows" in first))) {
      return Array.isArray(first) ? (first as Row[]) : [];
    }
    return result as Row[];
  }
  return ((result as { rows?: Row[] }).rows ?? []) as Row[];
}

/**
 * An executor over a Drizzle database or transaction: `fromDrizzle(db, "postgres")`, and inside
 * `db.transaction(async (tx) => ...)`, `fromDrizzle(tx, "postgres")`.
 */
export function fromDrizzle(db: DrizzleLike, dialect: DialectName): Executor {
  return {
    dialect,
    async query<R extends Row>(text: string, params: readonly unknown[] = []) {
      const { chunks, values } = splitPlaceholders(text, params, dialect === "postgres" ? "dollar" : "question");
      const parts: SQL[] = [drizzleSql.raw(chunks[0]!)];
      for (const [i, value] of values.entries()) parts.push(drizzleSql`${value}`, drizzleSql.raw(chunks[i + 1]!));
      return rowsOf(await db.execute(drizzleSql.join(parts))) as R[];
    },
    transaction<T>(fn: (tx: Executor) => Promise<T>, options?: TransactionOptions): Promise<T> {
      // Drizzle nests a transaction inside a transaction as a savepoint by itself.
      const config = options?.isolation ? { isolationLevel: options.isolation } : undefined;
      return db.transaction((tx) => fn(fromDrizzle(tx as DrizzleLike, dialect)), config);
    },
  };
}
