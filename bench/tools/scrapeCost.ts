// What a /metrics scrape costs on a large database: fills a fresh database with 1,000,000
// deliveries (4 subscriptions; 200,000 of them pending, nearly all in one subscription, one
// subscription with none; 20,000 dead with their open alert; 100 messages in doubt; 50 relays),
// starts the service in this process and times GET /metrics. Then the same with the index
// deliveries_subscription as it was before 0022 (without the id), to show what the id buys.
//   node --import tsx bench/tools/scrapeCost.ts [--deliveries N] [--scrapes N]
import { parseArgs } from "node:util";
import pg from "pg";
import { createTestDatabase } from "@tidings/testkit/db";
import { startTestService } from "@tidings/testkit/service";
import { countInDoubt, countOpenAlertsByCondition, oldestPendingBySubscription } from "../../packages/server/src/store/monitoring.ts";
import { countPending } from "../../packages/server/src/store/operatorActions.ts";
import { listRelays } from "../../packages/server/src/store/relays.ts";

const { values } = parseArgs({ options: { deliveries: { type: "string", default: "1000000" }, scrapes: { type: "string", default: "50" } } });
const total = Number(values.deliveries);
const scrapes = Number(values.scrapes);

const database = await createTestDatabase("scrape_cost");
const db = new pg.Pool({ connectionString: database.url, max: 2 });
try {
  const started = Date.now();
  await db.query(`insert into apps (name, key_hash, secret) values ('shop', '\\x00', 'whsec_x')`);
  for (const [name, topic] of [
    ["busy", "t"],
    ["calm", "t"],
    ["idle", "u"],
    ["archive", "t"],
  ]) {
    await db.query(
      `insert into subscriptions (name, topic, endpoint, secret, retry, enabled) values ($1, $2, '{"type":"http","url":"http://127.0.0.1:9/"}', 'whsec_x', '{"schedule":[3600000],"maxAttempts":2,"windowMs":null}', false)`,
      [name, topic],
    );
  }
  const messages = Math.ceil(total / 3);
  await db.query(
    `insert into messages (id, app, topic, payload, state, committed_at, created_at)
     select 'shop/m-' || i, 'shop', 't', '{}', 'committed', now(), now() - interval '1 day' + i * interval '50 ms' from generate_series(1, $1) i`,
    [messages],
  );
  // Three deliveries per message (busy, calm, archive): busy keeps 196,000 pending, calm 4,000,
  // 20,000 of archive are dead; the rest delivered. idle has none.
  await db.query(
    `insert into deliveries (message_id, message_day, subscription_id, state, next_attempt_at, delivered_at, dead_at, created_at)
     select id, day, subscription_id, state, now() + interval '1 hour',
            case when state = 'delivered' then now() end, case when state = 'dead' then now() end, created_at
       from (select m.id, m.day, s.id as subscription_id, m.created_at,
                    case when s.name = 'busy' and m.seq % 5 <> 0 and m.seq > $1 - 245000 then 'pending'
                         when s.name = 'calm' and m.seq > $1 - 4000 then 'pending'
                         when s.name = 'archive' and m.seq <= 20000 then 'dead'
                         else 'delivered' end::delivery_state as state
               from messages m cross join subscriptions s where s.name in ('busy', 'calm', 'archive') and m.seq <= $1) x`,
    [messages],
  );
  await db.query(
    `insert into alerts (condition, subject, subscription_id, detail, state, count, first_at, last_at, link, next_step)
     select 'delivery_dead', 'subscription ' || s.name, s.id, 'dead', 'open', count(*), now(), now(), '#/dead-letters', 're-send'
       from deliveries d join subscriptions s on s.id = d.subscription_id where d.state = 'dead' group by s.id, s.name`,
  );
  await db.query(
    `insert into messages (id, app, topic, payload, state, in_doubt_at) select 'shop/p-' || i, 'shop', 't', '{}', 'prepared', now() from generate_series(1, 100) i`,
  );
  await db.query(
    `insert into relays (app, name, pending, failed, oldest_pending_seconds, interval_ms) select 'shop', 'host-' || i || ':1', i, i % 3, i, 10000 from generate_series(1, 50) i`,
  );
  await db.query("vacuum analyze");
  const counts = (await db.query("select state::text, count(*)::int as n from deliveries group by 1 order by 1")).rows;
  console.log(`filled in ${((Date.now() - started) / 1000).toFixed(0)} s: ${counts.map((r) => `${r.n} ${r.state}`).join(", ")}`);

  if (process.env.EXPLAIN) {
    const plan = await db.query(`explain (analyze, buffers) ${process.env.EXPLAIN}`);
    console.log(plan.rows.map((r) => r["QUERY PLAN"]).join("\n"));
  }
  const service = await startTestService(database.url);
  try {
    const time = async (label: string) => {
      await fetch(`${service.url}/metrics`).then((r) => r.text()); // warm: plans cached, pages in memory
      const ms: number[] = [];
      for (let i = 0; i < scrapes; i++) {
        const t0 = performance.now();
        const text = await (await fetch(`${service.url}/metrics`)).text();
        ms.push(performance.now() - t0);
        if (!text.includes("tidings_oldest_pending_seconds")) throw new Error("no gauge in the scrape");
      }
      ms.sort((a, b) => a - b);
      const at = (q: number) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))]!.toFixed(1);
      console.log(`${label}: GET /metrics p50 ${at(0.5)} ms, p95 ${at(0.95)} ms, max ${at(1)} ms (${scrapes} scrapes)`);
    };
    await time("with migration 0022's indexes");
    // Each question alone, to see which costs what.
    const each: Array<[string, () => Promise<unknown>]> = [
      ["deliveries pending (tidings_deliveries_pending)", () => countPending(db)],
      ["open alerts by condition", () => countOpenAlertsByCondition(db)],
      ["messages in doubt", () => countInDoubt(db)],
      ["oldest pending per subscription", () => oldestPendingBySubscription(db)],
      ["relays", () => listRelays(db, 60_000)],
    ];
    for (const [label, run] of each) {
      await run();
      const t0 = performance.now();
      for (let i = 0; i < 20; i++) await run();
      console.log(`  ${label}: ${((performance.now() - t0) / 20).toFixed(1)} ms`);
    }
    await db.query("drop index deliveries_subscription");
    await db.query("create index deliveries_subscription on deliveries (subscription_id, state)");
    await time("deliveries_subscription without the id");
  } finally {
    await service.close();
  }
} finally {
  await db.end();
  await database.drop();
}
