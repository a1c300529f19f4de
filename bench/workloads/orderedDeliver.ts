import { measure, resetStatements, sql, topStatements, withTidings, type BenchContext } from "../lib/context.ts";
import { closedLoop, until } from "../lib/load.ts";
import { TOPIC } from "../lib/payload.ts";
import { Producer } from "../lib/producer.ts";
import { Receiver } from "../lib/receiver.ts";
import { atLeast, fmt, type SystemResult, type WorkloadResult } from "../lib/report.ts";
import { serviceRssTarget } from "./common.ts";

/**
 * A paused subscription's backlog of `total` messages (keys `key_<i mod keys>`; `keys` null: an
 * unordered subscription), enabled and timed until every delivery is recorded, on a fresh service.
 */
async function backlog(ctx: BenchContext, total: number, keys: number | null): Promise<SystemResult> {
  const label = keys === null ? "unordered" : `${keys}_keys`;
  ctx.log(`  ${label} ...`);
  return withTidings(ctx, `ordered_${label}`, async (service, db) => {
    const receiver = await new Receiver().start();
    try {
      const apiKey = await service.createApp("bench");
      await service.call("POST", "/v1/subscriptions", {
        name: "receiver",
        topic: TOPIC,
        endpoint: { type: "http", url: receiver.url },
        enabled: false,
        ordering: keys === null ? "none" : "key",
      });
      const producer = new Producer(service.url, apiKey, 4);
      try {
        const batch = Math.min(1_000, total);
        await closedLoop(Math.ceil(total / batch), 4, (b) => producer.publishBatch(b * batch, Math.min(batch, total - b * batch), { keys: keys ?? undefined }));
      } finally {
        await producer.close();
      }
      await sql(db.url, "analyze");
      await resetStatements(ctx, db.url);
      const { result: seconds, processes } = await measure(
        ctx,
        service.pid,
        () => total,
        async () => {
          const started = performance.now();
          await service.setSubscriptionEnabled("receiver", true);
          await receiver.waitFor(total, ctx.sizes.phaseTimeoutMs);
          await until("deliveries recorded", async () => (await service.metric("tidings_deliveries_delivered_total")) >= total, ctx.sizes.phaseTimeoutMs, 25);
          return (performance.now() - started) / 1000;
        },
      );
      for (const st of (await topStatements(ctx, db.url, 10)) ?? [])
        ctx.log(`    ${st.totalMs} ms ${st.calls} calls ${st.rows} rows: ${st.query.replace(/\s+/g, " ").slice(0, 160)}`);
      return {
        system: keys === null ? "tidings unordered" : `tidings ordered, ${fmt(keys)} key${keys === 1 ? "" : "s"}`,
        role: "tidings",
        figure: Math.round(total / seconds),
        unit: "deliveries/s",
        messages: total,
        seconds,
        processes,
        config: `backlog of ${fmt(total)} committed messages${keys === null ? "" : ` over ${fmt(keys)} keys`} (subscription paused while seeding), then enabled; ordering ${keys === null ? "none" : "key"}; receiver answering 200 at once; timed until all are recorded delivered`,
        extra: { redeliveries: receiver.received - receiver.seen.size },
      };
    } finally {
      await receiver.stop();
    }
  });
}

/**
 * Ordered delivery: the deliver workload's backlog with ordering "key" over 10,000,
 * 100 and 1 keys, beside the same backlog unordered. One key is one delivery at a time, so it
 * gets a smaller backlog.
 */
export async function orderedDeliver(ctx: BenchContext): Promise<Omit<WorkloadResult, "name" | "startedAt" | "seconds" | "status">> {
  const { messages, oneKey } = ctx.sizes.orderedDeliver;
  const unordered = await backlog(ctx, messages, null);
  const tenThousand = await backlog(ctx, messages, 10_000);
  const hundred = await backlog(ctx, messages, 100);
  const one = await backlog(ctx, oneKey, 1);
  const systems = [tenThousand, hundred, one, unordered];
  return {
    title: `deliver a backlog of ${fmt(messages)} messages ordered by key (10,000 and 100 keys; ${fmt(oneKey)} for one key) beside unordered`,
    systems,
    ratios: systems.slice(0, 3).map((s) => ({ label: `${s.system}/unordered`, value: Math.round((s.figure / unordered.figure) * 100) / 100 })),
    targets: [
      atLeast("10,000 keys within 20% of unordered", tenThousand.figure, Math.round(unordered.figure * 0.8), "deliveries/s"),
      serviceRssTarget(tenThousand),
    ],
    notes: [],
  };
}
