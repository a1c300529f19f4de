import { test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { createTestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, startTestService } from "@tidings/testkit/service";
import { Receiver } from "@tidings/testkit/receiver";
import { waitFor } from "@tidings/testkit/wait";
import { api } from "./support/api.ts";
import { dropFinishedDays } from "../src/store/retention.ts";

const DAY_MS = 86_400_000;

/** Days' partitions that exist, by suffix (YYYYMMDD), for each of the four tables. */
async function partitionsOf(db: pg.Pool): Promise<Map<string, string[]>> {
  const { rows } = await db.query(
    `select p.relname as parent, c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent
      where p.relname in ('messages', 'deliveries', 'attempts', 'checks') order by 1, 2`,
  );
  const byParent = new Map<string, string[]>();
  for (const r of rows) byParent.set(r.parent, [...(byParent.get(r.parent) ?? []), r.name.slice(r.parent.length + 1)]);
  return byParent;
}

const ymd = (daysAgo: number) => new Date(Date.now() - daysAgo * DAY_MS).toISOString().slice(0, 10);
const suffix = (daysAgo: number) => ymd(daysAgo).replaceAll("-", "");

/**
 * A day in the past as written by the service then (its partitions, a message per line of
 * `what`, each with its delivery, an attempt and a check-back): `state` of the message and of
 * its delivery.
 */
async function seedDay(db: pg.Pool, daysAgo: number, what: Array<{ id: string; state: string; delivery?: string }>): Promise<void> {
  const day = ymd(daysAgo);
  await db.query("select tidings_create_day_partitions($1::date, $1::date)", [day]);
  for (const m of what) {
    await db.query(
      `insert into messages (id, topic, payload, state, day, created_at, committed_at, rolled_back_at, next_check_at)
       values ($1, 't', '1', $2::message_state, $3::date, $3::date + time '12:00',
               case when $2 = 'committed' then $3::date + time '12:00' end, case when $2 = 'rolled_back' then $3::date + time '12:00' end,
               case when $2 = 'prepared' then now() + interval '1 hour' end)`,
      [m.id, m.state, day],
    );
    await db.query(
      `insert into checks (message_id, message_day, check_no, started_at, latency_ms, answer) values ($1, $2, 1, $2::date + time '12:00', 1, 'unknown')`,
      [m.id, day],
    );
    if (!m.delivery) continue;
    const { rows } = await db.query(
      `insert into deliveries (message_id, message_day, subscription_id, state, next_attempt_at, delivered_at, dead_at)
       select $1, $2, id, $3::delivery_state, now() + interval '1 hour', case when $3 = 'delivered' then now() end, case when $3 = 'dead' then now() end
         from subscriptions where name = 'sub' returning id, subscription_id`,
      [m.id, day, m.delivery],
    );
    await db.query(
      `insert into attempts (delivery_id, message_id, message_day, subscription_id, attempt, started_at, latency_ms, outcome)
       values ($1, $2, $3, $4, 1, $3::date + time '12:00', 1, 'failed')`,
      [rows[0].id, m.id, day, rows[0].subscription_id],
    );
  }
}

test("a day past the retention is dropped whole once every message of it is finished; a day with a pending, dead or prepared one is kept, today never", async () => {
  const database = await createTestDatabase("retention_days");
  const db = new pg.Pool({ connectionString: database.url, max: 2 });
  try {
    await db.query(`insert into subscriptions (name, topic, endpoint, secret, retry)
                    values ('sub', 't', '{"type":"http","url":"http://127.0.0.1:1/"}', 'whsec_s', '{"schedule":[],"maxAttempts":1,"windowMs":null}')`);
    await seedDay(db, 10, [
      { id: "done-1", state: "committed", delivery: "delivered" },
      { id: "done-2", state: "committed", delivery: "delivered" },
      { id: "rolled-1", state: "rolled_back" },
    ]);
    await seedDay(db, 9, [
      { id: "done-3", state: "committed", delivery: "delivered" },
      { id: "pending-1", state: "committed", delivery: "pending" },
    ]);
    await seedDay(db, 8, [{ id: "dead-1", state: "committed", delivery: "dead" }]);
    await seedDay(db, 7, [{ id: "prepared-1", state: "prepared" }]);
    // Accepted prepared 6 days ago, committed just now: finished, but not for longer than the retention.
    await seedDay(db, 6, [{ id: "late-1", state: "committed", delivery: "delivered" }]);
    await db.query("update messages set committed_at = now() where id = 'late-1'");
    // Today's: finished, but its day is not over.
    await seedDay(db, 0, [{ id: "today-1", state: "committed", delivery: "delivered" }]);

    const { lockedMs, ...pass } = await dropFinishedDays(db, 2 * DAY_MS);
    assert.deepEqual(pass, { dropped: [suffix(10)], held: [suffix(9), suffix(8), suffix(7), suffix(6)], busy: [] });
    assert.ok(lockedMs >= 0);
    const parts = await partitionsOf(db);
    for (const table of ["messages", "deliveries", "attempts", "checks"]) {
      assert.ok(!parts.get(table)!.includes(suffix(10)), `${table}_${suffix(10)} is gone`);
      for (const kept of [9, 8, 7, 6, 0]) assert.ok(parts.get(table)!.includes(suffix(kept)), `${table}_${suffix(kept)} stays`);
    }
    const { rows: gone } = await db.query("select count(*)::int as n from pg_class where relname like $1", [`%_${suffix(10)}`]);
    assert.equal(gone[0].n, 0);
    const count = async (table: string) => (await db.query(`select count(*)::int as n from ${table}`)).rows[0].n;
    assert.deepEqual(
      [await count("messages"), await count("deliveries"), await count("attempts"), await count("checks")],
      [6, 5, 5, 6],
      "the dropped day's 3 messages, 2 deliveries, 2 attempts and 3 checks are gone, the rest stays",
    );

    // The pending delivery is delivered, the prepared message rolled back: their days go at the next pass.
    await db.query("update deliveries set state = 'delivered', delivered_at = now() where message_id = 'pending-1'");
    await db.query("update messages set state = 'rolled_back', rolled_back_at = now() - interval '3 days', next_check_at = null where id = 'prepared-1'");
    const { lockedMs: _, ...next } = await dropFinishedDays(db, 2 * DAY_MS);
    assert.deepEqual(next, { dropped: [suffix(9), suffix(7)], held: [suffix(8), suffix(6)], busy: [] });
    assert.deepEqual(
      (await db.query("select id from messages order by id")).rows.map((r) => r.id),
      ["dead-1", "late-1", "today-1"],
    );

    // A pass that stopped between detaching a day and dropping its tables: the next one drops them.
    await seedDay(db, 11, [{ id: "done-4", state: "committed", delivery: "delivered" }]);
    for (const table of ["attempts", "deliveries", "checks", "messages"]) await db.query(`alter table ${table} detach partition ${table}_${suffix(11)}`);
    await dropFinishedDays(db, 2 * DAY_MS);
    const { rows: left } = await db.query("select count(*)::int as n from pg_class where relname like $1", [`%_${suffix(11)}`]);
    assert.equal(left[0].n, 0);
  } finally {
    await db.end();
    await database.drop();
  }
});

test("the service drops finished days as it runs, keeps the others readable and counts them in tidings_retention_held_partitions", async () => {
  const database = await createTestDatabase("retention_service");
  const db = new pg.Pool({ connectionString: database.url, max: 2 });
  const receiver = await new Receiver(() => 200).start();
  let service: Awaited<ReturnType<typeof startTestService>> | null = null;
  try {
    await db.query(`insert into subscriptions (name, topic, endpoint, secret, retry)
                    values ('sub', 't', '{"type":"http","url":"http://127.0.0.1:1/"}', 'whsec_s', '{"schedule":[],"maxAttempts":1,"windowMs":null}')`);
    await seedDay(db, 9, [{ id: "done-1", state: "committed", delivery: "delivered" }]);
    await seedDay(db, 8, [{ id: "dead-1", state: "committed", delivery: "dead" }]);
    service = await startTestService(database.url, { TIDINGS_RETENTION: "7d", TIDINGS_RETENTION_INTERVAL: "100ms" });
    const admin = api(service.url, ADMIN_KEY);
    await admin.post("/v1/subscriptions", { name: "up", topic: "t.up", endpoint: { type: "http", url: `${receiver.url}/up` } });
    await admin.post("/v1/messages", { id: "fresh-1", topic: "t.up", payload: 1 });
    await waitFor("done-1's day dropped", async () => !(await partitionsOf(db)).get("messages")!.includes(suffix(9)));
    await waitFor("the held day counted", async () => /^tidings_retention_held_partitions 1$/m.test(await (await fetch(`${service!.url}/metrics`)).text()));
    assert.equal((await admin.get("/v1/messages/done-1")).status, 404);
    assert.equal((await admin.get("/v1/messages/dead-1")).body.deliveries[0].state, "dead");
    await waitFor("fresh-1 delivered", () => receiver.counts.get("fresh-1") === 1);
    assert.equal((await admin.get("/v1/messages/fresh-1")).status, 200);
    // Today and the days ahead have their partitions.
    const days = (await partitionsOf(db)).get("messages")!;
    for (const ahead of [0, -1, -2, -3]) assert.ok(days.includes(suffix(ahead)), `messages_${suffix(ahead)}`);
  } finally {
    await service?.close();
    await receiver.stop();
    await db.end();
    await database.drop();
  }
});

test("a producer's id stored on an earlier day is still taken: the same content answers 200 as stored, other content 409", async () => {
  const database = await createTestDatabase("retention_ids");
  const db = new pg.Pool({ connectionString: database.url, max: 2 });
  const service = await startTestService(database.url);
  const admin = api(service.url, ADMIN_KEY);
  try {
    await admin.post("/v1/subscriptions", { name: "s", topic: "t.old", endpoint: { type: "http", url: "http://127.0.0.1:1/" } });
    const first = await admin.post("/v1/messages", { id: "old-1", topic: "t.old", payload: { a: 1 } });
    assert.equal(first.status, 201);
    // As if it had been accepted three days ago: the rows move to that day's partitions.
    const day = ymd(3);
    await db.query("select tidings_create_day_partitions($1::date, $1::date)", [day]);
    await db.query("update messages set day = $1, created_at = created_at - interval '3 days' where id = 'old-1'", [day]);
    await db.query("update deliveries set message_day = $1 where message_id = 'old-1'", [day]);
    assert.equal((await db.query("select tableoid::regclass::text as t from messages where id = 'old-1'")).rows[0].t, `messages_${suffix(3)}`);

    const again = await admin.post("/v1/messages", { id: "old-1", topic: "t.old", payload: { a: 1 } });
    assert.equal(again.status, 200);
    assert.equal(again.body.createdAt, new Date(Date.parse(first.body.createdAt) - 3 * DAY_MS).toISOString());
    const other = await admin.post("/v1/messages", { id: "old-1", topic: "t.old", payload: { a: 2 } });
    assert.equal(other.status, 409);
    const batch = await admin.post("/v1/messages/batch", {
      atomic: false,
      messages: [
        { id: "old-1", topic: "t.old", payload: { a: 1 } },
        { id: "old-1", topic: "t.old", payload: { a: 3 } },
        { id: "new-1", topic: "t.old", payload: 1 },
      ],
    });
    assert.deepEqual(batch.body.outcomes, ["exists", "conflict", "created"]);
    assert.deepEqual((await db.query("select id, day::text from messages order by id")).rows, [
      { id: "new-1", day: ymd(0) },
      { id: "old-1", day },
    ]);
    assert.equal((await db.query("select count(*)::int as n from deliveries where message_id = 'old-1'")).rows[0].n, 1);
  } finally {
    await service.close();
    await db.end();
    await database.drop();
  }
});
