import { measure, resetStatements, topStatements, withTidings, type BenchContext } from "../lib/context.ts";
import { closedLoop } from "../lib/load.ts";
import { Producer } from "../lib/producer.ts";
import { atLeast, fmt, type SystemResult, type WorkloadResult } from "../lib/report.ts";
import { graphileAddJobs } from "../peers/graphileWorker.ts";
import { pgbenchInsert } from "../peers/pgbench.ts";
import { pgBossInsert } from "../peers/pgBoss.ts";
import { peer, ratiosToOthers, serviceRssTarget } from "./common.ts";

/** Workload 2: messages in requests of `batch` (POST /v1/messages/batch), `concurrency` requests at a time. */
export async function publishBatch(ctx: BenchContext): Promise<Omit<WorkloadResult, "name" | "startedAt" | "seconds" | "status">> {
  const { messages: total, batch, concurrency } = ctx.sizes.publishBatch;
  const requests = Math.ceil(total / batch);
  const notes: string[] = [];
  let statements: WorkloadResult["statements"];
  ctx.log("  tidings ...");
  const tidings = await withTidings(ctx, "publish_batch", async (service, db) => {
    const apiKey = await service.createApp("bench");
    const producer = new Producer(service.url, apiKey, concurrency);
    try {
      const warm = Math.max(1, Math.round(requests / 20));
      await closedLoop(warm, concurrency, (b) => producer.publishBatch(total + b * batch, batch));
      await resetStatements(ctx, db.url);
      const { result: seconds, processes } = await measure(
        ctx,
        service.pid,
        () => total,
        () => closedLoop(requests, concurrency, (b) => producer.publishBatch(b * batch, Math.min(batch, total - b * batch))),
      );
      statements = await topStatements(ctx, db.url);
      return {
        system: "tidings",
        role: "tidings",
        figure: Math.round(total / seconds),
        unit: "msg/s",
        messages: total,
        seconds,
        processes,
        config: `POST /v1/messages/batch of ${batch} × ${concurrency} concurrent requests, no subscription on the topic; service defaults`,
      } satisfies SystemResult;
    } finally {
      await producer.close();
    }
  });
  const others = [
    await peer(ctx, notes, "pg-boss insert", () => pgBossInsert(ctx, "publish_batch", total, batch, concurrency)),
    await peer(ctx, notes, "graphile-worker addJobs", () => graphileAddJobs(ctx, "publish_batch", total, batch, concurrency)),
    await peer(ctx, notes, "pgbench 100-row INSERT", () =>
      pgbenchInsert(ctx, "publish_batch", {
        clients: ctx.sizes.pgbenchBatch.clients,
        seconds: ctx.sizes.pgbenchBatch.seconds,
        rowsPerInsert: ctx.sizes.pgbenchBatch.rows,
      }),
    ),
  ].filter((s): s is SystemResult => s !== null);
  return {
    title: `${fmt(total)} messages in requests of ${fmt(batch)}, ${concurrency} at a time`,
    systems: [tidings, ...others],
    ratios: ratiosToOthers(tidings, others),
    targets: [atLeast("≥ 100,000 msg/s", tidings.figure, 100_000, "msg/s"), serviceRssTarget(tidings)],
    notes,
    ...(statements ? { statements } : {}),
  };
}
