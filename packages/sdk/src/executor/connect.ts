import { TidingsError } from "../errors.ts";
import type { Executor } from "./executor.ts";
import { fromMysql2, type Mysql2PoolLike } from "./mysql2Adapter.ts";
import { fromPg, type PgPoolLike } from "./pgAdapter.ts";

export interface Connection {
  readonly db: Executor;
  close(): Promise<void>;
}

/**
 * Opens a pool from a URL (postgres://, postgresql://, mysql://, mariadb://) with the driver
 * the SDK supports for it (`pg` or `mysql2`, which must be installed). For the relay sidecar.
 */
export async function connect(url: string, poolSize = 4): Promise<Connection> {
  const scheme = url.slice(0, url.indexOf(":")).toLowerCase();
  if (scheme === "postgres" || scheme === "postgresql") {
    const pg = (await import("pg")).default;
    const pool = new pg.Pool({ connectionString: url, max: poolSize });
    pool.on("error", () => undefined); // an idle client's connection dropped: the pool replaces it
    return { db: fromPg(pool as unknown as PgPoolLike), close: () => pool.end() };
  }
  if (scheme === "mysql" || scheme === "mariadb") {
    const mysql = await import("mysql2/promise");
    const u = new URL(url);
    u.protocol = "mysql:";
    const pool = mysql.createPool({ uri: u.toString(), connectionLimit: poolSize });
    return { db: fromMysql2(pool as unknown as Mysql2PoolLike), close: () => pool.end() };
  }
  throw new TidingsError("config", `unsupported database URL scheme "${scheme}:" (use postgres:// or mysql://)`);
}
