// What migration 0027 costs on a populated database: fills a fresh database at migration 0026
// with N messages (a sixth of them prepared or rolled back), a delivery for each committed one
// (a tenth pending, a tenth dead, the rest delivered), an attempt per delivery and a check per
// prepared or rolled back message, then times 0027 (which attaches the tables as they are, and
// builds the indexes of the new keys) and reports its time per million messages.
//   node --import tsx bench/tools/partitionMigration.ts [--messages N]
import { parseArgs } from "node:util";
import pg from "pg";
import { createTestDatabase } from "@tidings/testkit/db";
import { migrate } from "../../packages/server/src/store/migrate.ts";

const { values } = parseArgs({ options: { messages: { type: "string", default: "1000000" } } });
const total = Number(values.messages);
const CHUNK = 250_000;

const database = await createTestDatabase("partition_migration", { empty: true });
const db = new pg.Pool({ connectionString: database.url, max: 1 });
try {
  await migrate(db, { upTo: 26 });
  const seeding = performance.now();
  await db.query(`insert into subscriptions (name, topic, endpoint, secret, retry)
                  values ('s', 't', '{"type":"http","url":"http://127.0.0.1:9/"}', 'whsec_x', '{"schedule":[1000],"maxAttempts":3,"windowMs":null}')`);
  for (let first = 1; first <= total; first += CHUNK) {
    const last = Math.min(total, first + CHUNK - 1);
    await db.query(
      `with m as (
         insert into messages (id, topic, key, payload, state, created_at, committed_at, rolled_back_at, next_check_at)
         select 'm-' || g, 't', 'k' || (g % 1000), json_build_object('n', g),
                (case g % 12 when 4 then 'prepared' when 5 then 'rolled_back' else 'committed' end)::message_state,
                now() - interval '1 day', case when g % 12 not in (4, 5) then now() - interval '1 day' end,
                case when g % 12 = 5 then now() end, case when g % 12 = 4 then now() + interval '1 hour' end
           from generate_series($1::int, $2::int) g
         returning id, state, seq
       ), c as (
         insert into checks (message_id, check_no, started_at, latency_ms, answer)
         select id, 1, now(), 2, 'unknown' from m where state <> 'committed'
       ), d as (
         insert into deliveries (message_id, subscription_id, state, next_attempt_at, delivered_at, dead_at)
         select id, 1, (case seq % 10 when 1 then 'pending' when 2 then 'dead' else 'delivered' end)::delivery_state, now(),
                case when seq % 10 not in (1, 2) then now() end, case when seq % 10 = 2 then now() end
           from m where state = 'committed'
         returning id, message_id, subscription_id, state
       )
       insert into attempts (delivery_id, message_id, subscription_id, attempt, started_at, latency_ms, outcome)
       select id, message_id, subscription_id, 1, now(), 3, case when state = 'dead' then 'dead' else 'delivered' end from d`,
      [first, last],
    );
  }
  await db.query("vacuum analyze");
  const { rows } = await db.query(
    `select (select count(*) from messages)::int as messages, (select count(*) from deliveries)::int as deliveries,
            (select count(*) from attempts)::int as attempts, pg_size_pretty(pg_database_size(current_database())) as size`,
  );
  console.log(`seeded ${JSON.stringify(rows[0])} in ${((performance.now() - seeding) / 1000).toFixed(1)} s`);
  const started = performance.now();
  await migrate(db, { upTo: 27 });
  const seconds = (performance.now() - started) / 1000;
  console.log(`migration 0027: ${seconds.toFixed(1)} s, ${(seconds / (total / 1e6)).toFixed(1)} s per million messages`);
} finally {
  await db.end();
  await database.drop();
}
