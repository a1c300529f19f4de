import pg from "pg";
import { fromPg, migrate, Outbox } from "@tidings/sdk";
import { measure, resetStatements, topStatements, withDatabase, withTidings, type BenchContext } from "../lib/context.ts";
import { until } from "../lib/load.ts";
import { payload, TOPIC } from "../lib/payload.ts";
import { atLeast, fmt, type SystemResult, type WorkloadResult } from "../lib/report.ts";
import { serviceRssTarget } from "./common.ts";

/**
 * Relay tuning, from the RelayOptions docs: the batch API's maximum per call (default 500), and
 * several batches in flight (default 1), each claimed with SKIP LOCKED so they never overlap.
 */
const RELAY = { batchSize: 1_000, concurrency: 4 };

/**
 * Workload 7: a producer's outbox table holding `rows` committed rows (added in the producer's
 * transactions, 1,000 per transaction), then the SDK's relay ships them; rows per second from
 * the relay's start until every row is marked sent (each sent row is a committed message).
 */
export async function outboxRelay(ctx: BenchContext): Promise<Omit<WorkloadResult, "name" | "startedAt" | "seconds" | "status">> {
  const total = ctx.sizes.outbox.rows;
  let statements: WorkloadResult["statements"];
  ctx.log("  tidings ...");
  const tidings = await withTidings(ctx, "outbox", (service, serviceDb) =>
    withDatabase(ctx, "outbox_producer", async (producerDb) => {
      const pool = new pg.Pool({ connectionString: producerDb.url, max: 8 });
      pool.on("error", () => {});
      const apiKey = await service.createApp("bench");
      const db = fromPg(pool);
      const outbox = new Outbox({ db, tidings: { url: service.url, apiKey }, ...RELAY, notify: false, cleanupIntervalMs: 0 });
      try {
        await migrate(db);
        for (let first = 0; first < total; first += 1_000) {
          const n = Math.min(1_000, total - first);
          await db.transaction((tx) =>
            outbox.add(
              tx,
              Array.from({ length: n }, (_, k) => ({ topic: TOPIC, key: `ord_${first + k}`, payload: payload(first + k) })),
            ),
          );
        }
        await pool.query("analyze");
        await resetStatements(ctx, serviceDb.url);
        const { result: seconds, processes } = await measure(
          ctx,
          service.pid,
          () => total,
          async () => {
            const started = performance.now();
            await outbox.start();
            await until("the relay to send every row", async () => (await outbox.counts()).sent >= total, ctx.sizes.phaseTimeoutMs, 50);
            return (performance.now() - started) / 1000;
          },
        );
        statements = await topStatements(ctx, serviceDb.url);
        const counts = await outbox.counts();
        if (counts.failed > 0) throw new Error(`${counts.failed} outbox rows failed`);
        const accepted = await service.metric("tidings_messages_accepted_total");
        if (accepted < total) throw new Error(`the service accepted ${accepted} of ${total} messages`);
        return {
          system: "tidings",
          role: "tidings",
          figure: Math.round(total / seconds),
          unit: "rows/s",
          messages: total,
          seconds,
          processes,
          config:
            `${fmt(total)} committed rows in tidings_outbox (producer database on the same server), then Outbox.start(): ` +
            `relay batchSize ${RELAY.batchSize}, concurrency ${RELAY.concurrency}; timed until every row is marked sent; service defaults`,
        } satisfies SystemResult;
      } finally {
        await outbox.stop().catch(() => {});
        await pool.end();
      }
    }),
  );
  return {
    title: `outbox relay: ${fmt(total)} rows from a producer's outbox table to committed messages`,
    systems: [tidings],
    ratios: [],
    targets: [atLeast("≥ 20,000 rows/s", tidings.figure, 20_000, "rows/s"), serviceRssTarget(tidings)],
    notes: ["no peer is named for this workload"],
    ...(statements ? { statements } : {}),
  };
}
