import { measure, resetStatements, topStatements, withTidings, type BenchContext } from "../lib/context.ts";
import { closedLoop, warmupCount } from "../lib/load.ts";
import { Producer } from "../lib/producer.ts";
import { atLeast, fmt, type SystemResult, type WorkloadResult } from "../lib/report.ts";
import { graphileAddJob } from "../peers/graphileWorker.ts";
import { pgbenchInsert } from "../peers/pgbench.ts";
import { pgBossSend } from "../peers/pgBoss.ts";
import { peer, ratiosToOthers, serviceRssTarget } from "./common.ts";

/**
 * Workload 1: `concurrency` producers, one message per HTTP request (keep-alive), no
 * subscription on the topic: the cost of accepting a message, as a peer's enqueue is.
 */
export async function publishSingle(ctx: BenchContext): Promise<Omit<WorkloadResult, "name" | "startedAt" | "seconds" | "status">> {
  const { messages: total, concurrency } = ctx.sizes.publishSingle;
  const notes: string[] = [];
  let statements: WorkloadResult["statements"];
  ctx.log("  tidings ...");
  const tidings = await withTidings(ctx, "publish_single", async (service, db) => {
    const apiKey = await service.createApp("bench");
    const producer = new Producer(service.url, apiKey, concurrency);
    try {
      await closedLoop(warmupCount(total), concurrency, (i) => producer.publish(total + i).then(() => {}));
      await resetStatements(ctx, db.url);
      const { result: seconds, processes } = await measure(
        ctx,
        service.pid,
        () => total,
        () => closedLoop(total, concurrency, (i) => producer.publish(i).then(() => {})),
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
        config: `POST /v1/messages × ${concurrency} concurrent producers (undici, keep-alive, app key), no subscription on the topic; service defaults`,
      } satisfies SystemResult;
    } finally {
      await producer.close();
    }
  });
  const others = [
    await peer(ctx, notes, "pg-boss send", () => pgBossSend(ctx, "publish_single", total, concurrency)),
    await peer(ctx, notes, "graphile-worker addJob", () => graphileAddJob(ctx, "publish_single", total, concurrency)),
    await peer(ctx, notes, "pgbench single-row INSERT", () => pgbenchInsert(ctx, "publish_single", { ...ctx.sizes.pgbenchSingle, rowsPerInsert: 1 })),
  ].filter((s): s is SystemResult => s !== null);
  const limit = others.find((o) => o.role === "limit");
  const targets = [atLeast("≥ 10,000 msg/s", tidings.figure, 10_000, "msg/s")];
  if (limit) {
    const share = (tidings.figure / limit.figure) * 100;
    targets.push({
      target: "≥ 70% of the pgbench limit",
      actual: `${fmt(share, 1)}% of ${fmt(limit.figure)} rows/s`,
      met: share >= 70,
      ...(share >= 70 ? {} : { gap: `missed by ${fmt(70 - share, 1)} points (needs ${fmt(limit.figure * 0.7)} msg/s)` }),
    });
  }
  targets.push(serviceRssTarget(tidings));
  return {
    title: `${fmt(concurrency)} concurrent producers, ${fmt(total)} messages, one per request`,
    systems: [tidings, ...others],
    ratios: ratiosToOthers(tidings, others),
    targets,
    notes,
    ...(statements ? { statements } : {}),
  };
}
