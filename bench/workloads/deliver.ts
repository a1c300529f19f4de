import { withTidings, type BenchContext } from "../lib/context.ts";
import { atLeast, fmt, type SystemResult, type WorkloadResult } from "../lib/report.ts";
import { graphileProcess } from "../peers/graphileWorker.ts";
import { pgBossProcess } from "../peers/pgBoss.ts";
import { peer, ratiosToOthers, serviceRssTarget } from "./common.ts";
import { deliverBacklog } from "./tidingsBacklog.ts";

/** The service's default deliveries in flight (TIDINGS_DELIVERY_CONCURRENCY), which is also its connections per origin. */
const DELIVERY_CONCURRENCY = 128;

/**
 * Workload 3: a committed backlog delivered over real HTTP with signatures. Each peer runs it
 * twice: jobs that do what a Tidings delivery does (a signed POST of the payload to the same
 * kind of in-runner receiver), and no-op jobs (the queue's own cost).
 */
export async function deliver(ctx: BenchContext): Promise<Omit<WorkloadResult, "name" | "startedAt" | "seconds" | "status">> {
  const total = ctx.sizes.deliver.messages;
  const notes: string[] = [];
  ctx.log("  tidings ...");
  const run = await withTidings(ctx, "deliver", (service, db) => deliverBacklog(ctx, service, db.url, total, total));
  const tidings: SystemResult = {
    system: "tidings",
    role: "tidings",
    figure: Math.round(total / run.seconds),
    unit: "deliveries/s",
    messages: total,
    seconds: run.seconds,
    processes: run.processes,
    config: `backlog of ${fmt(total)} committed messages (subscription paused while seeding), then enabled; signed HTTP POST to an in-runner receiver answering 200; timed until all are recorded delivered; service defaults (up to ${DELIVERY_CONCURRENCY} deliveries in flight, over an undici Agent of up to ${DELIVERY_CONCURRENCY} keep-alive connections per origin; 10 s delivery timeout)`,
    extra: { receivedSeconds: Math.round(run.receivedSeconds * 100) / 100, redeliveries: run.redeliveries },
  };
  const posting = [
    await peer(ctx, notes, "pg-boss signed POST", () => pgBossProcess(ctx, "deliver_post", total, "signed POST")),
    await peer(ctx, notes, "graphile-worker signed POST", () => graphileProcess(ctx, "deliver_post", total, "signed POST")),
  ].filter((s): s is SystemResult => s !== null);
  const noOp = [
    await peer(ctx, notes, "pg-boss no-op processing", () => pgBossProcess(ctx, "deliver", total)),
    await peer(ctx, notes, "graphile-worker no-op processing", () => graphileProcess(ctx, "deliver", total)),
  ].filter((s): s is SystemResult => s !== null);
  const targets = [atLeast("≥ 15,000 deliveries/s", tidings.figure, 15_000, "deliveries/s")];
  const fastest = (systems: SystemResult[]) => systems.reduce((a, b) => (b.figure > a.figure ? b : a));
  if (posting.length) {
    const best = fastest(posting);
    targets.push(atLeast(`≥ 2× the faster like-for-like peer (${best.system})`, tidings.figure, 2 * best.figure, "deliveries/s"));
  }
  if (noOp.length) {
    const best = fastest(noOp);
    targets.push(atLeast(`≥ 0.6× the faster no-op peer (${best.system})`, tidings.figure, 0.6 * best.figure, "deliveries/s"));
  }
  const others = [...posting, ...noOp];
  targets.push(serviceRssTarget(tidings));
  if (run.redeliveries > 0) notes.push(`${run.redeliveries} deliveries arrived twice (lease expiry or retry)`);
  return {
    title: `deliver a backlog of ${fmt(total)} messages to one HTTP subscription`,
    systems: [tidings, ...others],
    ratios: ratiosToOthers(tidings, others),
    targets,
    notes,
    ...(run.statements ? { statements: run.statements } : {}),
  };
}
