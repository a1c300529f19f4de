import { until } from "../lib/load.ts";
import { measure, sql, withTidings, type BenchContext } from "../lib/context.ts";
import { payload, TOPIC } from "../lib/payload.ts";
import { fmt, type SystemResult, type WorkloadResult } from "../lib/report.ts";
import type { TidingsProcess } from "../lib/tidingsProcess.ts";
import { serviceRssTarget } from "./common.ts";

/** Rows per statement: each chunk its own transaction (and so its own commit_tx). */
const CHUNK = 10_000;
/** The feed's largest page. */
const PAGE = 5000;

/**
 * Bulk-loads `count` committed messages of TOPIC without deliveries (no subscription), as the
 * API would store an admin's messages, committed an hour ago (the topic's past, before a
 * reconciliation's window); each statement's transaction gives its rows their place in the feed
 * (commit_tx's default).
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
              p, '{}'::json, sha256(convert_to(p::text, 'UTF8')), 'committed', now(), now() - interval '1 hour'
         from generate_series($3::int, $4::int) g,
              lateral (select ($2::jsonb || jsonb_build_object('orderId', 'ord_' || lpad(g::text, 10, '0')))::json as p) x`,
      [TOPIC, base, first, last],
    );
  }
  return (performance.now() - started) / 1000;
}

/** Everything the feed holds of TOPIC for `query`, following `next` until `more` is false. */
async function readFeed(service: TidingsProcess, query: string): Promise<{ count: number; pages: number }> {
  let after: string | undefined;
  let count = 0;
  let pages = 0;
  for (;;) {
    const page = await service.call<{ items: unknown[]; next: string; more: boolean }>(
      "GET",
      `/v1/feed?topic=${encodeURIComponent(TOPIC)}&limit=${PAGE}${query}${after ? `&after=${after}` : ""}`,
    );
    count += page.items.length;
    pages++;
    after = page.next;
    if (!page.more) return { count, pages };
  }
}

/**
 * Workload 11: one reader pulls a topic's committed messages through `GET /v1/feed` (pages of
 * 5,000, following `next` until `more` is false), as a reconciliation run or a pulling consumer
 * does: messages read per second, JSON parsed by the reader. Then a short window at the end of
 * the topic (`since`, no cursor), as a scheduled reconciliation reads the last hour: the time to
 * read it, which should not grow with the topic.
 */
export async function feed(ctx: BenchContext): Promise<Omit<WorkloadResult, "name" | "startedAt" | "seconds" | "status">> {
  const { messages: total, window } = ctx.sizes.feed;
  ctx.log("  tidings ...");
  const tidings = await withTidings(ctx, "feed", async (service, db) => {
    const seedSeconds = await seedFeed(db.url, total);
    ctx.log(`  bulk-loaded ${fmt(total)} messages in ${seedSeconds.toFixed(1)} s`);
    await sql(db.url, "vacuum analyze messages");
    // The feed serves a message once every transaction older than its commit has ended, on the
    // whole server: wait until the seed is past that line (other work on a shared server may hold it).
    const served = (what: string) =>
      until(
        `${what} served by the feed`,
        async () =>
          (await sql<{ ok: boolean }>(db.url, "select coalesce(max(commit_tx) < pg_snapshot_xmin(pg_current_snapshot()), true) as ok from messages"))[0]!.ok,
        ctx.sizes.phaseTimeoutMs,
        50,
      );
    await served("the seed");
    let pages = 0;
    const { result, processes } = await measure(
      ctx,
      service.pid,
      (r) => r.count,
      async () => {
        const started = performance.now();
        const read = await readFeed(service, "");
        pages = read.pages;
        return { count: read.count, seconds: (performance.now() - started) / 1000 };
      },
    );
    if (result.count !== total) throw new Error(`the feed gave ${result.count} messages of ${total}`);
    // The window: messages committed now, after the topic's hour-old past.
    const since = (await sql<{ at: Date }>(db.url, "select clock_timestamp() as at"))[0]!.at.toISOString();
    await sql(
      db.url,
      `insert into messages (id, app, topic, payload, headers, content_hash, state, deliver_at, committed_at)
       select 'window-' || g, null, $1, '{}', '{}', sha256(convert_to(g::text, 'UTF8')), 'committed', now(), now() from generate_series(1, $2::int) g`,
      [TOPIC, window],
    );
    await served("the window");
    const windowStarted = performance.now();
    const windowRead = await readFeed(service, `&since=${encodeURIComponent(since)}`);
    const windowMs = performance.now() - windowStarted;
    if (windowRead.count !== window) throw new Error(`the feed gave ${windowRead.count} messages of the window's ${window}`);
    return {
      system: "tidings",
      role: "tidings",
      figure: Math.round(result.count / result.seconds),
      unit: "msg/s",
      messages: result.count,
      seconds: result.seconds,
      processes,
      config: `GET /v1/feed?topic=…&limit=${PAGE} following next (${fmt(pages)} pages), admin key, payloads of ~230 bytes; one reader`,
      extra: { windowMessages: window, windowMs: Math.round(windowMs * 10) / 10, windowPages: windowRead.pages },
    } satisfies SystemResult;
  });
  return {
    title: `one reader, ${fmt(total)} committed messages through the feed`,
    systems: [tidings],
    ratios: [],
    targets: [serviceRssTarget(tidings)],
    notes: [
      "The messages are bulk-loaded with SQL (the publish workloads measure that path); no peer has a commit-ordered feed to compare with.",
      `A window of ${fmt(window)} messages committed after the topic's ${fmt(total)}, read with since and no cursor (a reconciliation's last hour): ${tidings.extra!.windowMs} ms, ${tidings.extra!.windowPages} pages.`,
    ],
  };
}
