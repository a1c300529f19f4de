import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import pino from "pino";
import { createRecoverJob } from "../src/store/resendJobs.ts";
import { ResendDeadJobs } from "../src/workers/resendDeadJobs.ts";
import type { RunningService } from "../src/runtime/service.ts";
import { api } from "./support/api.ts";
import { outageWorld, type OutageWorld } from "./support/outageWorld.ts";
import type { Receiver } from "@tidings/testkit/receiver";
import { ADMIN_KEY, runTidings } from "@tidings/testkit/service";
import { waitFor } from "@tidings/testkit/wait";

/** After an outage: waiting retries made due now, and a window of dead and failed deliveries re-sent. */
describe("retry now and recover", () => {
  let world: OutageWorld;
  let service: RunningService;
  let receiver: Receiver;
  let admin: ReturnType<typeof api>;
  let sql: pg.Pool;
  /** Receiver paths answered 500. */
  let down: Set<string>;

  before(async () => {
    world = await outageWorld("recover");
    ({ service, receiver, admin, sql, down } = world);
  });
  after(async () => {
    await world?.close();
  });

  /** A subscription to topic `t.<name>` whose endpoint is down, with the given retry policy. */
  async function subscribe(name: string, retry: { schedule: string[]; maxAttempts: number }): Promise<void> {
    down.add(`/${name}`);
    const created = await admin.post("/v1/subscriptions", { name, topic: `t.${name}`, endpoint: { type: "http", url: `${receiver.url}/${name}` }, retry });
    assert.equal(created.status, 201);
  }

  /** `n` messages to `t.<name>`, the full ids. */
  async function publish(name: string, n: number, extra: Record<string, unknown> = {}): Promise<string[]> {
    const sent = await admin.post("/v1/messages/batch", { messages: Array.from({ length: n }, (_, i) => ({ topic: `t.${name}`, payload: { i }, ...extra })) });
    assert.equal(sent.status, 201);
    return sent.body.items.map((m: { id: string }) => m.id);
  }

  /** Each delivery of the subscription by message id: state, attempts, whether due now. */
  async function deliveries(subscription: string) {
    const { rows } = await sql.query(
      `select d.message_id, d.state, d.attempts, d.retry_base, d.next_attempt_at <= now() as due
         from deliveries d join subscriptions s on s.id = d.subscription_id where s.name = $1`,
      [subscription],
    );
    return new Map(rows.map((r) => [r.message_id as string, r]));
  }

  /** The subscription's unresolved delivery_dead alert (one at most), as the API answers it. */
  async function deadAlert(subscription: string): Promise<{ count: number; examples: Array<{ messageId: string }> } | undefined> {
    const items = (await admin.get(`/v1/alerts?condition=delivery_dead&subscription=${subscription}`)).body.items;
    assert.ok(items.length <= 1, "one unresolved alert per subscription");
    return items[0];
  }

  /** Waits until every one of `ids` is in `state` after `attempts` attempts (dead ones counted by the subscription's alert). */
  async function settled(subscription: string, ids: string[], state: "pending" | "dead", attempts: number): Promise<void> {
    await waitFor(`${ids.length} ${state} deliveries of ${subscription} after ${attempts} attempt(s)`, async () => {
      const rows = await deliveries(subscription);
      return ids.every((id) => {
        const d = rows.get(id);
        return d && d.state === state && d.attempts === attempts;
      });
    });
    if (state === "dead") await waitFor(`${subscription}'s alert`, async () => ((await deadAlert(subscription))?.count ?? 0) >= ids.length);
  }

  /** The database's clock: messages' creation times are its. */
  const dbNow = async (): Promise<string> => (await sql.query("select clock_timestamp() as t")).rows[0].t.toISOString();

  test("retry-pending makes far-off retries due now and they are delivered promptly; a delayed message and a leased delivery keep their time", async () => {
    await subscribe("later", { schedule: ["1h"], maxAttempts: 5 });
    const [leased, ...ids] = await publish("later", 4);
    await settled("later", [leased!, ...ids], "pending", 1);
    const [delayed] = await publish("later", 1, { delay: "1h" });
    // One retry taken by another node and in flight there: its lease (and its attempt) stands.
    await sql.query("update deliveries set lease_owner = 'another-node/1', next_attempt_at = now() + interval '30 seconds' where message_id = $1", [leased]);
    down.delete("/later");

    const asked = Date.now();
    const answer = await admin.post("/v1/subscriptions/later/retry-pending");
    assert.deepEqual([answer.status, answer.body], [200, { retried: 3 }]);
    await waitFor("the 3 retries delivered", () => ids.every((id) => receiver.deliveredIds().has(id)));
    const tookMs = Date.now() - asked;
    assert.ok(tookMs < 5000, `delivered ${tookMs} ms after retry-pending, not an hour later`);
    const rows = await waitFor("the deliveries recorded delivered", async () => {
      const now = await deliveries("later");
      return ids.every((id) => now.get(id)!.state === "delivered") ? now : null;
    });
    for (const id of ids) assert.deepEqual([rows.get(id)!.state, rows.get(id)!.attempts], ["delivered", 2]);
    assert.deepEqual([rows.get(delayed!)!.state, rows.get(delayed!)!.due, rows.get(delayed!)!.attempts], ["pending", false, 0], "the delayed message waits");
    assert.deepEqual(
      [rows.get(leased!)!.state, rows.get(leased!)!.due, rows.get(leased!)!.attempts],
      ["pending", false, 1],
      "the leased one is left to its lease",
    );
    assert.deepEqual((await admin.post("/v1/subscriptions/later/retry-pending")).body, { retried: 0 });
  });

  /**
   * One subscription with dead deliveries (counted by its alert) and failed ones (pending, waiting
   * an hour for a retry) created inside a window, and dead ones created before and after it.
   */
  async function outage(name: string) {
    await subscribe(name, { schedule: [], maxAttempts: 1 });
    const before = await publish(name, 2);
    await settled(name, before, "dead", 1);
    const since = await dbNow();
    const dead = await publish(name, 3);
    await settled(name, dead, "dead", 1);
    // The same endpoint now retried hourly: these fail once and wait.
    assert.equal((await admin.patch(`/v1/subscriptions/${name}`, { retry: { schedule: ["1h"], maxAttempts: 5 } })).status, 200);
    const failed = await publish(name, 2);
    await settled(name, failed, "pending", 1);
    const until = await dbNow();
    assert.equal((await admin.patch(`/v1/subscriptions/${name}`, { retry: { schedule: [], maxAttempts: 1 } })).status, 200);
    const afterwards = await publish(name, 2);
    await settled(name, afterwards, "dead", 1);
    return { since, until, inside: [...dead, ...failed], outside: [...before, ...afterwards], dead };
  }

  /**
   * Makes every re-send job's batch after the first wait on advisory lock 740043 while the
   * returned release is not called (a trigger on the job's progress, in this test's database).
   */
  async function holdAfterFirstBatch(): Promise<() => Promise<void>> {
    const holder = await sql.connect();
    await holder.query("select pg_advisory_lock(740043)");
    await sql.query(`create function test_hold_batches() returns trigger language plpgsql as $$
      begin
        if old.batches >= 1 and new.done > old.done then perform pg_advisory_xact_lock_shared(740043); end if;
        return new;
      end $$`);
    await sql.query("create trigger test_hold_batches before update on jobs for each row execute function test_hold_batches()");
    return async () => {
      await holder.query("select pg_advisory_unlock_all()");
      holder.release();
      await sql.query("drop trigger test_hold_batches on jobs");
      await sql.query("drop function test_hold_batches()");
    };
  }

  /** `POST …/recover` with the headers it answers. */
  async function recover(subscription: string, body: unknown, prefer?: string) {
    const headers: Record<string, string> = { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" };
    if (prefer) headers.prefer = prefer;
    const response = await fetch(`${service.url}/v1/subscriptions/${subscription}/recover`, { method: "POST", headers, body: JSON.stringify(body) });
    return { status: response.status, headers: response.headers, body: await response.json() };
  }

  test("recover re-sends the window's dead and failed deliveries as a job with progress, and leaves the rest", async () => {
    const { since, until, inside, outside } = await outage("window");
    assert.equal((await admin.patch("/v1/subscriptions/window", { enabled: false })).status, 200);

    const release = await holdAfterFirstBatch();
    let started: Awaited<ReturnType<typeof recover>>;
    let again: Awaited<ReturnType<typeof recover>>;
    try {
      started = await recover("window", { since, until, batchSize: 2 }, "wait=1");
      // Asked again while it runs: the same job, nothing started beside it.
      again = await recover("window", { since, until, batchSize: 2 }, "wait=0");
    } finally {
      await release();
    }
    assert.equal(started.status, 202);
    assert.equal(started.headers.get("location"), `/v1/jobs/${started.body.id}`);
    assert.equal(started.headers.get("idempotent-replayed"), null);
    assert.deepEqual(
      [started.body.kind, started.body.state, started.body.done, started.body.total, started.body.batches],
      ["recover", "running", 2, 5, 1],
      "its progress after one batch",
    );
    assert.deepEqual([started.body.since, started.body.until], [since, until]);
    assert.equal(again.headers.get("idempotent-replayed"), "true");
    assert.equal(again.body.id, started.body.id);

    const progress: number[] = [];
    const job = await waitFor("the recovery job to finish", async () => {
      const j = (await admin.get(`/v1/jobs/${started.body.id}`)).body;
      progress.push(j.done);
      return j.state === "succeeded" ? j : null;
    });
    assert.deepEqual([job.done, job.total, job.batches], [5, 5, 3]);
    assert.deepEqual(
      progress,
      [...progress].sort((a, b) => a - b),
      "progress only moves forward",
    );

    const rows = await deliveries("window");
    for (const id of inside) {
      const d = rows.get(id)!;
      assert.deepEqual([d.state, d.due, d.retry_base], ["pending", true, d.attempts], `${id}: due now on a fresh cycle`);
    }
    for (const id of outside) assert.equal(rows.get(id)!.state, "dead", "outside the window: untouched");
    assert.ok(await deadAlert("window"), "those outside the window are still dead: the subscription's alert stays open");

    // Asked a third time, after it succeeded: the same job again, and nothing re-sent twice.
    const third = await recover("window", { since, until, batchSize: 2 });
    assert.deepEqual([third.status, third.body.id, third.body.done, third.headers.get("idempotent-replayed")], [200, job.id, 5, "true"]);
    assert.equal((await admin.get("/v1/jobs?subscription=window")).body.items.length, 1);

    down.delete("/window");
    assert.equal((await admin.patch("/v1/subscriptions/window", { enabled: true })).status, 200);
    await waitFor("the window's deliveries delivered", () => inside.every((id) => receiver.deliveredIds().has(id)));
    for (const id of inside) {
      const got = receiver.received.filter((r) => r.id === id);
      assert.deepEqual(
        got.map((r) => [r.attempt, r.status]),
        [
          [1, 500],
          [2, 200],
        ],
        `${id} sent once more`,
      );
    }
    for (const id of outside) assert.equal(receiver.deliveredIds().has(id), false);
  });

  test("recover without until takes everything since; a window with nothing in it is a finished job at once", async () => {
    const { since, inside, outside } = await outage("open");
    assert.equal((await admin.patch("/v1/subscriptions/open", { enabled: false })).status, 200);
    const answer = await recover("open", { since });
    assert.deepEqual([answer.status, answer.body.state, answer.body.total, answer.body.done, answer.body.until], [200, "succeeded", 7, 7, null]);
    const rows = await deliveries("open");
    const afterwards = outside.slice(2);
    for (const id of [...inside, ...afterwards]) assert.equal(rows.get(id)!.retry_base, rows.get(id)!.attempts, `${id} re-sent`);
    for (const id of outside.slice(0, 2)) assert.equal(rows.get(id)!.state, "dead");

    const empty = await recover("open", { since: "2001-01-01T00:00:00Z", until: "2001-01-02T00:00:00Z" });
    assert.deepEqual([empty.status, empty.body.state, empty.body.total, empty.body.batches], [200, "succeeded", 0, 0]);
  });

  test("a recovery left by a node that died is adopted by another and finished, each delivery re-sent once", async () => {
    const { since, until, inside, outside } = await outage("adopted");
    assert.equal((await admin.patch("/v1/subscriptions/adopted", { enabled: false })).status, 200);
    const { id: subscriptionId } = (await sql.query("select id from subscriptions where name = 'adopted'")).rows[0];
    // Made by a node that then died: nobody runs it, and its heartbeat is old.
    const { job } = await createRecoverJob(sql, "recover-left-behind", subscriptionId, { since, until }, 2, "dead-node");
    await sql.query("update jobs set heartbeat_at = now() - interval '1 hour' where id = $1", [job.id]);
    const rescuer = new ResendDeadJobs(sql, "rescuer", () => {}, pino({ level: "silent" }), { staleMs: 1000, sweepMs: 50 });
    rescuer.start();
    try {
      const finished = await waitFor("the adopted job to finish", async () => {
        const j = (await admin.get(`/v1/jobs/${job.id}`)).body;
        return j.state === "succeeded" ? j : null;
      });
      assert.deepEqual([finished.kind, finished.done, finished.total, finished.batches], ["recover", 5, 5, 3]);
    } finally {
      await rescuer.stop();
    }
    const rows = await deliveries("adopted");
    for (const id of inside) assert.deepEqual([rows.get(id)!.state, rows.get(id)!.retry_base], ["pending", rows.get(id)!.attempts]);
    for (const id of outside) assert.equal(rows.get(id)!.state, "dead");
  });

  test("a recovery closes the subscription's open circuit: what it re-sends goes now, not at the next probe", async () => {
    down.add("/tripped");
    const created = await admin.post("/v1/subscriptions", {
      name: "tripped",
      topic: "t.tripped",
      endpoint: { type: "http", url: `${receiver.url}/tripped` },
      retry: { schedule: [], maxAttempts: 1 },
      circuit: { failures: 3, probeEvery: "1h" },
    });
    assert.equal(created.status, 201);
    const since = await dbNow();
    const ids = await publish("tripped", 3);
    await settled("tripped", ids, "dead", 1);
    const health = async () => (await admin.get("/v1/subscriptions/tripped")).body.health;
    await waitFor("the circuit open", async () => (await health()).state === "open");

    down.delete("/tripped");
    const answer = await recover("tripped", { since });
    assert.deepEqual([answer.status, answer.body.state, answer.body.done], [200, "succeeded", 3]);
    const h = await health();
    assert.equal(h.state, "closed", "closed by the recovery, an hour before its next probe");
    assert.equal(h.history[0].event, "reset");
    assert.match(h.history[0].detail, /recovered/);
    await waitFor("the recovered deliveries delivered", () => ids.every((id) => receiver.deliveredIds().has(id)));
  });

  test("recover refuses bad input naming the field, and writes nothing", async () => {
    await subscribe("strict", { schedule: [], maxAttempts: 1 });
    const jobs = async () => (await sql.query("select count(*)::int as n from jobs")).rows[0].n;
    const before = await jobs();
    const cases: Array<[unknown, string]> = [
      [{}, "since"],
      [{ since: "yesterday" }, "since"],
      [{ since: "2026-12-05T10:00:00" }, "since"], // no zone: which instant is meant?
      [{ since: "0000-01-01T00:00:00Z" }, "since"],
      [{ since: "2026-12-05T10:00:00Z", until: 5 }, "until"],
      [{ since: "2026-12-05T10:00:00Z", until: "2026-12-05T10:00:00Z" }, "until"],
      [{ since: "2026-12-05T10:00:00Z", until: "2026-12-05T09:00:00Z" }, "until"],
      [{ since: "2026-12-05T10:00:00Z", batchSize: 0 }, "batchSize"],
      [{ since: "2026-12-05T10:00:00Z", sinse: "x" }, "sinse"],
    ];
    for (const [body, field] of cases) {
      const answer = await recover("strict", body);
      assert.equal(answer.status, 400, JSON.stringify(body));
      assert.deepEqual([answer.body.error.code, answer.body.error.field], ["invalid_request", field], JSON.stringify(body));
    }
    assert.equal((await recover("nope", { since: "2026-12-05T10:00:00Z" })).status, 404);
    assert.equal((await admin.post("/v1/subscriptions/nope/retry-pending")).status, 404);
    assert.equal(await jobs(), before, "no job was made");
    const paths = (await api(service.url, null).get("/openapi.json")).body.paths;
    assert.equal(paths["/v1/subscriptions/{name}/recover"].post.requestBody.content["application/json"].schema.properties.since.format, "date-time");
    assert.ok(paths["/v1/subscriptions/{name}/retry-pending"].post, "both are in the OpenAPI document");
  });

  test("an app cannot retry or recover a subscription (subscriptions are the admin's)", async () => {
    await subscribe("guarded", { schedule: ["1h"], maxAttempts: 5 });
    const ids = await publish("guarded", 1);
    await settled("guarded", ids, "pending", 1);
    const app = await admin.post("/v1/apps", { name: "meddler" });
    const meddler = api(service.url, app.body.apiKey);
    const retry = await meddler.post("/v1/subscriptions/guarded/retry-pending");
    const recovery = await meddler.post("/v1/subscriptions/guarded/recover", { since: "2001-01-01T00:00:00Z" });
    assert.deepEqual([retry.status, retry.body.error.code, recovery.status, recovery.body.error.code], [403, "forbidden", 403, "forbidden"]);
    assert.equal((await api(service.url, null).post("/v1/subscriptions/guarded/retry-pending")).status, 401);
    const row = (await deliveries("guarded")).get(ids[0]!)!;
    assert.deepEqual([row.state, row.due], ["pending", false], "still waiting for its retry");
    assert.equal(
      (await sql.query("select count(*)::int as n from jobs j join subscriptions s on s.id = j.subscription_id where s.name = 'guarded'")).rows[0].n,
      0,
    );
  });

  test("the CLI: tidings retry-pending and tidings recover against a running service, printing the job's progress", async () => {
    /** `tidings <args>` as a process of its own, pointed at this service; a failing exit is an error. */
    const tidings = async (...args: string[]) => {
      const ran = await runTidings(args, { TIDINGS_URL: service.url, TIDINGS_ADMIN_KEY: ADMIN_KEY });
      assert.equal(ran.code, 0, `tidings ${args.join(" ")}: ${ran.stderr}`);
      return ran;
    };

    await subscribe("cli-later", { schedule: ["1h"], maxAttempts: 5 });
    const waiting = await publish("cli-later", 2);
    await settled("cli-later", waiting, "pending", 1);
    down.delete("/cli-later");
    const retried = await tidings("retry-pending", "cli-later");
    assert.equal(retried.stdout, "cli-later: 2 pending deliveries due now\n");
    await waitFor("the retries delivered", () => waiting.every((id) => receiver.deliveredIds().has(id)));

    const { since, until, inside, outside } = await outage("cli-window");
    down.delete("/cli-window");
    const recovered = await tidings("recover", "cli-window", "--since", since, "--until", until, "--batch-size", "2");
    const lines = recovered.stdout.trim().split("\n");
    assert.match(lines[0]!, /^cli-window: recovery job \S+$/);
    assert.equal(lines.at(-1), "  5/5 re-sent (100%), 3 batches, succeeded");
    await waitFor("the window's deliveries delivered", () => inside.every((id) => receiver.deliveredIds().has(id)));
    assert.equal(
      outside.some((id) => receiver.deliveredIds().has(id)),
      false,
    );
    const twice = await tidings("recover", "cli-window", "--since", since, "--until", until);
    assert.match(twice.stdout, /\(asked before: the same job\)\n {2}5\/5 re-sent \(100%\), 3 batches, succeeded\n$/);

    const env = { TIDINGS_URL: service.url, TIDINGS_ADMIN_KEY: ADMIN_KEY };
    const refused = await runTidings(["recover", "cli-window", "--since", "noon"], env);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /400 .*\(field since\)/);
    const usage = await runTidings(["recover", "cli-window"], env);
    assert.deepEqual([usage.code, /--since is required/.test(usage.stderr)], [2, true]);
  });
});
