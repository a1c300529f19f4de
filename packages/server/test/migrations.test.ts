import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { migrate } from "../src/store/migrate.ts";
import { feedPage } from "../src/store/feed.ts";
import { FEED_START } from "../src/domain/feedCursor.ts";
import { commitPrepared } from "../src/store/preparedMessages.ts";

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
    assert.deepEqual(await place(), ["shop/m-1", "shop/m-2", "shop/m-3"]);
    const { outcomes } = await commitPrepared(pool, [{ id: "shop/half", app: "shop" }], null, 30_000);
    assert.equal(outcomes[0]!.kind, "resolved");
    assert.deepEqual(await place(), ["shop/m-1", "shop/m-2", "shop/m-3", "shop/half"]);
  } finally {
    await pool.end();
    await other.drop();
  }
});
