import { sql, type BenchContext } from "../lib/context.ts";
import { payload, TOPIC } from "../lib/payload.ts";

/** Rows per statement: each chunk is its own transaction, so a million rows never sit in one. */
const CHUNK = 100_000;

/**
 * Bulk-loads `count` committed messages, each with one pending (unleased) delivery to the
 * subscription `subscription`, straight into the service's tables. The backlog workload
 * measures delivering from a backlog, not building it: through the API a million messages take
 * minutes on two cores (the publish workloads measure that path). Rows are what the API would
 * store for an admin-published message: same payload, content hash, committed now, due now.
 */
export async function seedBacklogSql(ctx: BenchContext, dbUrl: string, subscription: string, count: number): Promise<number> {
  const started = performance.now();
  const [sub] = await sql<{ id: number }>(dbUrl, "select id from subscriptions where name = $1", [subscription]);
  if (!sub) throw new Error(`no subscription ${subscription}`);
  const base = JSON.stringify(payload(0));
  for (let first = 0; first < count; first += CHUNK) {
    const last = Math.min(count, first + CHUNK) - 1;
    await sql(
      dbUrl,
      `with m as (
         insert into messages (id, app, topic, key, payload, headers, content_hash, state, deliver_at, committed_at)
         select 'seed-' || lpad(g::text, 10, '0'), null, $1, 'ord_' || g,
                p, '{}'::jsonb, sha256(convert_to(p::text, 'UTF8')), 'committed', now(), now()
           from generate_series($3::int, $4::int) g,
                lateral (select $2::jsonb || jsonb_build_object('orderId', 'ord_' || lpad(g::text, 10, '0')) as p) x
         returning id, day, deliver_at
       )
       insert into deliveries (message_id, message_day, subscription_id, next_attempt_at)
       select id, day, $5, deliver_at from m`,
      [TOPIC, base, first, last, sub.id],
    );
  }
  const seconds = (performance.now() - started) / 1000;
  ctx.log(`  bulk-loaded ${count.toLocaleString("en-US")} messages and deliveries in ${seconds.toFixed(1)} s`);
  return seconds;
}
