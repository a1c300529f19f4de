import { withTidings, type BenchContext } from "../lib/context.ts";
import { atLeast, fmt, type SystemResult, type WorkloadResult } from "../lib/report.ts";
import { graphileProcess } from "../peers/graphileWorker.ts";
import { pgBossProcess } from "../peers/pgBoss.ts";
import { peer, ratiosToOthers, serviceRssTarget } from "./common.ts";
import { deliverBacklog } from "./tidingsBacklog.ts";

/** Workload 3: a committed backlog delivered over real HTTP with signatures; peers run no-op jobs. */
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
    config: `backlog of ${fmt(total)} committed messages (subscription paused while seeding), then enabled; signed HTTP POST to an in-runner receiver answering 200; timed until all are recorded delivered; service defaults`,
    extra: { receivedSeconds: Math.round(run.receivedSeconds * 100) / 100, redeliveries: run.redeliveries },
  };
  const others = [
    await peer(ctx, notes, "pg-boss no-op processing", () => pgBossProcess(ctx, "deliver", total)),
    await peer(ctx, notes, "graphile-worker no-op processing", () => graphileProcess(ctx, "deliver", total)),
  ].filter((s): s is SystemResult => s !== null);
  const targets = [atLeast("≥ 15,000 deliveries/s", tidings.figure, 15_000, "deliveries/s")];
  if (others.length) {
    const best = others.reduce((a, b) => (b.figure > a.figure ? b : a));
    targets.push(atLeast(`not below the faster peer (${best.system})`, tidings.figure, best.figure, "deliveries/s"));
  }
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
