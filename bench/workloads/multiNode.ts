import { resetStatements, sql, withDatabase, type BenchContext } from "../lib/context.ts";
import { until } from "../lib/load.ts";
import { TOPIC } from "../lib/payload.ts";
import { socketUrl } from "../lib/postgres.ts";
import { UsageSampler, watchPostgres, watchProcess, type ProcessUsage } from "../lib/procStats.ts";
import { Receiver } from "../lib/receiver.ts";
import { fmt, type SystemResult, type TargetCheck, type WorkloadResult } from "../lib/report.ts";
import { TidingsProcess } from "../lib/tidingsProcess.ts";
import { seedMessages } from "./common.ts";

const DELIVERED = "tidings_deliveries_delivered_total";

/**
 * One paused subscription's backlog of `total` messages, seeded through the first node, then
 * enabled and timed until the nodes have recorded every delivery. The backlog is unleased, so
 * every node claims from it: the work is shared by claims alone (FOR UPDATE SKIP LOCKED), not by
 * who accepted the messages. Each node's share is read from its own /metrics.
 */
async function deliverWith(ctx: BenchContext, n: number, total: number): Promise<SystemResult> {
  ctx.log(`  ${n} node${n > 1 ? "s" : ""} ...`);
  return withDatabase(ctx, `multinode_${n}`, async (db) => {
    const socket = ctx.serviceSocket && ctx.pg.socketDir;
    const databaseUrl = socket ? socketUrl(db.url, socket) : db.url;
    const started: TidingsProcess[] = [];
    const receiver = await new Receiver().start();
    try {
      // The first migrates the fresh database; the others then start side by side.
      started.push(await TidingsProcess.start({ databaseUrl, env: ctx.serviceEnv }));
      const others = await Promise.allSettled(Array.from({ length: n - 1 }, () => TidingsProcess.start({ databaseUrl, env: ctx.serviceEnv })));
      for (const o of others) if (o.status === "fulfilled") started.push(o.value);
      const failed = others.find((o) => o.status === "rejected");
      if (failed) throw failed.reason;
      const [first] = started as [TidingsProcess];
      const apiKey = await first.createApp("bench");
      await first.createSubscription("receiver", TOPIC, receiver.url, false);
      await seedMessages(ctx, first, apiKey, total);
      await sql(db.url, "analyze");
      await resetStatements(ctx, db.url);
      const watched = started.map((node, i) => watchProcess(`service ${i + 1}`, node.pid));
      watched.push(watchProcess("runner", "self"));
      if (ctx.pg.postmasterPid !== null) watched.push(watchPostgres(ctx.pg.postmasterPid));
      const sampler = new UsageSampler(watched);
      const counts = async () => Promise.all(started.map((node) => node.metric(DELIVERED)));
      let seconds = Number.NaN;
      let shares: number[] = [];
      let processes: ProcessUsage[] = [];
      try {
        const t = performance.now();
        // Enabled through the first node; the others hear of it by NOTIFY and claim at their next poll.
        await first.setSubscriptionEnabled("receiver", true);
        await receiver.waitFor(total, ctx.sizes.phaseTimeoutMs);
        await until("deliveries recorded", async () => (await counts()).reduce((a, b) => a + b, 0) >= total, ctx.sizes.phaseTimeoutMs, 25);
        seconds = (performance.now() - t) / 1000;
        shares = await counts();
      } finally {
        // Stopped on failure too, so its timer does not outlive the phase.
        processes = sampler.stop(total);
      }
      const redeliveries = receiver.received - receiver.seen.size;
      return {
        system: `tidings, ${n} node${n > 1 ? "s" : ""}`,
        role: "tidings",
        figure: Math.round(total / seconds),
        unit: "deliveries/s",
        messages: total,
        seconds,
        processes,
        config: `${n} tidings serve process${n > 1 ? "es" : ""} on one database; backlog of ${fmt(total)} committed messages (subscription paused while seeding through the first), then enabled; receiver answering 200 at once; timed until every node's recorded deliveries add up to the backlog; service defaults`,
        extra: {
          redeliveries,
          // Each node's share of the deliveries, in %.
          ...Object.fromEntries(shares.map((count, i) => [`node${i + 1}SharePercent`, Math.round((count / total) * 1000) / 10])),
        },
      };
    } catch (error) {
      for (const [i, node] of started.entries()) ctx.log(`tidings ${i + 1} output (tail):\n${node.log.slice(-2000)}`);
      throw error;
    } finally {
      await Promise.all(started.map((node) => node.stop()));
      await receiver.stop();
    }
  });
}

/**
 * Workload 13: the deliver workload's backlog with 1, 2 and 3 service processes on one database.
 * On two cores this shows correctness and the cost of sharing (claims racing on one table), not
 * a speed-up: the processes share the cores with PostgreSQL and the receiver.
 */
export async function multiNode(ctx: BenchContext): Promise<Omit<WorkloadResult, "name" | "startedAt" | "seconds" | "status">> {
  const total = ctx.sizes.multiNode.messages;
  const systems: SystemResult[] = [];
  for (const n of [1, 2, 3]) systems.push(await deliverWith(ctx, n, total));
  const [one] = systems as [SystemResult];
  const shared = systems.slice(1);
  const sharesOf = (s: SystemResult) =>
    Object.entries(s.extra ?? {})
      .filter(([k]) => k.endsWith("SharePercent"))
      .map(([, v]) => Number(v));
  const unshared = shared.filter((s) => sharesOf(s).some((share) => share === 0));
  const twice = systems.reduce((sum, s) => sum + Number(s.extra?.redeliveries ?? 0), 0);
  const targets: TargetCheck[] = [
    {
      target: "every node of 2 and of 3 delivers a share",
      actual: shared
        .map(
          (s) =>
            `${s.system}: ${sharesOf(s)
              .map((share) => `${share}%`)
              .join(" / ")}`,
        )
        .join("; "),
      met: unshared.length === 0,
      ...(unshared.length ? { gap: `a node delivered nothing in: ${unshared.map((s) => s.system).join(", ")}` } : {}),
    },
    { target: "each message delivered once (all nodes alive)", actual: `${twice} redeliveries`, met: twice === 0 },
  ];
  return {
    title: `deliver a backlog of ${fmt(total)} messages with 1, 2 and 3 service processes on one database`,
    systems,
    ratios: shared.map((s) => ({ label: `${s.system}/1 node`, value: Math.round((s.figure / one.figure) * 100) / 100 })),
    targets,
    notes: ["each node's share from its own tidings_deliveries_delivered_total; on 2 cores the figures show the overhead of sharing, not a speed-up"],
  };
}
