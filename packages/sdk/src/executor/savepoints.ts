import type { Executor, TransactionOptions } from "./executor.ts";

let counter = 0;

/** Runs `fn` inside a savepoint of the transaction `tx` is in: the nested form of `transaction()`. */
export async function inSavepoint<T>(tx: Executor, fn: (tx: Executor) => Promise<T>): Promise<T> {
  const name = `tidings_sp_${++counter}`;
  await tx.query(`SAVEPOINT ${name}`);
  try {
    const result = await fn(tx);
    await tx.query(`RELEASE SAVEPOINT ${name}`);
    return result;
  } catch (error) {
    await tx.query(`ROLLBACK TO SAVEPOINT ${name}`);
    throw error;
  }
}

/** `BEGIN` with the isolation level asked for, in the syntax both PostgreSQL and MySQL accept. */
export function beginStatements(options: TransactionOptions | undefined, dialect: "postgres" | "mysql"): string[] {
  const level = options?.isolation?.toUpperCase();
  if (!level) return ["BEGIN"];
  // MySQL sets the level of the *next* transaction; PostgreSQL takes it on BEGIN.
  return dialect === "mysql" ? [`SET TRANSACTION ISOLATION LEVEL ${level}`, "BEGIN"] : [`BEGIN ISOLATION LEVEL ${level}`];
}
