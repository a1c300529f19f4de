import { after, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";

/** A parameter as pg sends it (arrays as array literals); pg's typings do not declare its utils. */
const prepareValue = (pg as unknown as { utils: { prepareValue(v: unknown): unknown } }).utils.prepareValue;
import { createTestDatabase } from "@tidings/testkit/db";
import type { AttemptResult, LeasedDelivery } from "../src/domain/delivery.ts";
import { claimDueDeliveries, recordQuery, releaseQuery } from "../src/store/deliveryAttempts.ts";
import { resendMessageQuery } from "../src/store/operatorActions.ts";

const DAY_MS = 86_400_000;
const ymd = (daysAgo: number) => new Date(Date.now() - daysAgo * DAY_MS).toISOString().slice(0, 10);
const DAYS = [6, 5, 4, 3, 2, 1, 0];
/** The day of the one delivery due: the others wait, one in each of the other days. */
const DUE_DAY = 3;
const BACKLOG = 2000;

const database = await createTestDatabase("day_partitions");
const db = new pg.Pool({ connectionString: database.url, max: 2 });
after(async () => {
  await db.end();
  await database.drop();
});

/**
 * A message with one delivery in each day's partition; only the one of DUE_DAY is due. Each day
 * also holds a BACKLOG of deliveries waiting for their retry (a consumer away for a week): with a
 * handful of pending rows a partition's are read whole whatever the statement's keys, and the
 * plan would say nothing of them.
 */
async function seed(): Promise<number> {
  const { rows } = await db.query(`insert into subscriptions (name, topic, endpoint, secret, retry)
      values ('sub', 't', '{"type":"http","url":"http://127.0.0.1:1/"}', 'whsec_s', '{"schedule":[1000],"maxAttempts":3,"windowMs":null}') returning id`);
  const subscriptionId = rows[0].id as number;
  await db.query("select tidings_create_day_partitions($1::date, $2::date)", [ymd(DAYS[0]!), ymd(0)]);
  for (const daysAgo of DAYS) {
    const day = ymd(daysAgo);
    await db.query(
      `insert into messages (id, topic, payload, state, day, created_at, committed_at) values ($1, 't', '1', 'committed', $2::date, $2::date + time '12:00', $2::date + time '12:00')`,
      [`m-${day}`, day],
    );
    await db.query(
      `insert into deliveries (message_id, message_day, subscription_id, next_attempt_at)
       values ($1, $2::date, $3, case when $4 then now() - interval '1 second' else now() + interval '1 hour' end)`,
      [`m-${day}`, day, subscriptionId, daysAgo === DUE_DAY],
    );
    await db.query(
      `insert into deliveries (message_id, message_day, subscription_id, attempts, next_attempt_at, last_attempt_at)
       select 'waits-' || $1 || '-' || i, $1::date, $2, 1, now() + interval '1 hour', $1::date + time '12:00'
         from generate_series(1, $3::int) i`,
      [day, subscriptionId, BACKLOG],
    );
  }
  await db.query("analyze deliveries");
  return subscriptionId;
}

/**
 * Runs a statement as the service does, prepared, under EXPLAIN ANALYZE (in a transaction rolled
 * back afterwards, after `check` has looked at what it wrote), with the plan `planning` makes of
 * it (one for its values, or the generic one a prepared statement comes to), and answers the
 * deliveries partitions its plan read: in all, and to find the rows it updates in deliveries.
 * Pruning happens as the statement runs (the days come in an array, not as constants), so only
 * the actual loops tell: a partition pruned is never executed.
 */
async function partitionsRead(
  planning: string,
  query: { text: string; values: unknown[] },
  check: (client: pg.PoolClient) => Promise<void>,
): Promise<{ all: string[]; updating: string[] }> {
  const client = await db.connect();
  try {
    await client.query("begin");
    await client.query(`set local plan_cache_mode = ${planning}`);
    await client.query(`prepare under_test as ${query.text}`);
    // EXECUTE takes its arguments as literals, written as pg would send them.
    const args = query.values.map((v) => (v === null ? "null" : client.escapeLiteral(String(prepareValue(v))))).join(", ");
    const { rows } = await client.query(`explain (analyze, format json) execute under_test(${args})`);
    await check(client);
    const all = new Set<string>();
    const updating = new Set<string>();
    const walk = (node: Record<string, unknown>, underUpdate: boolean) => {
      const relation = node["Relation Name"];
      const under = underUpdate || (node["Node Type"] === "ModifyTable" && relation === "deliveries");
      if (typeof relation === "string" && relation.startsWith("deliveries_") && (node["Actual Loops"] as number) > 0) {
        all.add(relation);
        if (under) updating.add(relation);
      }
      for (const child of (node.Plans as Record<string, unknown>[] | undefined) ?? []) walk(child, under);
    };
    walk(rows[0]["QUERY PLAN"][0].Plan, false);
    return { all: [...all].sort(), updating: [...updating].sort() };
  } finally {
    await client.query("rollback");
    await client.query("deallocate all");
    client.release();
  }
}

function resultOf(d: LeasedDelivery): AttemptResult {
  const startedAt = new Date();
  return {
    deliveryId: d.deliveryId,
    messageDay: d.messageDay,
    lease: d.lease!,
    messageId: d.message.id,
    subscriptionId: d.subscriptionId,
    attempt: d.attempt,
    outcome: "delivered",
    startedAt,
    latencyMs: 1,
    statusCode: 200,
    error: null,
    nextAttemptAt: null,
    deadReason: null,
    firstAttemptAt: startedAt,
  };
}

const subscriptionId = await seed();
const [claimed] = await claimDueDeliveries(db, "node-a", 60_000, 10, [subscriptionId]);
const partitionOf = (daysAgo: number) => `deliveries_${ymd(daysAgo).replaceAll("-", "")}`;
const partitionOfDue = partitionOf(DUE_DAY);

test("a claimed delivery carries its message's day", () => {
  assert.ok(claimed, "the due delivery was claimed");
  assert.equal(claimed.messageDay, ymd(DUE_DAY));
  assert.equal(claimed.message.id, `m-${ymd(DUE_DAY)}`);
});

for (const planning of ["force_custom_plan", "force_generic_plan"]) {
  test(`an attempt's result is written by reading its own day's partition alone, of ${DAYS.length} (${planning})`, async () => {
    const read = await partitionsRead(planning, recordQuery([resultOf(claimed!)]), async (client) => {
      const { rows } = await client.query("select state::text, lease_owner from deliveries where id = $1", [claimed!.deliveryId]);
      assert.deepEqual(rows, [{ state: "delivered", lease_owner: null }], "the result was written");
    });
    assert.deepEqual(read.all, [partitionOfDue]);
  });

  test(`a lease is given back by reading its own day's partition alone, of ${DAYS.length} (${planning})`, async () => {
    const read = await partitionsRead(
      planning,
      releaseQuery([{ deliveryId: claimed!.deliveryId, messageDay: claimed!.messageDay, lease: claimed!.lease! }]),
      async (client) => {
        const { rows } = await client.query("select lease_owner, next_attempt_at <= now() as due from deliveries where id = $1", [claimed!.deliveryId]);
        assert.deepEqual(rows, [{ lease_owner: null, due: true }], "the lease was given back");
      },
    );
    assert.deepEqual(read.all, [partitionOfDue]);
  });

  test(`a message's re-send updates its deliveries in their day's partition alone (${planning})`, async () => {
    // The message's id does not say its day: its deliveries are looked up in every day's
    // partition; what is updated, by id and day, is probed in its day's alone.
    const day = ymd(5);
    const read = await partitionsRead(planning, resendMessageQuery(`m-${day}`, null), async (client) => {
      const { rows } = await client.query("select state::text, next_attempt_at <= now() as due from deliveries where message_id = $1", [`m-${day}`]);
      assert.deepEqual(rows, [{ state: "pending", due: true }], "the delivery was re-sent");
    });
    assert.deepEqual(read.updating, [partitionOf(5)]);
  });
}
