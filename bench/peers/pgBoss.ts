import PgBoss from "pg-boss";
import { measure, sql, withDatabase, type BenchContext } from "../lib/context.ts";
import { closedLoop, openLoop, PEER_MAX_SECONDS, summarize, timedLoop, until, warmupCount } from "../lib/load.ts";
import { payload } from "../lib/payload.ts";
import type { SystemResult } from "../lib/report.ts";

const QUEUE = "bench";
export const PG_BOSS = "pg-boss 10.4.2";

/**
 * Tuning, from pg-boss's docs: a pool as large as the concurrency that uses it (default 10);
 * `batchSize` so a worker fetches and completes many jobs per round trip; several `work()`
 * calls for parallel fetches (v10 has no teamSize); the shortest polling interval it accepts
 * (0.5 s). Maintenance and cron off: they only add load during a run this short.
 * A worker sleeps out the rest of its interval after each batch, so the rate is capped near
 * workers × batchSize / 0.5 s; 8 × 1000 (16k/s) measured best here: 4 × 1000 capped at 8k/s,
 * 16 × 1000 was no faster than 8 × 1000.
 */
const POOL = 32;
const WORKERS = 8;
const BATCH = 1000;
const POLL_S = 0.5;
const WORK_CONFIG = `${WORKERS} work() workers × batchSize ${BATCH}, pollingIntervalSeconds ${POLL_S}, pool max ${POOL}, supervise/schedule off`;

async function withBoss<T>(ctx: BenchContext, label: string, fn: (boss: PgBoss, dbUrl: string) => Promise<T>): Promise<T> {
  return withDatabase(ctx, `${label}_pgboss`, async (db) => {
    const boss = new PgBoss({ connectionString: db.url, max: POOL, supervise: false, schedule: false, migrate: true });
    let stopping = false;
    // Dropping the database afterwards ends pg-boss's idle connections: not worth a line.
    boss.on("error", (error) => stopping || ctx.log(`pg-boss error: ${String(error)}`));
    await boss.start();
    await boss.createQueue(QUEUE);
    try {
      return await fn(boss, db.url);
    } finally {
      stopping = true;
      await boss.stop({ graceful: false, close: true, wait: true }).catch(() => {});
    }
  });
}

/** `send()` one job per call with `concurrency` callers. */
export async function pgBossSend(ctx: BenchContext, label: string, total: number, concurrency: number): Promise<SystemResult> {
  return withBoss(ctx, label, async (boss) => {
    const send = async (i: number) => {
      const id = await boss.send(QUEUE, payload(i));
      if (!id) throw new Error("pg-boss send returned no id");
    };
    await closedLoop(warmupCount(total), concurrency, (i) => send(total + i));
    const { result: run, processes } = await measure(
      ctx,
      null,
      (r) => r.done,
      () => timedLoop(total, concurrency, PEER_MAX_SECONDS, send),
    );
    return {
      system: PG_BOSS,
      role: "peer",
      figure: Math.round(run.done / run.seconds),
      unit: "jobs/s",
      messages: run.done,
      seconds: run.seconds,
      processes,
      config: `send() × ${concurrency} concurrent callers, pool max ${POOL} (at most ${PEER_MAX_SECONDS} s)`,
    } satisfies SystemResult;
  });
}

/** `insert()` of `batch` jobs per call with `concurrency` callers. */
export async function pgBossInsert(ctx: BenchContext, label: string, total: number, batch: number, concurrency: number): Promise<SystemResult> {
  return withBoss(ctx, label, async (boss) => {
    const { result: seconds, processes } = await measure(
      ctx,
      null,
      () => total,
      () =>
        closedLoop(Math.ceil(total / batch), concurrency, async (b) => {
          const n = Math.min(batch, total - b * batch);
          await boss.insert(Array.from({ length: n }, (_, k) => ({ name: QUEUE, data: payload(b * batch + k) })));
        }),
    );
    return {
      system: PG_BOSS,
      role: "peer",
      figure: Math.round(total / seconds),
      unit: "jobs/s",
      messages: total,
      seconds,
      processes,
      config: `insert() of ${batch} jobs × ${concurrency} concurrent callers, pool max ${POOL}`,
    } satisfies SystemResult;
  });
}

async function completed(dbUrl: string): Promise<number> {
  const rows = await sql<{ n: number }>(dbUrl, "select count(*)::int as n from pgboss.job where name = $1 and state = 'completed'", [QUEUE]);
  return rows[0]!.n;
}

/** A backlog of `total` jobs, then no-op workers until every job is completed in the database. */
export async function pgBossProcess(ctx: BenchContext, label: string, total: number): Promise<SystemResult> {
  return withBoss(ctx, label, async (boss, dbUrl) => {
    for (let b = 0; b * 1000 < total; b++) {
      const n = Math.min(1000, total - b * 1000);
      await boss.insert(Array.from({ length: n }, (_, k) => ({ name: QUEUE, data: payload(b * 1000 + k) })));
    }
    await sql(dbUrl, "analyze");
    let handled = 0;
    const { result: seconds, processes } = await measure(
      ctx,
      null,
      () => total,
      async () => {
        const started = performance.now();
        for (let w = 0; w < WORKERS; w++) {
          await boss.work(QUEUE, { batchSize: BATCH, pollingIntervalSeconds: POLL_S }, async (jobs) => {
            handled += jobs.length;
          });
        }
        await until("pg-boss to handle every job", () => handled >= total, ctx.sizes.phaseTimeoutMs, 10);
        await until("pg-boss to complete every job", async () => (await completed(dbUrl)) >= total, ctx.sizes.phaseTimeoutMs, 50);
        return (performance.now() - started) / 1000;
      },
    );
    await boss.offWork(QUEUE);
    return {
      system: PG_BOSS,
      role: "peer",
      figure: Math.round(total / seconds),
      unit: "jobs/s",
      messages: total,
      seconds,
      processes,
      config: `no-op handler; ${WORK_CONFIG}; timed until every job is 'completed' in the database`,
    } satisfies SystemResult;
  });
}

/** Open-loop `send()` at `rate`/s; latency from send()'s resolve to the handler's start. */
export async function pgBossLatency(ctx: BenchContext, label: string, rate: number, seconds: number, warmupSeconds: number): Promise<SystemResult> {
  return withBoss(ctx, label, async (boss) => {
    const enqueued = new Map<number, number>();
    const started = new Map<number, number>();
    const workers: string[] = [];
    for (let w = 0; w < WORKERS; w++) {
      workers.push(
        await boss.work<{ i: number }>(QUEUE, { batchSize: BATCH, pollingIntervalSeconds: POLL_S }, async (jobs) => {
          const at = performance.now();
          for (const job of jobs) if (!started.has(job.data.i)) started.set(job.data.i, at);
        }),
      );
    }
    const send = async (i: number) => {
      await boss.send(QUEUE, { ...payload(i), i });
      enqueued.set(i, performance.now());
      // pg-boss 10 has no LISTEN/NOTIFY; notifyWorker() is its documented way to skip the polling wait.
      for (const id of workers) boss.notifyWorker(id);
    };
    const warm = Math.round(rate * warmupSeconds);
    const total = Math.round(rate * seconds);
    await openLoop(warm, rate, (i) => send(-1 - i));
    const { result: run, processes } = await measure(
      ctx,
      null,
      () => total,
      async () => {
        const r = await openLoop(total, rate, send);
        await until("pg-boss handlers", () => [...Array(total).keys()].every((i) => started.has(i)), ctx.sizes.phaseTimeoutMs, 20);
        return r;
      },
    );
    const latencies = [...Array(total).keys()].map((i) => started.get(i)! - enqueued.get(i)!);
    const latency = summarize(latencies);
    await boss.offWork(QUEUE);
    return {
      system: PG_BOSS,
      role: "peer",
      figure: latency.p50,
      unit: "ms p50",
      messages: total,
      seconds: run.seconds,
      latency,
      processes,
      config: `send() at ${rate}/s open loop, then notifyWorker() on every worker; ${WORK_CONFIG}`,
    } satisfies SystemResult;
  });
}
