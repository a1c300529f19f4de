import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { migrate } from "../src/store/migrate.ts";
import { waitFor } from "@tidings/testkit/wait";
import { feedPage } from "../src/store/feed.ts";
import { FEED_START } from "../src/domain/feedCursor.ts";
import { commitPrepared } from "../src/store/preparedMessages.ts";
import { ADMIN_KEY, startTestService } from "@tidings/testkit/service";
import { Receiver } from "@tidings/testkit/receiver";
import { api } from "./support/api.ts";

let database: TestDatabase;
let db: pg.Pool;

before(async () => {
  database = await createTestDatabase("migrations", { empty: true });
  db = new pg.Pool({ connectionString: database.url, max: 2 });
});

after(async () => {
  await db.end();
  await database.drop();
});

test("0008 moves each app's messages, with their deliveries, attempts, checks and alerts, to the app's own namespace", async () => {
  await migrate(db, { upTo: 7 });
  // Data as it stood: one global id space; an app's message, the admin's own (no app).
  await db.query(`insert into apps (name, key_hash, secret) values ('shop', '\\x01', 'whsec_x'), ('billing', '\\x02', 'whsec_y')`);
  await db.query(`insert into subscriptions (name, topic, endpoint, secret, retry)
                  values ('inv', 't', '{"type":"http","url":"http://127.0.0.1:1/"}', 'whsec_s', '{"schedule":[],"maxAttempts":1,"windowMs":null}')`);
  await db.query(`insert into messages (id, app, topic, payload, state, committed_at)
                  values ('order-1', 'shop', 't', '{"n":1}', 'committed', now()), ('admin-1', null, 't', '{"n":2}', 'committed', now())`);
  await db.query(`insert into messages (id, app, topic, payload, state) values ('half-1', 'billing', 't', '{}', 'prepared')`);
  const {
    rows: [delivery],
  } = await db.query(`insert into deliveries (message_id, subscription_id, next_attempt_at, state, dead_at)
                  select 'order-1', id, now(), 'dead', now() from subscriptions returning id`);
  await db.query(`insert into deliveries (message_id, subscription_id, next_attempt_at) select 'admin-1', id, now() from subscriptions`);
  await db.query(
    `insert into attempts (delivery_id, message_id, subscription_id, attempt, started_at, latency_ms, outcome)
                  select $1, 'order-1', subscription_id, 1, now(), 3, 'dead' from deliveries where id = $1`,
    [delivery.id],
  );
  await db.query(`insert into checks (message_id, check_no, started_at, latency_ms, answer) values ('half-1', 1, now(), 2, 'unknown')`);
  await db.query(`insert into alerts (kind, message_id, subscription_id, detail) select 'delivery_dead', 'order-1', id, 'dead' from subscriptions`);

  // Up to 0019: 0020 groups the alerts (its own test below) and drops their message_id.
  assert.deepEqual(await migrate(db, { upTo: 19 }), [8, ...(await laterVersions()).filter((v) => v <= 19)]);

  const ids = async (sql: string) => (await db.query(sql)).rows.map((r) => r.message_id ?? r.id).sort();
  assert.deepEqual(await ids("select id from messages"), ["admin-1", "billing/half-1", "shop/order-1"]);
  assert.deepEqual(await ids("select message_id from deliveries"), ["admin-1", "shop/order-1"]);
  assert.deepEqual(await ids("select message_id from attempts"), ["shop/order-1"]);
  assert.deepEqual(await ids("select message_id from checks"), ["billing/half-1"]);
  assert.deepEqual(await ids("select message_id from alerts"), ["shop/order-1"]);
  // Another app may now take the same id; deleting a message still takes its rows with it.
  await db.query(`insert into messages (id, app, topic, payload, state, committed_at) values ('billing/order-1', 'billing', 't', '{}', 'committed', now())`);
  await db.query("delete from messages where id = 'shop/order-1'");
  assert.deepEqual(await ids("select message_id from deliveries"), ["admin-1"]);
  assert.deepEqual(await ids("select message_id from alerts"), []);
});

test("0015 gives existing health rows an empty failure-ratio window; a circuit policy stored before it reads as a count alone", async () => {
  const other = await createTestDatabase("migrations_0015", { empty: true });
  const pool = new pg.Pool({ connectionString: other.url, max: 1 });
  try {
    await migrate(pool, { upTo: 14 });
    await pool.query(`insert into subscriptions (name, topic, endpoint, secret, retry)
                      values ('inv', 't', '{"type":"http","url":"http://127.0.0.1:1/"}', 'whsec_s', '{"schedule":[],"maxAttempts":1,"windowMs":null}')`);
    await pool.query("insert into subscription_health (subscription_id, consecutive_failures) select id, 4 from subscriptions");
    assert.deepEqual(await migrate(pool, { upTo: 15 }), [15]);
    const { rows } = await pool.query("select consecutive_failures, window_started_at, window_attempts, window_failures from subscription_health");
    assert.deepEqual(rows, [{ consecutive_failures: 4, window_started_at: null, window_attempts: 0, window_failures: 0 }]);
    // The column's default from 0014, as every subscription of that time has it.
    const { getSubscription } = await import("../src/store/subscriptions.ts");
    assert.deepEqual((await getSubscription(pool, "inv"))?.circuit, { failures: 20, ratio: null, probeEveryMs: 30_000, pauseAfterMs: 259_200_000 });
    // More failures than attempts in a window cannot be stored.
    await assert.rejects(pool.query("update subscription_health set window_attempts = 1, window_failures = 2"), /check/);
  } finally {
    await pool.end();
    await other.drop();
  }
});

test("0016 moves the keys whose delivery let go of them, not yet woken, to key_wakes", async () => {
  const other = await createTestDatabase("migrations_0016", { empty: true });
  const pool = new pg.Pool({ connectionString: other.url, max: 1 });
  try {
    await migrate(pool, { upTo: 15 });
    await pool.query(`insert into subscriptions (name, topic, endpoint, secret, retry, ordering)
                      values ('inv', 't', '{"type":"http","url":"http://127.0.0.1:1/"}', 'whsec_s', '{"schedule":[],"maxAttempts":1,"windowMs":null}', 'key')`);
    await pool.query(`insert into messages (id, topic, key, payload, state, committed_at)
                      select 'm-' || n, 't', 'k', '{}', 'committed', now() from generate_series(1, 3) n`);
    // m-1 delivered, its key not yet taken by a claim; m-2 parked behind it; m-3 delivered long ago.
    await pool.query(`insert into deliveries (message_id, subscription_id, next_attempt_at, state, delivered_at, order_key, order_at, parked, unblock)
                      select 'm-' || n, s.id, now(), case when n = 2 then 'pending' else 'delivered' end::delivery_state,
                             case when n <> 2 then now() end, 'k', now(), n = 2, n = 1
                        from subscriptions s, generate_series(1, 3) n`);
    assert.deepEqual(await migrate(pool), [16, ...(await laterVersions()).filter((v) => v > 16)]);
    const { rows } = await pool.query("select s.name, w.order_key, w.message_id from key_wakes w join subscriptions s on s.id = w.subscription_id");
    assert.deepEqual(rows, [{ name: "inv", order_key: "k", message_id: "m-1" }]);
    const columns = await pool.query("select 1 from information_schema.columns where table_name = 'deliveries' and column_name = 'unblock'");
    assert.equal(columns.rowCount, 0);
  } finally {
    await pool.end();
    await other.drop();
  }
});

test("0020 groups the open alerts of a condition and subject into one, counting them with their messages as examples; writes no event", async () => {
  const other = await createTestDatabase("migrations_0020", { empty: true });
  const pool = new pg.Pool({ connectionString: other.url, max: 1 });
  try {
    await migrate(pool, { upTo: 19 });
    await pool.query(`insert into subscriptions (name, topic, endpoint, secret, retry)
                      values ('inv', 't', '{"type":"http","url":"http://127.0.0.1:1/"}', 'whsec_s', '{"schedule":[],"maxAttempts":1,"windowMs":null}')`);
    await pool.query(`insert into messages (id, app, topic, payload, state) select 'shop/m-' || n, 'shop', 't', '{}', 'prepared' from generate_series(1, 5) n`);
    // Three open dead-letter alerts and one resolved; a circuit_closed "alert"; a message in doubt.
    await pool.query(`insert into alerts (kind, message_id, subscription_id, detail, created_at, resolved_at)
                      select 'delivery_dead', 'shop/m-' || n, s.id, 'dead ' || n, now() - make_interval(mins => 10 - n), case when n = 4 then now() end
                        from subscriptions s, generate_series(1, 4) n`);
    await pool.query("insert into alerts (kind, subscription_id, detail) select 'circuit_closed', id, 'closed' from subscriptions");
    await pool.query("insert into alerts (kind, message_id, detail) values ('message_in_doubt', 'shop/m-5', 'in doubt')");
    assert.deepEqual(
      await migrate(pool),
      (await laterVersions()).filter((v) => v > 19),
    );

    const { rows } = await pool.query(
      "select condition, subject, app, state, count, examples, resolve_note from alerts where state <> 'resolved' order by condition",
    );
    assert.equal(rows.length, 2);
    const [dead, doubt] = rows;
    assert.deepEqual([dead.condition, dead.subject, dead.state, dead.count], ["delivery_dead", "subscription inv", "open", 3]);
    assert.deepEqual(
      dead.examples.map((e: { messageId: string }) => e.messageId),
      ["shop/m-3", "shop/m-2", "shop/m-1"],
    );
    assert.deepEqual([doubt.condition, doubt.subject, doubt.app, doubt.count], ["message_in_doubt", "app shop", "shop", 1]);
    const resolved = await pool.query("select condition, resolve_note from alerts where state = 'resolved' order by id");
    assert.deepEqual(
      resolved.rows.map((r) => r.condition),
      ["delivery_dead", "delivery_dead", "delivery_dead", "circuit_closed"],
    );
    assert.equal(resolved.rows.filter((r) => /^grouped into alert \d+ on upgrade$/.test(r.resolve_note ?? "")).length, 2);
    assert.equal((await pool.query("select count(*)::int as n from alert_events")).rows[0].n, 0, "the upgrade is no event to notify");
    // A second open alert of the same condition and subject cannot be stored.
    await assert.rejects(
      pool.query("insert into alerts (condition, subject, subscription_id, detail) select 'delivery_dead', 'subscription inv', id, 'x' from subscriptions"),
      /alerts_one_open/,
    );
  } finally {
    await pool.end();
    await other.drop();
  }
});

/** Versions after 8 (applied in the same call). */
async function laterVersions(): Promise<number[]> {
  const { loadMigrations } = await import("../src/store/migrate.ts");
  return (await loadMigrations()).map((m) => m.version).filter((v) => v > 8);
}

test("0023 gives the messages kept so far their place in the feed, in their order; a prepared one takes its place when committed", async () => {
  const other = await createTestDatabase("migrations_0023", { empty: true });
  const pool = new pg.Pool({ connectionString: other.url, max: 1 });
  try {
    await migrate(pool, { upTo: 22 });
    await pool.query(
      `insert into messages (id, app, topic, payload, state, committed_at) select 'shop/m-' || n, 'shop', 't', '{}', 'committed', now() from generate_series(1, 3) n`,
    );
    await pool.query(`insert into messages (id, app, topic, payload, state) values ('shop/half', 'shop', 't', '{}', 'prepared')`);
    await migrate(pool);
    const place = async () => (await feedPage(pool, { topic: "t", after: FEED_START, limit: 10, maxBytes: 1e6 })).items.map((m) => m.id);
    // The feed serves a place once every transaction older than it has ended, on the whole
    // database server (other tests' among them): wait for that, then check the order.
    await waitFor("the kept messages in the feed", async () => (await place()).length === 3);
    assert.deepEqual(await place(), ["shop/m-1", "shop/m-2", "shop/m-3"]);
    const { outcomes } = await commitPrepared(pool, [{ id: "shop/half", app: "shop" }], null, 30_000);
    assert.equal(outcomes[0]!.kind, "resolved");
    await waitFor("the committed one in the feed", async () => (await place()).length === 4);
    assert.deepEqual(await place(), ["shop/m-1", "shop/m-2", "shop/m-3", "shop/half"]);
  } finally {
    await pool.end();
    await other.drop();
  }
});

test("0027 makes the tables as they stand the legacy partitions: everything reads as before, pending deliveries go out, old ids answer as stored, new messages go in today's partition", async () => {
  const other = await createTestDatabase("migrations_0027", { empty: true });
  const pool = new pg.Pool({ connectionString: other.url, max: 2 });
  const receiver = await new Receiver(() => 200).start();
  let service: Awaited<ReturnType<typeof startTestService>> | null = null;
  try {
    await migrate(pool, { upTo: 26 });
    await pool.query(
      `insert into subscriptions (name, topic, endpoint, secret, retry)
                      values ('up', 't', $1, 'whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=', '{"schedule":[100],"maxAttempts":5,"windowMs":null}')`,
      [JSON.stringify({ type: "http", url: `${receiver.url}/up` })],
    );
    // 3000 messages of the admin (bare ids, a producer's: with a content hash), by n % 6:
    // 0, 1 delivered; 2 pending, due now; 3 dead; 4 prepared (with a check-back); 5 rolled back.
    await pool.query(`
      insert into messages (id, topic, key, payload, content_hash, state, created_at, committed_at, rolled_back_at, next_check_at)
      select 'm-' || n, 't', 'k' || (n % 10), json_build_object('n', n), '\\x01',
             (case n % 6 when 4 then 'prepared' when 5 then 'rolled_back' else 'committed' end)::message_state,
             now() - interval '2 days', case when n % 6 < 4 then now() - interval '2 days' end,
             case when n % 6 = 5 then now() - interval '2 days' end, case when n % 6 = 4 then now() + interval '1 hour' end
        from generate_series(1, 3000) n`);
    await pool.query(`
      insert into deliveries (message_id, subscription_id, state, attempts, next_attempt_at, delivered_at, dead_at, dead_reason)
      select m.id, s.id, (case n % 6 when 2 then 'pending' when 3 then 'dead' else 'delivered' end)::delivery_state,
             case n % 6 when 2 then 0 else 1 end, now() - interval '1 minute',
             case when n % 6 < 2 then now() end, case when n % 6 = 3 then now() end, case when n % 6 = 3 then 'gave up' end
        from generate_series(1, 3000) n join messages m on m.id = 'm-' || n, subscriptions s
       where n % 6 < 4`);
    await pool.query(`
      insert into attempts (delivery_id, message_id, subscription_id, attempt, started_at, latency_ms, status_code, outcome)
      select d.id, d.message_id, d.subscription_id, 1, now() - interval '2 days', 5, case when d.state = 'dead' then 500 else 200 end,
             case when d.state = 'dead' then 'dead' else 'delivered' end
        from deliveries d where d.state <> 'pending'`);
    await pool.query(`insert into checks (message_id, check_no, started_at, latency_ms, answer)
                      select id, 1, now() - interval '2 days', 3, 'unknown' from messages where state <> 'committed'`);
    await pool.query(`insert into alerts (condition, subject, subscription_id, detail, state, first_at, last_at, count)
                      select 'delivery_dead', 'subscription up', id, 'dead', 'open', now(), now(), 500 from subscriptions`);
    const counts = async () =>
      (
        await pool.query(`select (select count(*) from messages)::int as messages, (select count(*) from deliveries)::int as deliveries,
                                 (select count(*) from attempts)::int as attempts, (select count(*) from checks)::int as checks,
                                 (select count(*) from alerts)::int as alerts, (select max(seq) from messages)::int as seq`)
      ).rows[0];
    const before = await counts();
    assert.deepEqual(before, { messages: 3000, deliveries: 2000, attempts: 1500, checks: 1000, alerts: 1, seq: 3000 });

    assert.deepEqual(
      await migrate(pool),
      (await laterVersions()).filter((v) => v >= 27),
    );
    assert.deepEqual(await counts(), before);
    const { rows: parts } = await pool.query(
      `select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid where i.inhparent = 'messages'::regclass order by 1`,
    );
    const today = new Date().toISOString().slice(0, 10).replaceAll("-", "");
    assert.ok(parts.some((p) => p.name === "messages_legacy") && parts.some((p) => p.name === `messages_${today}`), JSON.stringify(parts));

    service = await startTestService(other.url);
    const admin = api(service.url, ADMIN_KEY);
    const delivered = await admin.get("/v1/messages/m-6");
    assert.equal(delivered.status, 200);
    assert.deepEqual(delivered.body.payload, { n: 6 });
    assert.equal(delivered.body.deliveries[0].state, "delivered");
    assert.equal(delivered.body.attempts?.length ?? 1, 1);
    assert.equal((await admin.get("/v1/messages/m-3")).body.deliveries[0].state, "dead");
    assert.equal((await admin.get("/v1/messages/m-4")).body.state, "prepared");
    assert.equal((await admin.get("/v1/messages/m-5")).body.state, "rolled_back");
    const keyed = await admin.get("/v1/messages?topic=t&key=k7&limit=500");
    assert.equal(keyed.status, 200);
    assert.equal(keyed.body.items.length, 300);
    // The 500 pending deliveries go out.
    await waitFor("the pending deliveries delivered", () => receiver.counts.size === 500, 30_000);
    assert.equal((await admin.get("/v1/messages/m-2")).body.deliveries[0].state, "delivered");
    // Ids stored before the migration are taken: the same content answers 200 as stored, other content 409.
    const again = await admin.post("/v1/messages", { id: "m-1", topic: "t", key: "k1", payload: { n: 1 } });
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.equal(again.body.createdAt, (await admin.get("/v1/messages/m-1")).body.createdAt);
    assert.ok(Date.parse(again.body.createdAt) < Date.now() - 86_400_000);
    assert.equal((await admin.post("/v1/messages", { id: "m-1", topic: "t", key: "k1", payload: { n: 2 } })).status, 409);
    // A prepared message of before commits, its delivery in its own day's partition.
    assert.equal((await admin.post("/v1/messages/m-4/commit")).status, 200);
    await waitFor("m-4 delivered", () => receiver.counts.get("m-4") === 1);
    // A new message goes in today's partition, with a seq after the old ones.
    const fresh = await admin.post("/v1/messages", { id: "m-3001", topic: "t", payload: 1 });
    assert.equal(fresh.status, 201);
    await waitFor("m-3001 delivered", () => receiver.counts.get("m-3001") === 1);
    // The receiver's 200 comes before the attempt is recorded: wait for the record.
    await waitFor("m-3001's attempt recorded", async () => (await pool.query("select 1 from attempts where message_id = 'm-3001'")).rowCount === 1);
    const { rows } = await pool.query(
      `select (select tableoid::regclass::text from messages where id = 'm-3001') as message,
              (select tableoid::regclass::text from deliveries where message_id = 'm-3001') as delivery,
              (select tableoid::regclass::text from attempts where message_id = 'm-3001') as attempt,
              (select tableoid::regclass::text from deliveries where message_id = 'm-4') as old_delivery`,
    );
    assert.deepEqual(rows[0], {
      message: `messages_${today}`,
      delivery: `deliveries_${today}`,
      attempt: `attempts_${today}`,
      old_delivery: "deliveries_legacy",
    });
    // An operator's delete of an old message takes its rows with it.
    assert.equal((await admin.delete("/v1/messages/m-3")).status, 204);
    const left = await pool.query(
      "select (select count(*) from deliveries where message_id = 'm-3')::int + (select count(*) from attempts where message_id = 'm-3')::int as n",
    );
    assert.equal(left.rows[0].n, 0);
  } finally {
    await service?.close();
    await receiver.stop();
    await pool.end();
    await other.drop();
  }
});

test("0029 leaves the subscriptions stored before it on the service's pending-age threshold", async () => {
  const other = await createTestDatabase("migrations_0029", { empty: true });
  const pool = new pg.Pool({ connectionString: other.url, max: 1 });
  try {
    await migrate(pool, { upTo: 28 });
    await pool.query(`insert into subscriptions (name, topic, endpoint, secret, retry)
                      values ('inv', 't', '{"type":"http","url":"http://127.0.0.1:1/"}', 'whsec_s', '{"schedule":[],"maxAttempts":1,"windowMs":null}')`);
    assert.deepEqual(await migrate(pool, { upTo: 29 }), [29]);
    const { getSubscription } = await import("../src/store/subscriptions.ts");
    assert.equal((await getSubscription(pool, "inv"))?.pendingAgeAlertMs, null);
    // A threshold fits past 24 days (30d in milliseconds is over 2^31); none is negative.
    await pool.query("update subscriptions set pending_age_alert_ms = 2592000000");
    assert.equal((await getSubscription(pool, "inv"))?.pendingAgeAlertMs, 2_592_000_000);
    await assert.rejects(pool.query("update subscriptions set pending_age_alert_ms = -1"), /check/);
  } finally {
    await pool.end();
    await other.drop();
  }
});
