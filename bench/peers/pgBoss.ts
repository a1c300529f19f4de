import PgBoss from "pg-boss";
import { measure, sql, withDatabase, type BenchContext } from "../lib/context.ts";
import { closedLoop, openLoop, PEER_MAX_SECONDS, summarize, timedLoop, until, warmupCount } from "../lib/load.ts";
import { payload } from "../lib/payload.ts";
import type { Receiver } from "../lib/receiver.ts";
import type { SystemResult } from "../lib/report.ts";
import { type PeerJob, SENDER_CONFIG, type WebhookSender, withReceiver } from "../lib/webhookSender.ts";

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

/**
 * The signed-POST variant: each job POSTs its payload to a receiver, so a worker waits on the
 * network rather than the database. pg-boss's way for such jobs: several `work()` workers with a
 * `batchSize`, the handler sending its batch's jobs concurrently (Promise.all); a batch is
 * completed, or failed, as one. 20,000 jobs on 2 busy shared cores (load average 5-9) ran
 * 1.2-2.1k jobs/s at every setting tried (4 × 500, 8 × 250, 8 × 500, 8 × 1000, 16 × 100,
 * 16 × 250, 32 × 50), bound by the runner's CPU (the POST and the receiver, ~0.27 CPU s per
 * 1,000 jobs), not by the setting. 16 × 250 keeps the sender's 128 connections busy with at
 * most 4,000 requests waiting (seconds at these rates, well within the 10 s timeout, which
 * counts the wait), and its polling cap (16 × 250 / 0.5 s = 8k/s) above what one process sends.
 */
const POST_WORKERS = 16;
const POST_BATCH = 250;

/**
 * A backlog of `total` jobs, then workers until every job is completed in the database: no-op
 * jobs, or each job a signed POST to the receiver, also timed until the
 * receiver has seen every job.
 */
export async function pgBossProcess(ctx: BenchContext, label: string, total: number, job: PeerJob = "no-op"): Promise<SystemResult> {
  if (job === "signed POST") return withReceiver((sender, receiver) => pgBossRun(ctx, label, total, { sender, receiver }));
  return pgBossRun(ctx, label, total);
}

async function pgBossRun(ctx: BenchContext, label: string, total: number, post?: { sender: WebhookSender; receiver: Receiver }): Promise<SystemResult> {
  return withBoss(ctx, label, async (boss, dbUrl) => {
    for (let b = 0; b * 1000 < total; b++) {
      const n = Math.min(1000, total - b * 1000);
      await boss.insert(Array.from({ length: n }, (_, k) => ({ name: QUEUE, data: payload(b * 1000 + k) })));
    }
    await sql(dbUrl, "analyze");
    let handled = 0;
    const workers = post ? POST_WORKERS : WORKERS;
    const batchSize = post ? POST_BATCH : BATCH;
    const { result: seconds, processes } = await measure(
      ctx,
      null,
      () => total,
      async () => {
        const started = performance.now();
        for (let w = 0; w < workers; w++) {
          await boss.work(QUEUE, { batchSize, pollingIntervalSeconds: POLL_S }, async (jobs) => {
            if (post) await Promise.all(jobs.map((job) => post.sender.send(job.id, job.data)));
            handled += jobs.length;
          });
        }
        await until("pg-boss to handle every job", () => handled >= total, ctx.sizes.phaseTimeoutMs, 10);
        await until("pg-boss to complete every job", async () => (await completed(dbUrl)) >= total, ctx.sizes.phaseTimeoutMs, 50);
        if (post) await post.receiver.waitFor(total, ctx.sizes.phaseTimeoutMs);
        return (performance.now() - started) / 1000;
      },
    );
    await boss.offWork(QUEUE);
    const settings = `${workers} work() workers × batchSize ${batchSize}, pollingIntervalSeconds ${POLL_S}, pool max ${POOL}, supervise/schedule off`;
    return {
      system: `${PG_BOSS} ${post ? "signed POST" : "no-op"}`,
      role: "peer",
      figure: Math.round(total / seconds),
      unit: "jobs/s",
      messages: total,
      seconds,
      processes,
      config: post
        ? `${SENDER_CONFIG}; the batch's jobs sent concurrently (Promise.all); ${settings}; timed until every job is 'completed' in the database and the receiver saw every job`
        : `no-op handler; ${settings}; timed until every job is 'completed' in the database`,
    } satisfies SystemResult;
  });
}

/**
 * Open-loop `send()` at `rate`/s; latency from send()'s resolve to the handler's start, and end
 * to end from just before send() to the handler's start.
 */
export async function pgBossLatency(ctx: BenchContext, label: string, rate: number, seconds: number, warmupSeconds: number): Promise<SystemResult> {
  return withBoss(ctx, label, async (boss) => {
    const sentAt = new Map<number, number>();
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
      sentAt.set(i, performance.now());
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
    const ids = [...Array(total).keys()];
    const latency = summarize(ids.map((i) => started.get(i)! - enqueued.get(i)!));
    const endToEnd = summarize(ids.map((i) => started.get(i)! - sentAt.get(i)!));
    await boss.offWork(QUEUE);
    return {
      system: PG_BOSS,
      role: "peer",
      figure: latency.p50,
      unit: "ms p50",
      messages: total,
      seconds: run.seconds,
      latency,
      endToEnd,
      processes,
      config: `send() at ${rate}/s open loop, then notifyWorker() on every worker; ${WORK_CONFIG}`,
    } satisfies SystemResult;
  });
}
