import type { DialectName } from "./dialect.ts";
import type { Executor, Row, TransactionOptions } from "./executor.ts";
import { dollarToQuestion } from "./placeholders.ts";

/** The part of a Knex instance or transaction the adapter uses. */
export interface KnexLike {
  raw(sql: string, bindings: readonly unknown[]): PromiseLike<unknown>;
  transaction<T>(fn: (trx: unknown) => Promise<T>, config?: { isolationLevel: NonNullable<TransactionOptions["isolation"]> }): Promise<T>;
}

function rowsOf(result: unknown): Row[] {
  // pg client: a pg Result with rows; mysql2 client: [rows | ResultSetHeader, fields].
  if (Array.isArray(result)) return Array.isArray(result[0]) ? (result[0] as Row[]) : [];
  return ((result as { rows?: Row[] }).rows ?? []) as Row[];
}

/**
 * An executor over Knex: `fromKnex(knex, "postgres")`, and inside `knex.transaction(async (trx) => ...)`,
 * `fromKnex(trx, "postgres")`. SQL uses the database's native placeholders like every executor
 * (`$1` on PostgreSQL); they are rewritten to Knex's `?` here.
 */
export function fromKnex(knex: KnexLike, dialect: DialectName): Executor {
  return {
    dialect,
    async query<R extends Row>(sql: string, params: readonly unknown[] = []) {
      const native = dialect === "postgres" ? dollarToQuestion(sql, params) : { sql, params: [...params] };
      return rowsOf(await knex.raw(native.sql, native.params)) as R[];
    },
    transaction<T>(fn: (tx: Executor) => Promise<T>, options?: TransactionOptions): Promise<T> {
      // Knex nests a transaction inside a transaction as a savepoint by itself.
      const config = options?.isolation ? { isolationLevel: options.isolation } : undefined;
      return knex.transaction((trx) => fn(fromKnex(trx as KnexLike, dialect)), config);
    },
  };
}
