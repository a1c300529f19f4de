import { Logger, makeWorkerUtils, run, type Runner, type WorkerUtils } from "graphile-worker";
import pg from "pg";
import { measure, sql, withDatabase, type BenchContext } from "../lib/context.ts";
import { closedLoop, openLoop, PEER_MAX_SECONDS, summarize, timedLoop, until, warmupCount } from "../lib/load.ts";
import { payload } from "../lib/payload.ts";
import type { Receiver } from "../lib/receiver.ts";
import type { SystemResult } from "../lib/report.ts";
import { type PeerJob, SENDER_CONFIG, type WebhookSender, withReceiver } from "../lib/webhookSender.ts";

const TASK = "bench";
export const GRAPHILE_WORKER = "graphile-worker 0.17.3";

const silent = new Logger(() => () => {});
/** Pool for the producers: as large as the concurrency that uses it (the default is 10). */
const UTILS_POOL = 32;
/**
 * The configuration of graphile-worker's own performance page ("Quick stats in optimal
 * conditions"): 24 concurrent jobs, a pool of 25, a local queue of 500 jobs fetched per
 * round trip, and batched completion (completeJobBatchDelay / failJobBatchDelay 0).
 */
const WORKER = { concurrency: 24, maxPoolSize: 25, localQueue: 500 };
/**
 * The signed-POST variant's jobs wait on the network: graphile-worker's docs advise a higher
 * concurrency for I/O-bound tasks, and a pool at least as large (it warns when smaller). 128
 * jobs at once, as many as Tidings' deliveries in flight and the sender's connections; the
 * local queue and batched completion keep the connections in use few.
 */
const POST_WORKER = { concurrency: 128, maxPoolSize: 128, localQueue: 500 };
type WorkerSettings = typeof WORKER;
const workConfig = (w: WorkerSettings, why: string) =>
  `concurrentJobs ${w.concurrency}, maxPoolSize ${w.maxPoolSize}, localQueue.size ${w.localQueue}, completeJobBatchDelay 0, failJobBatchDelay 0 (${why}); LISTEN/NOTIFY wake-up`;
const WORK_CONFIG = workConfig(WORKER, "its performance page's settings");

/** Our own pools (ended by us, with an error listener) so that dropping the database never crashes the runner. */
function pool(dbUrl: string, max: number): pg.Pool {
  const p = new pg.Pool({ connectionString: dbUrl, max });
  p.on("error", () => {});
  p.on("connect", (client) => client.on("error", () => {}));
  return p;
}

async function withUtils<T>(ctx: BenchContext, label: string, fn: (utils: WorkerUtils, dbUrl: string) => Promise<T>): Promise<T> {
  return withDatabase(ctx, `${label}_graphile`, async (db) => {
    const pgPool = pool(db.url, UTILS_POOL);
    const utils = await makeWorkerUtils({ pgPool, logger: silent });
    try {
      await utils.migrate();
      return await fn(utils, db.url);
    } finally {
      await utils.release();
      await pgPool.end();
    }
  });
}

async function startWorker(dbUrl: string, task: (payload: unknown, jobId: string) => void | Promise<void>, settings: WorkerSettings = WORKER): Promise<Runner> {
  const pgPool = pool(dbUrl, settings.maxPoolSize);
  const runner = await run({
    pgPool,
    concurrency: settings.concurrency,
    noHandleSignals: true,
    logger: silent,
    taskList: {
      [TASK]: async (p, helpers) => {
        await task(p, helpers.job.id);
      },
    },
    preset: {
      worker: {
        localQueue: { size: settings.localQueue },
        completeJobBatchDelay: 0,
        failJobBatchDelay: 0,
      },
    },
  });
  const stop = runner.stop.bind(runner);
  runner.stop = async (reason?: string) => {
    await stop(reason);
    await pgPool.end();
  };
  return runner;
}

/** `addJob()` one job per call with `concurrency` callers. */
export async function graphileAddJob(ctx: BenchContext, label: string, total: number, concurrency: number): Promise<SystemResult> {
  return withUtils(ctx, label, async (utils) => {
    const send = async (i: number) => {
      await utils.addJob(TASK, payload(i));
    };
    await closedLoop(warmupCount(total), concurrency, (i) => send(total + i));
    const { result: run, processes } = await measure(
      ctx,
      null,
      (r) => r.done,
      () => timedLoop(total, concurrency, PEER_MAX_SECONDS, send),
    );
    return {
      system: GRAPHILE_WORKER,
      role: "peer",
      figure: Math.round(run.done / run.seconds),
      unit: "jobs/s",
      messages: run.done,
      seconds: run.seconds,
      processes,
      config: `addJob() × ${concurrency} concurrent callers, pool max ${UTILS_POOL} (at most ${PEER_MAX_SECONDS} s)`,
    } satisfies SystemResult;
  });
}

/** `addJobs()` of `batch` jobs per call with `concurrency` callers. */
export async function graphileAddJobs(ctx: BenchContext, label: string, total: number, batch: number, concurrency: number): Promise<SystemResult> {
  return withUtils(ctx, label, async (utils) => {
    const { result: seconds, processes } = await measure(
      ctx,
      null,
      () => total,
      () =>
        closedLoop(Math.ceil(total / batch), concurrency, async (b) => {
          const n = Math.min(batch, total - b * batch);
          await utils.addJobs(Array.from({ length: n }, (_, k) => ({ identifier: TASK, payload: payload(b * batch + k) })));
        }),
    );
    return {
      system: GRAPHILE_WORKER,
      role: "peer",
      figure: Math.round(total / seconds),
      unit: "jobs/s",
      messages: total,
      seconds,
      processes,
      config: `addJobs() of ${batch} jobs × ${concurrency} concurrent callers, pool max ${UTILS_POOL}`,
    } satisfies SystemResult;
  });
}

async function remaining(dbUrl: string): Promise<number> {
  const rows = await sql<{ n: number }>(dbUrl, "select count(*)::int as n from graphile_worker._private_jobs");
  return rows[0]!.n;
}

/**
 * A backlog of `total` jobs, then a worker until every job is completed (deleted): no-op jobs,
 * or each job a signed POST to the receiver (also timed until the receiver saw every job).
 */
export async function graphileProcess(ctx: BenchContext, label: string, total: number, job: PeerJob = "no-op"): Promise<SystemResult> {
  if (job === "signed POST") return withReceiver((sender, receiver) => graphileRun(ctx, label, total, { sender, receiver }));
  return graphileRun(ctx, label, total);
}

async function graphileRun(ctx: BenchContext, label: string, total: number, post?: { sender: WebhookSender; receiver: Receiver }): Promise<SystemResult> {
  return withUtils(ctx, label, async (utils, dbUrl) => {
    for (let b = 0; b * 1000 < total; b++) {
      const n = Math.min(1000, total - b * 1000);
      await utils.addJobs(Array.from({ length: n }, (_, k) => ({ identifier: TASK, payload: payload(b * 1000 + k) })));
    }
    await sql(dbUrl, "analyze");
    let handled = 0;
    let runner: Runner | null = null;
    const settings = post ? POST_WORKER : WORKER;
    try {
      const { result: seconds, processes } = await measure(
        ctx,
        null,
        () => total,
        async () => {
          const started = performance.now();
          runner = await startWorker(
            dbUrl,
            async (data, jobId) => {
              if (post) await post.sender.send(jobId, data);
              handled++;
            },
            settings,
          );
          await until("graphile-worker to handle every job", () => handled >= total, ctx.sizes.phaseTimeoutMs, 10);
          await until("graphile-worker to complete every job", async () => (await remaining(dbUrl)) === 0, ctx.sizes.phaseTimeoutMs, 50);
          if (post) await post.receiver.waitFor(total, ctx.sizes.phaseTimeoutMs);
          return (performance.now() - started) / 1000;
        },
      );
      return {
        system: `${GRAPHILE_WORKER} ${post ? "signed POST" : "no-op"}`,
        role: "peer",
        figure: Math.round(total / seconds),
        unit: "jobs/s",
        messages: total,
        seconds,
        processes,
        config: post
          ? `${SENDER_CONFIG}; ${workConfig(POST_WORKER, "higher concurrency for I/O-bound tasks, pool to match")}; timed until every job is completed (deleted) and the receiver saw every job`
          : `no-op task; ${WORK_CONFIG}; timed until every job is completed (deleted)`,
      } satisfies SystemResult;
    } finally {
      await (runner as Runner | null)?.stop().catch(() => {});
    }
  });
}

/**
 * Open-loop `addJob()` at `rate`/s; latency from addJob()'s resolve to the task's start, and end
 * to end from just before addJob() to the task's start.
 */
export async function graphileLatency(ctx: BenchContext, label: string, rate: number, seconds: number, warmupSeconds: number): Promise<SystemResult> {
  return withUtils(ctx, label, async (utils, dbUrl) => {
    const sentAt = new Map<number, number>();
    const enqueued = new Map<number, number>();
    const started = new Map<number, number>();
    const runner = await startWorker(dbUrl, (p) => {
      const i = (p as { i: number }).i;
      if (!started.has(i)) started.set(i, performance.now());
    });
    try {
      const send = async (i: number) => {
        sentAt.set(i, performance.now());
        await utils.addJob(TASK, { ...payload(i), i });
        enqueued.set(i, performance.now());
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
          await until("graphile-worker tasks", () => [...Array(total).keys()].every((i) => started.has(i)), ctx.sizes.phaseTimeoutMs, 20);
          return r;
        },
      );
      const ids = [...Array(total).keys()];
      const latency = summarize(ids.map((i) => started.get(i)! - enqueued.get(i)!));
      const endToEnd = summarize(ids.map((i) => started.get(i)! - sentAt.get(i)!));
      return {
        system: GRAPHILE_WORKER,
        role: "peer",
        figure: latency.p50,
        unit: "ms p50",
        messages: total,
        seconds: run.seconds,
        latency,
        endToEnd,
        processes,
        config: `addJob() at ${rate}/s open loop; ${WORK_CONFIG}`,
      } satisfies SystemResult;
    } finally {
      await runner.stop().catch(() => {});
    }
  });
}
