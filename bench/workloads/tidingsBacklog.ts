import { measure, resetStatements, sql, topStatements, type BenchContext } from "../lib/context.ts";
import { until, warmupCount } from "../lib/load.ts";
import { Producer } from "../lib/producer.ts";
import type { ProcessUsage } from "../lib/procStats.ts";
import { Receiver } from "../lib/receiver.ts";
import type { TopStatement } from "../lib/report.ts";
import { TOPIC } from "../lib/payload.ts";
import type { TidingsProcess } from "../lib/tidingsProcess.ts";
import { seedMessages } from "./common.ts";
import { seedBacklogSql } from "./seedSql.ts";

export interface BacklogRun {
  pending: number;
  delivered: number;
  seconds: number;
  /** Time until the receiver had them all (the database records them a moment later). */
  receivedSeconds: number;
  seedSeconds: number;
  processes: ProcessUsage[];
  redeliveries: number;
  statements?: TopStatement[];
}

/**
 * Commits `pending` messages while their one subscription is paused, then enables it and times
 * how long the service takes to deliver the first `measured` of them to a local receiver
 * (answering 200 at once) and record them as delivered (tidings_deliveries_delivered_total).
 */
export async function deliverBacklog(
  ctx: BenchContext,
  service: TidingsProcess,
  dbUrl: string,
  pending: number,
  measured: number,
  /** How the backlog is built: through the batch API, or bulk-loaded with SQL (see seedSql.ts). */
  seed: "api" | "sql" = "api",
): Promise<BacklogRun> {
  const receiver = await new Receiver().start();
  try {
    const apiKey = await service.createApp("bench");
    const warm = await warmUp(ctx, service, apiKey, receiver, warmupCount(measured));
    await service.createSubscription("receiver", TOPIC, receiver.url, false);
    const seedSeconds = seed === "api" ? await seedMessages(ctx, service, apiKey, pending) : await seedBacklogSql(ctx, dbUrl, "receiver", pending);
    // Every system's backlog is analyzed before it is processed, as autovacuum would have
    // done within a minute: planning claims on a table whose statistics say "empty" measures
    // the planner's blind spot, not the queue.
    await sql(dbUrl, "analyze");
    await resetStatements(ctx, dbUrl);
    let receivedSeconds = 0;
    const { result: seconds, processes } = await measure(
      ctx,
      service.pid,
      () => measured,
      async () => {
        const started = performance.now();
        await service.setSubscriptionEnabled("receiver", true);
        await receiver.waitFor(measured, ctx.sizes.phaseTimeoutMs);
        receivedSeconds = (performance.now() - started) / 1000;
        await until(
          "deliveries recorded",
          async () => (await service.metric("tidings_deliveries_delivered_total")) >= warm + measured,
          ctx.sizes.phaseTimeoutMs,
          25,
        );
        return (performance.now() - started) / 1000;
      },
    );
    const statements = await topStatements(ctx, dbUrl);
    // Stop further deliveries before the tables are inspected.
    await service.setSubscriptionEnabled("receiver", false);
    return {
      pending,
      delivered: measured,
      seconds,
      receivedSeconds,
      seedSeconds,
      processes,
      redeliveries: receiver.received - receiver.seen.size,
      ...(statements ? { statements } : {}),
    };
  } finally {
    await receiver.stop();
  }
}

/**
 * Warms a fresh service up on the same path (a paused subscription's backlog, enabled, claimed,
 * sent, recorded) on a topic of its own, so that the measured run starts with compiled code and
 * open connections, as the other workloads' warm-ups do. Returns the deliveries it made.
 */
async function warmUp(ctx: BenchContext, service: TidingsProcess, apiKey: string, receiver: Receiver, count: number): Promise<number> {
  const topic = `${TOPIC}.warmup`;
  await service.createSubscription("warmup", topic, receiver.url, false);
  const producer = new Producer(service.url, apiKey, 1);
  try {
    for (let first = 0; first < count; first += 1_000) await producer.publishBatch(first, Math.min(1_000, count - first), { topic });
  } finally {
    await producer.close();
  }
  await service.setSubscriptionEnabled("warmup", true);
  await receiver.waitFor(count, ctx.sizes.phaseTimeoutMs);
  await until("warm-up deliveries recorded", async () => (await service.metric("tidings_deliveries_delivered_total")) >= count, ctx.sizes.phaseTimeoutMs, 25);
  await service.setSubscriptionEnabled("warmup", false);
  receiver.reset();
  return count;
}
