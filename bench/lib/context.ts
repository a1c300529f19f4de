import pg from "pg";
import { createDatabase, socketUrl, type BenchDatabase, type PgServer } from "./postgres.ts";
import { UsageSampler, watchPostgres, watchProcess, type ProcessUsage } from "./procStats.ts";
import type { TopStatement } from "./report.ts";
import type { Sizes } from "./sizes.ts";
import { TidingsProcess } from "./tidingsProcess.ts";

export interface BenchContext {
  readonly pg: PgServer;
  readonly sizes: Sizes;
  readonly smoke: boolean;
  /** Run the peers (pg-boss, graphile-worker, pgbench) too. */
  readonly peers: boolean;
  /** Capture pg_stat_statements for Tidings' measured phases. */
  readonly statements: boolean;
  /** Extra environment for the Tidings service. */
  readonly serviceEnv: Record<string, string>;
  /** Connect the service to PostgreSQL over its Unix socket instead of TCP (bench-started server only). */
  readonly serviceSocket?: boolean;
  /** Where to write the service's --cpu-prof profiles (off when undefined). */
  readonly cpuProfDir?: string;
  log(line: string): void;
}

/** A fresh database for one system of one workload; dropped afterwards (also on failure). */
export async function withDatabase<T>(ctx: BenchContext, label: string, fn: (db: BenchDatabase) => Promise<T>): Promise<T> {
  const db = await createDatabase(ctx.pg, label);
  try {
    return await fn(db);
  } finally {
    await db.drop().catch((error: unknown) => ctx.log(`could not drop ${db.name}: ${String(error)}`));
  }
}

/** Runs the service on a fresh database for the duration of `fn`. */
export async function withTidings<T>(ctx: BenchContext, label: string, fn: (service: TidingsProcess, db: BenchDatabase) => Promise<T>): Promise<T> {
  return withDatabase(ctx, `${label}_tidings`, async (db) => {
    const started = performance.now();
    const socket = ctx.serviceSocket && ctx.pg.socketDir;
    const service = await TidingsProcess.start({
      databaseUrl: socket ? socketUrl(db.url, socket) : db.url,
      env: ctx.serviceEnv,
      ...(ctx.cpuProfDir ? { cpuProfDir: ctx.cpuProfDir } : {}),
    });
    ctx.log(`  tidings started in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    try {
      return await fn(service, db);
    } catch (error) {
      ctx.log(`tidings output (tail):\n${service.log.slice(-3000)}`);
      throw error;
    } finally {
      await service.stop();
    }
  });
}

/**
 * Measures one phase: CPU and peak memory of the runner (load generator, receiver, and a peer's
 * library when a peer runs), the service when given, and PostgreSQL when the bench started it.
 */
export async function measure<T>(
  ctx: BenchContext,
  servicePid: number | null,
  messages: (result: T) => number,
  fn: () => Promise<T>,
): Promise<{ result: T; processes: ProcessUsage[] }> {
  const watched = [watchProcess("runner", "self")];
  if (servicePid !== null) watched.unshift(watchProcess("service", servicePid));
  if (ctx.pg.postmasterPid !== null) watched.push(watchPostgres(ctx.pg.postmasterPid));
  const sampler = new UsageSampler(watched);
  let result: T;
  try {
    result = await fn();
  } catch (error) {
    sampler.stop(0);
    throw error;
  }
  return { result, processes: sampler.stop(messages(result)) };
}

/** Clears pg_stat_statements before a measured phase (no-op without the extension or the option). */
export async function resetStatements(ctx: BenchContext, dbUrl: string): Promise<void> {
  if (!ctx.statements || !ctx.pg.hasStatStatements) return;
  const c = new pg.Client({ connectionString: dbUrl });
  await c.connect();
  try {
    await c.query("select pg_stat_statements_reset()");
  } finally {
    await c.end();
  }
}

/** The heaviest statements of this database since the last reset. */
export async function topStatements(ctx: BenchContext, dbUrl: string, limit = 8): Promise<TopStatement[] | undefined> {
  if (!ctx.statements || !ctx.pg.hasStatStatements) return undefined;
  const c = new pg.Client({ connectionString: dbUrl });
  await c.connect();
  try {
    const { rows } = await c.query(
      `select query, calls::int, round(total_exec_time::numeric, 1)::float8 as total_ms,
              round(mean_exec_time::numeric, 3)::float8 as mean_ms, rows::int
         from pg_stat_statements
        where dbid = (select oid from pg_database where datname = current_database())
        order by total_exec_time desc limit $1`,
      [limit],
    );
    return rows.map((r) => ({ query: r.query, calls: r.calls, totalMs: r.total_ms, meanMs: r.mean_ms, rows: r.rows }));
  } finally {
    await c.end();
  }
}

/** Runs SQL on a database with a short-lived client. */
export async function sql<R extends pg.QueryResultRow = pg.QueryResultRow>(dbUrl: string, text: string, values: unknown[] = []): Promise<R[]> {
  const c = new pg.Client({ connectionString: dbUrl });
  await c.connect();
  try {
    return (await c.query<R>(text, values)).rows;
  } finally {
    await c.end();
  }
}
