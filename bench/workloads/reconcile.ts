import { fromPg, Inbox, migrate, Reconciler, TidingsClient } from "@tidings/sdk";
import pg from "pg";
import { measure, sql, withDatabase, withTidings, type BenchContext } from "../lib/context.ts";
import { TOPIC } from "../lib/payload.ts";
import { atMost, fmt, type SystemResult, type WorkloadResult } from "../lib/report.ts";
import { BENCH_ADMIN_KEY } from "../lib/tidingsProcess.ts";
import { serviceRssTarget } from "./common.ts";

/** Rows per statement: each chunk its own transaction (and so its own place in the feed). */
const CHUNK = 100_000;
/** The reconciler's RSS must stay within this however many messages it compares. */
const RUNNER_RSS_LIMIT_MB = 256;

/**
 * Workload 12: one reconciliation run of a consumer over a window of `messages` committed
 * messages, its inbox holding all but one in a hundred: the feed read page by page (1,000 a
 * page), one inbox query per page, and the missing ones applied through the inbox. Both sides
 * are bulk-loaded with SQL.
 */
export async function reconcile(ctx: BenchContext): Promise<Omit<WorkloadResult, "name" | "startedAt" | "seconds" | "status">> {
  const { messages: total } = ctx.sizes.reconcile;
  const step = Math.max(1, Math.floor(total / 100));
  const missing = Math.ceil(total / step);
  ctx.log("  tidings ...");
  const tidings = await withTidings(ctx, "reconcile", (service, serviceDb) =>
    withDatabase(ctx, "reconcile_consumer", async (consumerDb) => {
      const seedStarted = performance.now();
      for (let first = 0; first < total; first += CHUNK) {
        await sql(
          serviceDb.url,
          `insert into messages (id, app, topic, key, payload, headers, content_hash, state, deliver_at, committed_at)
           select 'seed-' || lpad(g::text, 10, '0'), null, $1, 'acct-' || (g % 1000),
                  p, '{}'::jsonb, sha256(convert_to(p::text, 'UTF8')), 'committed', now(), now()
             from generate_series($2::int, $3::int) g,
                  lateral (select jsonb_build_object('account', 'acct-' || (g % 1000), 'amount', 1 + g % 500, 'note', repeat('x', 150)) as p) x`,
          [TOPIC, first, Math.min(total, first + CHUNK) - 1],
        );
      }
      await sql(serviceDb.url, "vacuum analyze messages");
      await service.call("POST", "/v1/subscriptions", {
        name: "ledger",
        topic: TOPIC,
        endpoint: { type: "http", url: "http://127.0.0.1:9/ledger" },
        enabled: false,
      });
      const pool = new pg.Pool({ connectionString: consumerDb.url, max: 4 });
      try {
        const db = fromPg(pool);
        await migrate(db);
        await db.query("CREATE TABLE postings (message_id text PRIMARY KEY, amount integer NOT NULL)");
        await db.query(
          `INSERT INTO tidings_inbox (consumer, id, topic, status, attempts, applied_at)
           SELECT 'ledger', 'seed-' || lpad(g::text, 10, '0'), $1, 'applied', 1, now() FROM generate_series(0, $2::int - 1) g WHERE g % $3 <> 0`,
          [TOPIC, total, step],
        );
        await db.query("VACUUM ANALYZE tidings_inbox");
        ctx.log(`  bulk-loaded ${fmt(total)} messages and ${fmt(total - missing)} inbox records in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s`);
        const reconciler = new Reconciler({
          client: new TidingsClient({ url: service.url, apiKey: BENCH_ADMIN_KEY }),
          db,
          consumer: {
            subscription: "ledger",
            inbox: new Inbox({ consumer: "ledger", cleanupIntervalMs: 0 }),
            handle: async (message, tx) => {
              await tx.query("INSERT INTO postings (message_id, amount) VALUES ($1, $2)", [message.id, (message.payload as { amount: number }).amount]);
            },
          },
          name: "bench",
        });
        const { result, processes } = await measure(
          ctx,
          service.pid,
          (r) => r.report.counts.checked,
          async () => {
            const started = performance.now();
            const report = await reconciler.run({ since: new Date(Date.now() - 3_600_000) });
            return { report, seconds: (performance.now() - started) / 1000 };
          },
        );
        const c = result.report.counts;
        if (c.checked !== total || c.repaired !== missing) throw new Error(`the run checked ${c.checked} of ${total} and applied ${c.repaired} of ${missing}`);
        return {
          system: "tidings",
          role: "tidings",
          figure: Math.round(c.checked / result.seconds),
          unit: "msg/s",
          messages: c.checked,
          seconds: result.seconds,
          processes,
          config: `Reconciler.run() of a consumer: GET /v1/feed?subscription=… pages of 1,000, one inbox query a page (pg, pool 4), ${fmt(missing)} missing applied through inbox.handle(); admin key`,
        } satisfies SystemResult;
      } finally {
        await pool.end();
      }
    }),
  );
  const runner = tidings.processes.find((p) => p.name === "runner");
  return {
    title: `one reconciliation run over ${fmt(total)} committed messages, 1 in ${fmt(step)} missing from the inbox`,
    systems: [tidings],
    ratios: [],
    targets: [serviceRssTarget(tidings), atMost(`reconciler RSS ≤ ${RUNNER_RSS_LIMIT_MB} MB`, runner?.peakRssMb ?? NaN, RUNNER_RSS_LIMIT_MB, "MB", 0)],
    notes: [
      "Messages and inbox records are bulk-loaded with SQL; the run compares them page by page, so its memory is one page whatever the window holds (the runner's peak RSS shows it).",
    ],
  };
}
