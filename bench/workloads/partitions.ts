import pg from "pg";
import { measure, sql, withTidings, type BenchContext } from "../lib/context.ts";
import { closedLoop, percentile } from "../lib/load.ts";
import { Producer } from "../lib/producer.ts";
import { Receiver } from "../lib/receiver.ts";
import { fmt, type SystemResult, type WorkloadResult } from "../lib/report.ts";
import { payload, TOPIC } from "../lib/payload.ts";
import type { TidingsProcess } from "../lib/tidingsProcess.ts";
import { dropFinishedDays } from "../../packages/server/src/store/retention.ts";
import { serviceRssTarget } from "./common.ts";

/** Past days the retained messages are spread over: the oldest is past a 7-day retention. */
const DAYS = 8;
const RETENTION_MS = 7 * 86_400_000;
/** Rows per seeding statement (each its own transaction). */
const CHUNK = 250_000;
/** Console searches timed per kind (sequential: the latency of one person's page). */
const SEARCHES = 20;
/** Messages per publish request and requests at a time, as in publish-batch. */
const BATCH = 1_000;
const CONCURRENCY = 4;

/**
 * Loads `count` finished messages over the DAYS days before today, each committed with one
 * delivered delivery (to `subscriptionId`) and one attempt, in their days' partitions, by SQL:
 * what the service would have kept of a busy week. Returns the seconds it took.
 */
async function seedRetained(ctx: BenchContext, dbUrl: string, subscriptionId: number, count: number): Promise<number> {
  const started = performance.now();
  const perDay = Math.ceil(count / DAYS);
  await sql(dbUrl, "select tidings_create_day_partitions((now() at time zone 'utc')::date - $1::int, (now() at time zone 'utc')::date - 1)", [DAYS]);
  for (let d = 0; d < DAYS; d++) {
    const dayFirst = d * perDay;
    const dayLast = Math.min(count, dayFirst + perDay) - 1;
    for (let first = dayFirst; first <= dayLast; first += CHUNK) {
      const last = Math.min(dayLast, first + CHUNK - 1);
      await sql(
        dbUrl,
        `with m as (
           insert into messages (id, topic, key, payload, state, deliver_at, created_at, committed_at, day)
           select 'old-' || g, $1, 'ord_' || g, $2::json, 'committed', t, t, t, $3::date
             from generate_series($4::int, $5::int) g,
                  lateral (select ($3::date::timestamp at time zone 'utc') + make_interval(secs => (g - $6::int) * 86000.0 / $7::int) as t) x
           returning id, day, created_at
         ), d as (
           insert into deliveries (message_id, message_day, subscription_id, state, attempts, next_attempt_at, first_attempt_at,
                                   last_attempt_at, last_status, delivered_at, created_at)
           select id, day, $8, 'delivered', 1, created_at, created_at, created_at, 200, created_at, created_at from m
           returning id, message_id, message_day, subscription_id, created_at
         )
         insert into attempts (delivery_id, message_id, message_day, subscription_id, attempt, started_at, latency_ms, status_code, outcome)
         select id, message_id, message_day, subscription_id, 1, created_at, 3, 200, 'delivered' from d`,
        [TOPIC, JSON.stringify(payload(0)), ymd(DAYS - d), first, last, dayFirst, perDay, subscriptionId],
      );
    }
  }
  await sql(dbUrl, "analyze");
  const seconds = (performance.now() - started) / 1000;
  ctx.log(`  seeded ${fmt(count)} retained messages (with deliveries and attempts) in ${seconds.toFixed(1)} s`);
  return seconds;
}

const ymd = (daysAgo: number) => new Date(Date.now() - daysAgo * 86_400_000).toISOString().slice(0, 10);

/** The p50 in ms of SEARCHES sequential GETs of `path`. */
async function searchMs(service: TidingsProcess, path: (i: number) => string): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < SEARCHES; i++) {
    const started = performance.now();
    await service.call("GET", path(i));
    times.push(performance.now() - started);
  }
  return (
    Math.round(
      percentile(
        times.sort((a, b) => a - b),
        50,
      ) * 10,
    ) / 10
  );
}

/**
 * One table size: seed `retained`, then publish (batches, ids made by the service; then ids of
 * the producer's own, which are checked against the older days), deliver what was published,
 * search the console's message list by topic and key, and one retention pass, dropping a day.
 */
async function runSize(ctx: BenchContext, label: string, retained: number): Promise<SystemResult> {
  const publish = ctx.sizes.partitions.publish;
  // The service's own sweep would drop the old day first: the bench runs the pass itself.
  const env = { ...ctx.serviceEnv, TIDINGS_RETENTION_INTERVAL: "1h" };
  return withTidings({ ...ctx, serviceEnv: env }, `partitions_${label}`, async (service, db) => {
    const receiver = await new Receiver().start();
    const apiKey = await service.createApp("bench");
    const producer = new Producer(service.url, apiKey, CONCURRENCY);
    try {
      await service.createSubscription("receiver", TOPIC, receiver.url, false);
      const [sub] = await sql<{ id: number }>(db.url, "select id from subscriptions where name = 'receiver'");
      const seedSeconds = await seedRetained(ctx, db.url, sub!.id, retained);
      const requests = Math.ceil(publish / BATCH);
      const send = (idPrefix?: string) => () =>
        closedLoop(requests, CONCURRENCY, (b) => producer.publishBatch(b * BATCH, Math.min(BATCH, publish - b * BATCH), { idPrefix })).then(() => 0);
      const timed = async (fn: () => Promise<number>) => {
        const started = performance.now();
        const { processes } = await measure(ctx, service.pid, () => publish, fn);
        return { seconds: (performance.now() - started) / 1000, processes };
      };
      const generated = await timed(send());
      const own = await timed(send("new-"));
      const deliver = await timed(async () => {
        await service.setSubscriptionEnabled("receiver", true);
        await receiver.waitFor(2 * publish, ctx.sizes.phaseTimeoutMs);
        return 0;
      });
      const byKey = await searchMs(service, (i) => `/v1/messages?topic=${TOPIC}&key=ord_${(i * 7919) % retained}&limit=50`);
      const byTopic = await searchMs(service, () => `/v1/messages?topic=${TOPIC}&limit=50`);
      const pool = new pg.Pool({ connectionString: db.url, max: 1 });
      let pass: Awaited<ReturnType<typeof dropFinishedDays>>;
      const passStarted = performance.now();
      try {
        pass = await dropFinishedDays(pool, RETENTION_MS);
      } finally {
        await pool.end();
      }
      const passMs = Math.round(performance.now() - passStarted);
      if (pass.dropped.length !== 1) throw new Error(`the retention pass dropped ${JSON.stringify(pass)}, not the one old day`);
      const rate = (seconds: number) => Math.round(publish / seconds);
      const extra = {
        publishOwnIdsPerSecond: rate(own.seconds),
        deliverPerSecond: Math.round((2 * publish) / deliver.seconds),
        searchTopicKeyP50Ms: byKey,
        searchTopicP50Ms: byTopic,
        retentionPassMs: passMs,
        retentionLockedMs: pass.lockedMs,
        droppedMessages: Math.ceil(retained / DAYS),
        seedSeconds: Math.round(seedSeconds),
      };
      ctx.log(
        `  publish ${fmt(rate(generated.seconds))} msg/s; ${Object.entries(extra)
          .map(([k, v]) => `${k} ${fmt(v, v < 100 ? 1 : 0)}`)
          .join("; ")}`,
      );
      return {
        system: `tidings, ${fmt(retained)} retained`,
        role: "tidings",
        figure: rate(generated.seconds),
        unit: "msg/s",
        messages: publish,
        seconds: generated.seconds,
        processes: generated.processes,
        config: `${fmt(retained)} finished messages (with a delivery and an attempt each) over the ${DAYS} days before today; POST /v1/messages/batch of ${BATCH} × ${CONCURRENCY}, service-made ids, subscription paused; service defaults`,
        extra,
      } satisfies SystemResult;
    } finally {
      await producer.close();
      await receiver.stop();
    }
  });
}

/** Workload 14: the hot paths and a retention pass over a large retained history, against a small one. */
export async function partitions(ctx: BenchContext): Promise<Omit<WorkloadResult, "name" | "startedAt" | "seconds" | "status">> {
  const { small } = ctx.sizes.partitions;
  // BENCH_PARTITIONS_RETAINED: a smaller (or larger) history than the size's, where seeding
  // 10,000,000 messages with their rows takes longer than there is time for.
  const retained = Number(process.env.BENCH_PARTITIONS_RETAINED ?? ctx.sizes.partitions.retained);
  ctx.log(`  tidings, ${fmt(retained)} retained ...`);
  const large = await runSize(ctx, "large", retained);
  ctx.log(`  tidings, ${fmt(small)} retained ...`);
  const little = await runSize(ctx, "small", small);
  const ratio = (key: string) => Math.round(((large.extra![key] as number) / (little.extra![key] as number)) * 100) / 100;
  return {
    title: `publish, deliver, search and a retention pass with ${fmt(retained)} messages retained, against ${fmt(small)}`,
    systems: [large, little],
    ratios: [
      { label: "publish large/small", value: Math.round((large.figure / little.figure) * 100) / 100 },
      { label: "publish own ids large/small", value: ratio("publishOwnIdsPerSecond") },
      { label: "deliver large/small", value: ratio("deliverPerSecond") },
      { label: "search topic+key large/small", value: ratio("searchTopicKeyP50Ms") },
    ],
    targets: [serviceRssTarget(large)],
    notes: [],
  };
}
