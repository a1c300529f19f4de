import { measure, resetStatements, topStatements, withTidings, type BenchContext } from "../lib/context.ts";
import { openLoop, summarize, until } from "../lib/load.ts";
import { TOPIC } from "../lib/payload.ts";
import { Producer } from "../lib/producer.ts";
import { Receiver } from "../lib/receiver.ts";
import { atMost, fmt, ratio, type SystemResult, type WorkloadResult } from "../lib/report.ts";
import { graphileLatency } from "../peers/graphileWorker.ts";
import { pgBossLatency } from "../peers/pgBoss.ts";
import { pgbenchLatency } from "../peers/pgbench.ts";
import { peer, serviceRssTarget, shortName } from "./common.ts";

/**
 * Workload 4: `rate` messages/s offered (open loop) for `seconds`; two latencies for every
 * system: from the producer's acknowledgement (Tidings' 201 reply, pg-boss's send() or
 * graphile-worker's addJob() resolved) to the handler, and end to end, from just before the
 * producer sends to the handler. A delivery can reach the handler before the acknowledgement
 * reaches the producer (both follow the same commit): those count as 0 ms in the first.
 */
export async function latency(ctx: BenchContext): Promise<Omit<WorkloadResult, "name" | "startedAt" | "seconds" | "status">> {
  const { rate, seconds, warmupSeconds } = ctx.sizes.latency;
  const total = Math.round(rate * seconds);
  const notes: string[] = [];
  let statements: WorkloadResult["statements"];
  ctx.log("  tidings ...");
  const tidings = await withTidings(ctx, "latency", async (service, db) => {
    const receiver = await new Receiver().start();
    receiver.trackArrivals = true;
    const apiKey = await service.createApp("bench");
    await service.createSubscription("receiver", TOPIC, receiver.url, true);
    const producer = new Producer(service.url, apiKey, 64);
    try {
      const sent = new Map<string, number>();
      const replied = new Map<string, number>();
      const publish = async (i: number) => {
        const at = performance.now();
        // Receivers see the app's message under its full id (webhook-id `bench/<id>`).
        const id = `bench/${await producer.publish(i)}`;
        replied.set(id, performance.now());
        sent.set(id, at);
      };
      const warm = Math.round(rate * warmupSeconds);
      await openLoop(warm, rate, (i) => publish(total + i));
      await until("warm-up deliveries", () => receiver.arrivals.size >= warm, ctx.sizes.phaseTimeoutMs);
      sent.clear();
      replied.clear();
      await resetStatements(ctx, db.url);
      const { result: run, processes } = await measure(
        ctx,
        service.pid,
        () => total,
        async () => {
          const r = await openLoop(total, rate, publish);
          await until("every delivery", () => [...replied.keys()].every((id) => receiver.arrivals.has(id)), ctx.sizes.phaseTimeoutMs, 20);
          return r;
        },
      );
      statements = await topStatements(ctx, db.url);
      const ids = [...replied.keys()];
      const summary = summarize(ids.map((id) => receiver.arrivals.get(id)! - replied.get(id)!));
      const fromRequest = summarize(ids.map((id) => receiver.arrivals.get(id)! - sent.get(id)!));
      const reply = summarize(ids.map((id) => replied.get(id)! - sent.get(id)!));
      if (run.lateMs > 20) notes.push(`the load generator fell behind its schedule by up to ${fmt(run.lateMs, 0)} ms`);
      return {
        system: "tidings",
        role: "tidings",
        figure: summary.p50,
        unit: "ms p50",
        messages: total,
        seconds: run.seconds,
        latency: summary,
        endToEnd: fromRequest,
        processes,
        config: `POST /v1/messages at ${rate}/s open loop (${warmupSeconds} s warm-up not counted), subscription to an in-runner receiver; service defaults`,
        extra: {
          replyP50: reply.p50,
          replyP99: reply.p99,
          handlerBeforeReply: summary.beforeReply,
        },
      } satisfies SystemResult;
    } finally {
      await producer.close();
      await receiver.stop();
    }
  });
  notes.push(
    `tidings request → 201 reply: p50 ${tidings.extra!.replyP50} ms, p99 ${tidings.extra!.replyP99} ms; ` +
      `${tidings.extra!.handlerBeforeReply} of ${fmt(total)} reached the handler before the reply reached the producer`,
  );
  const others = [
    await peer(ctx, notes, "pg-boss latency", () => pgBossLatency(ctx, "latency", rate, seconds, warmupSeconds)),
    await peer(ctx, notes, "graphile-worker latency", () => graphileLatency(ctx, "latency", rate, seconds, warmupSeconds)),
  ].filter((s): s is SystemResult => s !== null);
  // What one durable commit takes on this machine at the same rate: the floor under every
  // system's send → handler (each stores the message with a commit before anyone can take it).
  const limit = await peer(ctx, notes, "pgbench latency", () => pgbenchLatency(ctx, "latency", rate, seconds));
  if (limit) {
    notes.push(
      `the commit-latency limit at ${fmt(rate)}/s (pgbench single-row INSERT, from each scheduled start): p50 ${limit.endToEnd!.p50} ms, p99 ${limit.endToEnd!.p99} ms`,
    );
  }
  const lat = tidings.latency!;
  const e2e = tidings.endToEnd!;
  const targets = [
    atMost("p50 ≤ 3 ms", lat.p50, 3, "ms", 2),
    atMost("p99 ≤ 10 ms", lat.p99, 10, "ms", 2),
    atMost("end to end (send → handler) p99 ≤ 5 ms", e2e.p99, 5, "ms", 2),
  ];
  if (others.length) {
    const bestP50 = Math.min(...others.map((o) => o.latency!.p50));
    const bestP99 = Math.min(...others.map((o) => o.latency!.p99));
    targets.push(atMost("p50 ahead of the best peer", lat.p50, bestP50, "ms", 2), atMost("p99 ahead of the best peer", lat.p99, bestP99, "ms", 2));
  }
  targets.push(serviceRssTarget(tidings));
  return {
    title: `${fmt(rate)} messages/s offered for ${seconds} s; producer's acknowledgement → handler, and send → handler`,
    systems: [tidings, ...others, ...(limit ? [limit] : [])],
    ratios: others.flatMap((o) => [
      { label: `tidings p99/${shortName(o)} p99`, value: ratio(lat.p99, o.latency!.p99) },
      { label: `tidings end-to-end p99/${shortName(o)} end-to-end p99`, value: ratio(e2e.p99, o.endToEnd!.p99) },
    ]),
    targets,
    notes,
    ...(statements ? { statements } : {}),
  };
}
