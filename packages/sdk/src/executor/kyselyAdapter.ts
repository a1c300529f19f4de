import { CompiledQuery } from "kysely";
import type { DialectName } from "./dialect.ts";
import type { Executor, Row, TransactionOptions } from "./executor.ts";
import { inSavepoint } from "./savepoints.ts";

/** The part of a Kysely instance or Transaction the adapter uses. */
export interface KyselyLike {
  readonly isTransaction: boolean;
  executeQuery<R>(query: CompiledQuery<R>): Promise<{ rows: R[] }>;
  transaction(): {
    setIsolationLevel(level: NonNullable<TransactionOptions["isolation"]>): { execute<T>(fn: (trx: unknown) => Promise<T>): Promise<T> };
    execute<T>(fn: (trx: unknown) => Promise<T>): Promise<T>;
  };
}

/** An executor over Kysely: `fromKysely(db, "postgres")`, and inside a transaction `fromKysely(trx, "postgres")`. */
export function fromKysely(db: KyselyLike, dialect: DialectName): Executor {
  const self: Executor = {
    dialect,
    async query<R extends Row>(sql: string, params: readonly unknown[] = []) {
      return (await db.executeQuery(CompiledQuery.raw(sql, [...params]))).rows as R[];
    },
    transaction<T>(fn: (tx: Executor) => Promise<T>, options?: TransactionOptions): Promise<T> {
      if (db.isTransaction) return inSavepoint(self, fn);
      const builder = db.transaction();
      const run = (trx: unknown) => fn(fromKysely(trx as KyselyLike, dialect));
      return options?.isolation ? builder.setIsolationLevel(options.isolation).execute(run) : builder.execute(run);
    },
  };
  return self;
}
