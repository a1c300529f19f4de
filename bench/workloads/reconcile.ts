import { fromPg, Inbox, migrate, Reconciler, TidingsClient, type Executor } from "@tidings/sdk";
import pg from "pg";
import { measure, sql, withDatabase, withTidings, type BenchContext } from "../lib/context.ts";
import { TOPIC } from "../lib/payload.ts";
import { atMost, fmt, type SystemResult, type TargetCheck, type WorkloadResult } from "../lib/report.ts";
import { BENCH_ADMIN_KEY, type TidingsProcess } from "../lib/tidingsProcess.ts";
import { serviceRssTarget } from "./common.ts";

/** Rows per statement: each chunk its own transaction (and so its own place in the feed). */
const CHUNK = 100_000;
/** The reconciler's RSS must stay within this however many messages it compares. */
const RUNNER_RSS_LIMIT_MB = 256;

/**
 * Bulk-loads the committed messages `seed-<g>` of `app` (null: the admin's own) for g in
 * [0, total), but for each multiple of `skipEvery` when given; CHUNK rows a statement.
 */
async function seedMessages(url: string, app: string | null, total: number, skipEvery: number | null = null): Promise<void> {
  const prefix = app === null ? "" : `${app}/`;
  for (let first = 0; first < total; first += CHUNK) {
    await sql(
      url,
      `insert into messages (id, app, topic, key, payload, headers, content_hash, state, deliver_at, committed_at)
       select $4 || 'seed-' || lpad(g::text, 10, '0'), $5, $1, 'acct-' || (g % 1000),
              p, '{}'::jsonb, sha256(convert_to(p::text, 'UTF8')), 'committed', now(), now()
         from generate_series($2::int, $3::int) g,
              lateral (select jsonb_build_object('account', 'acct-' || (g % 1000), 'amount', 1 + g % 500, 'note', repeat('x', 150)) as p) x
        where $6::int is null or g % $6 <> 0`,
      [TOPIC, first, Math.min(total, first + CHUNK) - 1, prefix, app, skipEvery],
    );
  }
  await sql(url, "vacuum analyze messages");
}

/** One run over the last hour, measured. */
const timedRun = (ctx: BenchContext, service: TidingsProcess, reconciler: Reconciler) =>
  measure(
    ctx,
    service.pid,
    (r) => r.report.counts.checked,
    async () => {
      const started = performance.now();
      const report = await reconciler.run({ since: new Date(Date.now() - 3_600_000) });
      return { report, seconds: (performance.now() - started) / 1000 };
    },
  );

/**
 * Workload 12: one reconciliation run of a consumer over a window of `messages` committed
 * messages, its inbox holding all but one in a hundred: the feed read page by page (1,000 a
 * page), one inbox query per page, and the missing ones applied through the inbox. Then one run
 * of a producer over as many outbox rows marked sent, the service holding all but one in a
 * hundred: the outbox read page by page (1,000 a page), one look-up at the service per page
 * (`POST /v1/messages/lookup`), the lost ones put back to be sent. Both sides are bulk-loaded
 * with SQL.
 */
export async function reconcile(ctx: BenchContext): Promise<Omit<WorkloadResult, "name" | "startedAt" | "seconds" | "status">> {
  const { messages: total } = ctx.sizes.reconcile;
  const step = Math.max(1, Math.floor(total / 100));
  const missing = Math.ceil(total / step);
  ctx.log("  tidings ...");
  const tidings = await withTidings(ctx, "reconcile", (service, serviceDb) =>
    withDatabase(ctx, "reconcile_consumer", async (consumerDb) => {
      const seedStarted = performance.now();
      await seedMessages(serviceDb.url, null, total);
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
        const { result, processes } = await timedRun(ctx, service, reconciler);
        const c = result.report.counts;
        if (c.checked !== total || c.repaired !== missing) throw new Error(`the run checked ${c.checked} of ${total} and applied ${c.repaired} of ${missing}`);
        const consumer: SystemResult = {
          system: "tidings",
          role: "tidings",
          figure: Math.round(c.checked / result.seconds),
          unit: "msg/s",
          messages: c.checked,
          seconds: result.seconds,
          processes,
          config: `Reconciler.run() of a consumer: GET /v1/feed?subscription=… pages of 1,000, one inbox query a page (pg, pool 4), ${fmt(missing)} missing applied through inbox.handle(); admin key`,
        };
        return [consumer, await producer(ctx, service, serviceDb.url, db, total, step)];
      } finally {
        await pool.end();
      }
    }),
  );
  // Each run's: the service's memory, and the reconciler's (the runner's).
  const targets = (system: SystemResult, run: string): TargetCheck[] => {
    const service = serviceRssTarget(system);
    const runner = system.processes.find((p) => p.name === "runner")?.peakRssMb ?? NaN;
    return [
      { ...service, target: `${run} run: ${service.target}` },
      atMost(`${run} reconciler RSS ≤ ${RUNNER_RSS_LIMIT_MB} MB`, runner, RUNNER_RSS_LIMIT_MB, "MB", 0),
    ];
  };
  return {
    title: `one reconciliation run over ${fmt(total)} committed messages, 1 in ${fmt(step)} missing from the inbox; one over ${fmt(total)} outbox rows marked sent, 1 in ${fmt(step)} unknown to the service`,
    systems: tidings,
    ratios: [],
    targets: [...targets(tidings[0]!, "consumer"), ...targets(tidings[1]!, "producer")],
    notes: [
      "Messages, inbox records and outbox rows are bulk-loaded with SQL; each run compares them page by page, so its memory is a few pages whatever the window holds (the runner's peak RSS shows it).",
      "The producer's figure is outbox rows checked per second: one POST /v1/messages/lookup of 1,000 ids per page, 4 in flight.",
    ],
  };
}

/**
 * The producer's run: `total` outbox rows of an app marked sent, the service holding the
 * messages of all but one in `step` (bulk-loaded after the consumer's run, in the same service).
 */
async function producer(ctx: BenchContext, service: TidingsProcess, serviceUrl: string, db: Executor, total: number, step: number): Promise<SystemResult> {
  const seedStarted = performance.now();
  const { apiKey } = (await service.call("POST", "/v1/apps", { name: "shop" })) as { apiKey: string };
  await seedMessages(serviceUrl, "shop", total, step);
  await db.query(
    `INSERT INTO tidings_outbox (id, topic, payload, status, attempts, sent_at)
     SELECT 'seed-' || lpad(g::text, 10, '0'), $1, '{}', 'sent', 1, now() FROM generate_series(0, $2::int - 1) g`,
    [TOPIC, total],
  );
  await db.query("VACUUM ANALYZE tidings_outbox");
  const lost = Math.ceil(total / step);
  ctx.log(`  bulk-loaded ${fmt(total - lost)} messages of an app and ${fmt(total)} outbox rows in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s`);
  const reconciler = new Reconciler({
    client: new TidingsClient({ url: service.url, apiKey }),
    db,
    producer: { topic: TOPIC },
    name: "bench",
  });
  const { result, processes } = await timedRun(ctx, service, reconciler);
  const c = result.report.counts;
  if (c.checked !== total || c.repaired !== lost) throw new Error(`the producer run checked ${c.checked} of ${total} and put back ${c.repaired} of ${lost}`);
  return {
    system: "tidings producer",
    role: "tidings",
    figure: Math.round(c.checked / result.seconds),
    unit: "rows/s",
    messages: c.checked,
    seconds: result.seconds,
    processes,
    config: `Reconciler.run() of a producer: outbox pages of 1,000 sent rows (pg, pool 4), one POST /v1/messages/lookup a page (4 in flight), ${fmt(lost)} unknown put back to pending; an app's key`,
  };
}
