import pg from "pg";

export type Db = pg.Pool;
export type Tx = pg.PoolClient;

// bigint columns (identity ids, counts) come back as strings by default; ours stay far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));

export function createPool(connectionString: string, max: number): Db {
  const pool = new pg.Pool({ connectionString, max, application_name: "tidings" });
  // An idle client's error (server restart) must not crash the process; the pool drops it.
  pool.on("error", () => {});
  return pool;
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
