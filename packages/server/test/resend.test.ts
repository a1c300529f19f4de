import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import type { RunningService } from "../src/runtime/service.ts";
import type { api } from "./support/api.ts";
import { outageWorld, type OutageWorld } from "./support/outageWorld.ts";
import type { Receiver } from "@tidings/testkit/receiver";
import { ADMIN_KEY } from "@tidings/testkit/service";
import { waitFor } from "@tidings/testkit/wait";

/** Every way an operator re-sends dead deliveries. */
type ResendPath = "message" | "message-subscription" | "resend-dead" | "resend-dead-jobs";
const PATHS: readonly ResendPath[] = ["message", "message-subscription", "resend-dead", "resend-dead-jobs"];

describe("re-sending dead deliveries", () => {
  let world: OutageWorld;
  let service: RunningService;
  let receiver: Receiver;
  let admin: ReturnType<typeof api>;
  let sql: pg.Pool;
  /** Receiver paths answered 500. */
  let down: Set<string>;
  let worlds = 0;

  before(async () => {
    world = await outageWorld("resend");
    ({ service, receiver, admin, sql, down } = world);
  });
  after(async () => {
    await world?.close();
  });

  /** A subscription with one attempt per cycle: each failed delivery dies at once, with an alert. */
  async function subscribe(name: string, topic: string): Promise<void> {
    down.add(`/${name}`);
    const created = await admin.post("/v1/subscriptions", {
      name,
      topic,
      endpoint: { type: "http", url: `${receiver.url}/${name}` },
      retry: { schedule: [], maxAttempts: 1 },
    });
    assert.equal(created.status, 201);
  }

  async function publish(topic: string, n: number): Promise<string[]> {
    const sent = await admin.post("/v1/messages/batch", { messages: Array.from({ length: n }, (_, i) => ({ topic, payload: { i } })) });
    assert.equal(sent.status, 201);
    return sent.body.items.map((m: { id: string }) => m.id);
  }

  /** Its deliveries by state, and its delivery_dead alerts: unresolved (one at most), resolved, and what the unresolved one counted. */
  async function counts(subscription: string): Promise<{ dead: number; pending: number; delivered: number; open: number; resolved: number; counted: number }> {
    const { rows } = await sql.query(
      `select (select count(*) from deliveries d where d.subscription_id = s.id and d.state = 'dead')::int as dead,
              (select count(*) from deliveries d where d.subscription_id = s.id and d.state = 'pending')::int as pending,
              (select count(*) from deliveries d where d.subscription_id = s.id and d.state = 'delivered')::int as delivered,
              (select count(*) from alerts a where a.subscription_id = s.id and a.condition = 'delivery_dead' and a.resolved_at is null)::int as open,
              (select count(*) from alerts a where a.subscription_id = s.id and a.condition = 'delivery_dead' and a.resolved_at is not null)::int as resolved,
              coalesce((select a.count from alerts a where a.subscription_id = s.id and a.condition = 'delivery_dead' and a.resolved_at is null), 0) as counted
         from subscriptions s where s.name = $1`,
      [subscription],
    );
    return rows[0];
  }

  /** Waits for `n` dead deliveries counted by the subscription's one open alert, then pauses the subscription so that what a re-send leaves stays to be looked at. */
  async function deadAndPaused(subscription: string, n: number): Promise<void> {
    await waitFor(`${n} dead deliveries of ${subscription}`, async () => {
      const c = await counts(subscription);
      return c.dead === n && c.open === 1 && c.counted === n;
    });
    assert.equal((await admin.patch(`/v1/subscriptions/${subscription}`, { enabled: false })).status, 200);
  }

  /**
   * A subscription's delivery rows as a re-send leaves them: every column but the ids, times
   * as whether they are set (and whether the delivery is due).
   * Every column is taken, so that a column one path sets and another does not shows here.
   */
  async function rowsOf(subscription: string): Promise<Record<string, unknown>[]> {
    const { rows } = await sql.query(
      `select d.*, d.next_attempt_at <= now() as due_now
         from deliveries d join subscriptions s on s.id = d.subscription_id
        where s.name = $1 order by d.id`,
      [subscription],
    );
    return rows.map((row) =>
      Object.fromEntries(
        Object.entries(row)
          .filter(([column]) => !["id", "message_id", "subscription_id"].includes(column))
          .map(([column, value]) => [column, column.endsWith("_at") ? (value === null ? null : "set") : value]),
      ),
    );
  }

  /**
   * Dead deliveries (with open alerts) of a paused subscription of its own, re-sent one way.
   * The message paths re-send one message; "message-subscription" re-sends one whose topic a
   * second subscription matches too, naming the first.
   */
  async function resendVia(path: ResendPath): Promise<{ subscription: string; ids: string[]; other?: string }> {
    const subscription = `w${++worlds}-${path}`;
    const topic = `t.${subscription}`;
    await subscribe(subscription, topic);
    const other = path === "message-subscription" ? `${subscription}-other` : undefined;
    if (other) await subscribe(other, topic);
    const ids = await publish(topic, path.startsWith("message") ? 1 : 5);
    await deadAndPaused(subscription, ids.length);
    if (other) await deadAndPaused(other, ids.length);

    switch (path) {
      case "message": {
        const answer = await admin.post(`/v1/messages/${ids[0]}/resend`, {});
        assert.deepEqual([answer.status, answer.body], [200, { resent: 1 }]);
        break;
      }
      case "message-subscription": {
        const answer = await admin.post(`/v1/messages/${ids[0]}/resend`, { subscription });
        assert.deepEqual([answer.status, answer.body], [200, { resent: 1 }]);
        break;
      }
      case "resend-dead": {
        const answer = await admin.post(`/v1/subscriptions/${subscription}/resend-dead`, { batchSize: 2 });
        assert.deepEqual([answer.status, answer.body], [200, { resent: 5, batches: 3 }]);
        break;
      }
      case "resend-dead-jobs": {
        const started = await admin.post(`/v1/subscriptions/${subscription}/resend-dead-jobs`, { batchSize: 2 });
        assert.equal(started.status, 202);
        const job = await waitFor("the job to finish", async () => {
          const j = (await admin.get(`/v1/jobs/${started.body.id}`)).body;
          return j.state !== "running" ? j : null;
        });
        assert.deepEqual([job.state, job.done, job.total, job.batches], ["succeeded", 5, 5, 3]);
        break;
      }
    }
    return { subscription, ids, other };
  }

  /** What every re-sent delivery must look like: pending, due, on a fresh cycle. */
  function assertFreshCycle(rows: Record<string, unknown>[], n: number): void {
    assert.equal(rows.length, n);
    for (const row of rows) {
      assert.equal(row.state, "pending");
      assert.equal(row.due_now, true, "due at once");
      assert.equal(row.retry_base, row.attempts, "a new retry cycle: its attempts start from here");
      assert.equal(row.attempts, 1, "the history is kept");
      assert.equal(row.first_attempt_at, null, "the retry window starts again");
      assert.deepEqual([row.dead_at, row.dead_reason, row.delivered_at, row.lease_owner, row.resend_due], [null, null, null, null, false]);
    }
  }

  /** Once none of the deliveries that died is dead any more, the subscription's alert is resolved (within an alert interval). */
  async function alertResolved(subscription: string): Promise<void> {
    await waitFor(`${subscription}'s alert resolved`, async () => {
      const c = await counts(subscription);
      return c.open === 0 && c.resolved === 1;
    });
  }

  /** Resumed with its endpoint up, every re-sent delivery arrives, as its second attempt. */
  async function resumeAndDeliver(subscription: string, ids: string[]): Promise<void> {
    down.delete(`/${subscription}`);
    assert.equal((await admin.patch(`/v1/subscriptions/${subscription}`, { enabled: true })).status, 200);
    await waitFor(`${subscription} delivered`, async () => (await counts(subscription)).delivered === ids.length);
    for (const id of ids) {
      const answered = receiver.received.filter((r) => r.id === id && r.path === `/${subscription}`);
      assert.deepEqual(
        answered.map((r) => [r.attempt, r.status]),
        [
          [1, 500],
          [2, 200],
        ],
      );
    }
  }

  test("re-sending one message brings its dead delivery back on a fresh cycle; nothing dead left, its subscription's alert is resolved", async () => {
    const { subscription, ids } = await resendVia("message");
    assertFreshCycle(await rowsOf(subscription), 1);
    await alertResolved(subscription);
    await resumeAndDeliver(subscription, ids);
  });

  test("re-sending one message to one subscription re-sends that delivery only, and resolves only that subscription's alert", async () => {
    const { subscription, ids, other } = await resendVia("message-subscription");
    assertFreshCycle(await rowsOf(subscription), 1);
    await alertResolved(subscription);
    const untouched = await counts(other!);
    assert.deepEqual([untouched.dead, untouched.open, untouched.resolved], [1, 1, 0]);
    await resumeAndDeliver(subscription, ids);
  });

  test("POST /v1/subscriptions/:name/resend-dead re-sends every dead delivery in batches and resolves its subscription's alert", async () => {
    const { subscription, ids } = await resendVia("resend-dead");
    assertFreshCycle(await rowsOf(subscription), 5);
    await alertResolved(subscription);
    await resumeAndDeliver(subscription, ids);
  });

  test("a re-send job re-sends every dead delivery in batches and resolves its subscription's alert", async () => {
    const { subscription, ids } = await resendVia("resend-dead-jobs");
    assertFreshCycle(await rowsOf(subscription), 5);
    await alertResolved(subscription);
    await resumeAndDeliver(subscription, ids);
  });

  test("every re-send path leaves the same delivery rows", async () => {
    const leftBy = new Map<ResendPath, Record<string, unknown>[]>();
    for (const path of PATHS) leftBy.set(path, await rowsOf((await resendVia(path)).subscription));
    const [first, ...rest] = PATHS;
    const expected = leftBy.get(first!)![0];
    for (const path of [first!, ...rest]) {
      for (const row of leftBy.get(path)!) assert.deepEqual(row, expected, `${path} leaves what ${first} leaves`);
    }
  });

  /** `POST …/resend-dead` with the headers it answers. */
  async function resendDead(subscription: string, body: unknown, prefer?: string) {
    const headers: Record<string, string> = { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" };
    if (prefer) headers.prefer = prefer;
    const response = await fetch(`${service.url}/v1/subscriptions/${subscription}/resend-dead`, { method: "POST", headers, body: JSON.stringify(body) });
    return { status: response.status, headers: response.headers, body: await response.json() };
  }

  /**
   * Runs `fn` while every batch of a re-send job after its first goes through `action` (PL/pgSQL)
   * first: a trigger on the job's progress, in this test's own database.
   */
  async function afterFirstBatch<T>(action: string, fn: () => Promise<T>): Promise<T> {
    await sql.query(`create function test_after_first_batch() returns trigger language plpgsql as $$
      begin
        if old.batches >= 1 and new.done > old.done then ${action}; end if;
        return new;
      end $$`);
    await sql.query("create trigger test_after_first_batch before update on jobs for each row execute function test_after_first_batch()");
    try {
      return await fn();
    } finally {
      await sql.query("drop trigger test_after_first_batch on jobs");
      await sql.query("drop function test_after_first_batch()");
    }
  }

  test("POST …/resend-dead answers 202 with what was done and the job when the job outlasts the wait; the job goes on", async () => {
    const subscription = "slow-resend";
    await subscribe(subscription, "t.slow");
    await publish("t.slow", 6);
    await deadAndPaused(subscription, 6);
    const holder = await sql.connect();
    try {
      await holder.query("select pg_advisory_lock(740042)");
      const answer = await afterFirstBatch("perform pg_advisory_xact_lock_shared(740042)", async () => {
        const answer = await resendDead(subscription, { batchSize: 2 }, "respond-async, wait=1");
        await holder.query("select pg_advisory_unlock(740042)");
        return answer;
      });
      assert.equal(answer.status, 202);
      assert.deepEqual(answer.body, { resent: 2, batches: 1, job: answer.body.job });
      assert.equal(answer.headers.get("location"), `/v1/jobs/${answer.body.job}`);
      assert.equal(answer.headers.get("preference-applied"), "wait=1");
      const job = await waitFor("the job to finish", async () => {
        const j = (await admin.get(`/v1/jobs/${answer.body.job}`)).body;
        return j.state === "succeeded" ? j : null;
      });
      assert.deepEqual([job.done, job.total, job.batches], [6, 6, 3]);
    } finally {
      await holder.query("select pg_advisory_unlock_all()");
      holder.release();
    }
    assertFreshCycle(await rowsOf(subscription), 6);
  });

  test("POST …/resend-dead answers 503 with what was done when its job fails; called again, it re-sends the rest", async () => {
    const subscription = "failing-resend";
    await subscribe(subscription, "t.failing");
    await publish("t.failing", 6);
    await deadAndPaused(subscription, 6);
    const failed = await afterFirstBatch("raise exception 'refused by the test'", () => resendDead(subscription, { batchSize: 2 }));
    assert.equal(failed.status, 503);
    assert.equal(failed.body.error.code, "unavailable");
    assert.equal(failed.body.error.resent, 2);
    assert.match(failed.body.error.message, /refused by the test/);
    assert.equal((await admin.get(`/v1/jobs/${failed.body.error.job}`)).body.state, "failed");
    assert.deepEqual((await admin.post(`/v1/subscriptions/${subscription}/resend-dead`, { batchSize: 2 })).body, { resent: 4, batches: 2 });
    assertFreshCycle(await rowsOf(subscription), 6);
  });

  test("POST …/resend-dead re-sends at most `limit`, answers 0 with nothing dead, and 404 for an unknown subscription", async () => {
    const subscription = "limited-resend";
    await subscribe(subscription, "t.limited");
    await publish("t.limited", 5);
    await deadAndPaused(subscription, 5);
    assert.deepEqual((await admin.post(`/v1/subscriptions/${subscription}/resend-dead`, { limit: 3, batchSize: 2 })).body, { resent: 3, batches: 2 });
    const left = await counts(subscription);
    assert.deepEqual([left.dead, left.pending], [2, 3]);
    // Two of the deliveries it counted are still dead: its alert stays open.
    assert.deepEqual([left.open, left.resolved, left.counted], [1, 0, 5]);
    assert.deepEqual((await admin.post(`/v1/subscriptions/${subscription}/resend-dead`)).body, { resent: 2, batches: 1 });
    await alertResolved(subscription);
    const nothing = await admin.post(`/v1/subscriptions/${subscription}/resend-dead`, {});
    assert.deepEqual([nothing.status, nothing.body], [200, { resent: 0, batches: 0 }]);
    assert.equal((await admin.post("/v1/subscriptions/nope/resend-dead", {})).status, 404);
  });
});
