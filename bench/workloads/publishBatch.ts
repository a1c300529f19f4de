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
  // Two answers measured on one service, one after the other: every stored message echoed back
  // (the default), and ids and outcomes only (`Prefer: return=minimal`, what a producer that keeps
  // its own copy asks for; pg-boss's insert() returns nothing).
  const [tidings, minimal] = await withTidings(ctx, "publish_batch", async (service, db) => {
    const apiKey = await service.createApp("bench");
    const producer = new Producer(service.url, apiKey, concurrency);
    try {
      const warm = Math.max(1, Math.round(requests / 20));
      await closedLoop(warm, concurrency, (b) => producer.publishBatch(total + b * batch, batch));
      const variant = async (answer: "full" | "minimal", offset: number): Promise<SystemResult> => {
        await resetStatements(ctx, db.url);
        const { result: seconds, processes } = await measure(
          ctx,
          service.pid,
          () => total,
          () =>
            closedLoop(requests, concurrency, (b) =>
              producer.publishBatch(offset + b * batch, Math.min(batch, total - b * batch), { minimal: answer === "minimal" }),
            ),
        );
        if (answer === "full") statements = await topStatements(ctx, db.url);
        return {
          system: answer === "full" ? "tidings" : "tidings return=minimal",
          role: "tidings",
          figure: Math.round(total / seconds),
          unit: "msg/s",
          messages: total,
          seconds,
          processes,
          config:
            `POST /v1/messages/batch of ${batch} × ${concurrency} concurrent requests, no subscription on the topic; ` +
            (answer === "full" ? "the answer carries every stored message" : "`Prefer: return=minimal`: the answer carries ids and outcomes") +
            "; service defaults",
        } satisfies SystemResult;
      };
      return [await variant("full", 0), await variant("minimal", 2 * total)] as const;
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
  const peers = others.filter((o) => o.role === "peer");
  const targets = [atLeast("≥ 100,000 msg/s", tidings.figure, 100_000, "msg/s")];
  if (peers.length) {
    const best = peers.reduce((a, b) => (b.figure > a.figure ? b : a));
    const goal = Math.round(best.figure * 1.2);
    targets.push(
      atLeast(`≥ 1.2× the faster peer (${best.system.split(" ")[0]})`, tidings.figure, goal, "msg/s"),
      atLeast(`return=minimal ≥ 1.2× the faster peer (${best.system.split(" ")[0]})`, minimal.figure, goal, "msg/s"),
    );
  }
  const peakRss = (s: SystemResult) => s.processes.find((p) => p.name === "service")?.peakRssMb ?? 0;
  targets.push(serviceRssTarget(peakRss(minimal) > peakRss(tidings) ? minimal : tidings));
  return {
    title: `${fmt(total)} messages in requests of ${fmt(batch)}, ${concurrency} at a time`,
    systems: [tidings, minimal, ...others],
    ratios: [
      ...ratiosToOthers(tidings, others),
      ...ratiosToOthers(minimal, others).map((r) => ({ ...r, label: r.label.replace(/^tidings\//, "tidings minimal/") })),
    ],
    targets,
    notes,
    ...(statements ? { statements } : {}),
  };
}
