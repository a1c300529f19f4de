import { sql, withTidings, type BenchContext } from "../lib/context.ts";
import { fmt, ratio, type SystemResult, type WorkloadResult } from "../lib/report.ts";
import { serviceRssTarget } from "./common.ts";
import { deliverBacklog, type BacklogRun } from "./tidingsBacklog.ts";

/** Deliveries a service holds in memory at most (TIDINGS_DELIVERY_CONCURRENCY 128 in flight + 20× queued): released when paused. */
const IN_MEMORY_CAP = 128 * 21;

interface TableStats {
  table: string;
  /** Exact row count (n_live_tup is an estimate). */
  live: number;
  dead: number;
  autovacuums: number;
  sizeMb: number;
}

/** Deliveries that left pending (delivered or dead) by the time the tables are inspected. */
async function finishedDeliveries(dbUrl: string): Promise<number> {
  const rows = await sql<{ n: number }>(dbUrl, "select count(*)::int as n from deliveries where state <> 'pending'");
  return rows[0]!.n;
}

async function queueTableStats(dbUrl: string): Promise<TableStats[]> {
  // The counters are sent by backends on a timer; wait them out so the numbers are current.
  await new Promise((r) => setTimeout(r, 1_000));
  return sql<TableStats>(
    dbUrl,
    `select relname as table, (xpath('/row/n/text()', query_to_xml(format('select count(*) as n from %I', relname), false, true, '')))[1]::text::int as live,
            n_dead_tup::int as dead, autovacuum_count::int as autovacuums,
            round(pg_total_relation_size(relid) / 1048576.0)::int as "sizeMb"
       from pg_stat_user_tables where relname in ('messages', 'deliveries', 'attempts') order by relname`,
  );
}

/**
 * Workload 6: deliver throughput with a small and a huge backlog pending. Throughput that
 * holds as the backlog grows needs claims that stay index-bounded; the dead tuples the
 * deliveries leave behind show what autovacuum must keep up with.
 */
export async function backlog(ctx: BenchContext): Promise<Omit<WorkloadResult, "name" | "startedAt" | "seconds" | "status">> {
  const { small, large, measured } = ctx.sizes.backlog;
  const runs: Array<{ run: BacklogRun; tables: TableStats[]; finished: number }> = [];
  for (const [pending, count] of [
    [small, small],
    [large, Math.min(measured, large)],
  ] as const) {
    ctx.log(`  tidings with ${fmt(pending)} pending ...`);
    runs.push(
      await withTidings(ctx, `backlog_${pending}`, async (service, db) => {
        const run = await deliverBacklog(ctx, service, db.url, pending, count, "sql");
        // Stopping the service lets deliveries in memory finish and its connections flush
        // their table statistics (an idle backend may hold them for 10 s).
        await service.stop();
        return { run, tables: await queueTableStats(db.url), finished: await finishedDeliveries(db.url) };
      }),
    );
  }
  const systems: SystemResult[] = runs.map(({ run, tables }) => ({
    system: `tidings, ${fmt(run.pending)} pending`,
    role: "tidings",
    figure: Math.round(run.delivered / run.seconds),
    unit: "deliveries/s",
    messages: run.delivered,
    seconds: run.seconds,
    processes: run.processes,
    config: `${fmt(run.pending)} committed (bulk-loaded with SQL in ${run.seedSeconds.toFixed(1)} s), first ${fmt(run.delivered)} delivered and recorded; at the end ${tables
      .map((t) => `${t.table} ${fmt(t.live)} live / ${fmt(t.dead)} dead tuples, ${t.autovacuums} autovacuums, ${fmt(t.sizeMb)} MB`)
      .join("; ")}`,
    extra: Object.fromEntries(
      tables.flatMap((t) => [
        [`${t.table}Dead`, t.dead],
        [`${t.table}Live`, t.live],
        [`${t.table}Autovacuums`, t.autovacuums],
      ]),
    ),
  }));
  const [few, many] = systems as [SystemResult, SystemResult];
  const r = ratio(many.figure, few.figure);
  const deliveriesDead = runs[1]!.tables.find((t) => t.table === "deliveries")?.dead ?? NaN;
  const delivered = runs[1]!.finished;
  return {
    title: `deliver throughput with ${fmt(small)} and with ${fmt(large)} messages pending`,
    systems,
    ratios: [{ label: `${fmt(large)}/${fmt(small)} pending`, value: r }],
    targets: [
      {
        target: "ratio ≥ 0.8",
        actual: fmt(r, 3),
        met: r >= 0.8,
        ...(r >= 0.8 ? {} : { gap: `missed by ${fmt(0.8 - r, 3)} (${fmt((1 - r / 0.8) * 100, 0)}% short)` }),
      },
      {
        target: "dead tuples bounded (deliveries: ≤ 2 per finished delivery, + 2 per delivery released from memory at the pause, until autovacuum)",
        actual: `${fmt(deliveriesDead)} dead tuples in deliveries after ${fmt(delivered)} deliveries finished (${fmt(deliveriesDead / delivered, 2)} per delivery)`,
        met: deliveriesDead <= 2 * delivered + 2 * IN_MEMORY_CAP,
      },
      serviceRssTarget(many),
    ],
    notes: [
      "each delivery updates its row twice (lease on claim, result on record): ≤ 2 dead tuples per delivery until autovacuum " +
        "(default autovacuum_vacuum_scale_factor 0.2) reclaims them; pending rows are found through the partial index deliveries_due",
    ],
  };
}
