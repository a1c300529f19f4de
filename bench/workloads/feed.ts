import { measure, sql, withTidings, type BenchContext } from "../lib/context.ts";
import { payload, TOPIC } from "../lib/payload.ts";
import { fmt, type SystemResult, type WorkloadResult } from "../lib/report.ts";
import { serviceRssTarget } from "./common.ts";

/** Rows per statement: each chunk its own transaction (and so its own commit_tx). */
const CHUNK = 100_000;
/** The feed's largest page. */
const PAGE = 5000;

/**
 * Bulk-loads `count` committed messages of TOPIC without deliveries (no subscription), as the
 * API would store an admin's messages; each statement's transaction gives its rows their place
 * in the feed (commit_tx's default).
 */
async function seedFeed(dbUrl: string, count: number): Promise<number> {
  const started = performance.now();
  const base = JSON.stringify(payload(0));
  for (let first = 0; first < count; first += CHUNK) {
    const last = Math.min(count, first + CHUNK) - 1;
    await sql(
      dbUrl,
      `insert into messages (id, app, topic, key, payload, headers, content_hash, state, deliver_at, committed_at)
       select 'seed-' || lpad(g::text, 10, '0'), null, $1, 'ord_' || g,
              p, '{}'::json, sha256(convert_to(p::text, 'UTF8')), 'committed', now(), now()
         from generate_series($3::int, $4::int) g,
              lateral (select ($2::jsonb || jsonb_build_object('orderId', 'ord_' || lpad(g::text, 10, '0')))::json as p) x`,
      [TOPIC, base, first, last],
    );
  }
  return (performance.now() - started) / 1000;
}

/**
 * Workload 11: one reader pulls a topic's committed messages through `GET /v1/feed` (pages of
 * 5,000, following `next` until `more` is false), as a reconciliation run or a pulling consumer
 * does: messages read per second, JSON parsed by the reader.
 */
export async function feed(ctx: BenchContext): Promise<Omit<WorkloadResult, "name" | "startedAt" | "seconds" | "status">> {
  const { messages: total } = ctx.sizes.feed;
  ctx.log("  tidings ...");
  const tidings = await withTidings(ctx, "feed", async (service, db) => {
    const seedSeconds = await seedFeed(db.url, total);
    ctx.log(`  bulk-loaded ${fmt(total)} messages in ${seedSeconds.toFixed(1)} s`);
    await sql(db.url, "vacuum analyze messages");
    let pages = 0;
    const { result, processes } = await measure(
      ctx,
      service.pid,
      (r) => r.count,
      async () => {
        const started = performance.now();
        let after: string | undefined;
        let count = 0;
        for (;;) {
          const page = await service.call<{ items: unknown[]; next: string; more: boolean }>(
            "GET",
            `/v1/feed?topic=${encodeURIComponent(TOPIC)}&limit=${PAGE}${after ? `&after=${after}` : ""}`,
          );
          count += page.items.length;
          pages++;
          after = page.next;
          if (!page.more) break;
        }
        return { count, seconds: (performance.now() - started) / 1000 };
      },
    );
    if (result.count !== total) throw new Error(`the feed gave ${result.count} messages of ${total}`);
    return {
      system: "tidings",
      role: "tidings",
      figure: Math.round(result.count / result.seconds),
      unit: "msg/s",
      messages: result.count,
      seconds: result.seconds,
      processes,
      config: `GET /v1/feed?topic=…&limit=${PAGE} following next (${fmt(pages)} pages), admin key, payloads of ~230 bytes; one reader`,
    } satisfies SystemResult;
  });
  return {
    title: `one reader, ${fmt(total)} committed messages through the feed`,
    systems: [tidings],
    ratios: [],
    targets: [serviceRssTarget(tidings)],
    notes: ["The messages are bulk-loaded with SQL (the publish workloads measure that path); no peer has a commit-ordered feed to compare with."],
  };
}
