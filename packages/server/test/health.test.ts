import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, startTestService, type RunningService } from "@tidings/testkit/service";
import { Receiver } from "@tidings/testkit/receiver";
import { waitFor } from "@tidings/testkit/wait";
import { api } from "./support/api.ts";

// Endpoint health: a subscription's circuit breaker, with real PostgreSQL, a real service and a
// real receiver that goes down and comes back.

/** How long the receiver is down in the outage test (60 s by default). */
const OUTAGE_MS = Number(process.env.TIDINGS_OUTAGE_MS ?? 60_000);
const PROBE_EVERY_MS = 5000;
const FAILURES = 5;

let database: TestDatabase;
let service: RunningService;
let receiver: Receiver;
let admin: ReturnType<typeof api>;
let db: pg.Pool;

before(async () => {
  database = await createTestDatabase("health");
  service = await startTestService(database.url);
  receiver = await new Receiver().start();
  admin = api(service.url, ADMIN_KEY);
  db = new pg.Pool({ connectionString: database.url, max: 2 });
});
after(async () => {
  await service.close();
  await receiver.stop();
  await db.end();
  await database.drop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("a receiver down under steady traffic gets only the probes; nothing goes dead; all is delivered once soon after it is back", {
  timeout: OUTAGE_MS + 120_000,
}, async () => {
  let down = false;
  receiver.behaviour = (r) => (r.path === "/outage" && down ? 503 : 200);
  // A short retry schedule: without the breaker every delivery would be dead within 7 s of the outage.
  const created = await admin.post("/v1/subscriptions", {
    name: "outage",
    topic: "t.outage",
    endpoint: { type: "http", url: `${receiver.url}/outage` },
    retry: { schedule: ["1s", "2s", "4s"] },
    circuit: { failures: FAILURES, probeEvery: `${PROBE_EVERY_MS / 1000}s` },
  });
  assert.equal(created.status, 201);
  assert.deepEqual(created.body.circuit, { failures: FAILURES, failureRatio: null, window: null, minAttempts: null, probeEvery: "5s", pauseAfter: "3d" });

  // Steady traffic: a message every 50 ms, before, during and just after the outage.
  const sent: string[] = [];
  let sending = true;
  const producer = (async () => {
    for (let i = 0; sending; i++) {
      const answer = await admin.post("/v1/messages", { id: `o-${i}`, topic: "t.outage", payload: { i } });
      assert.equal(answer.status, 201);
      sent.push(answer.body.id);
      await sleep(50);
    }
  })();
  await waitFor("deliveries before the outage", () => receiver.deliveredIds().size >= 20);
  down = true;
  const downAt = Date.now();
  const opened = await waitFor("the circuit to open", async () => {
    const s = (await admin.get("/v1/subscriptions/outage")).body;
    return s.health.state !== "closed" ? s.health : null;
  });
  const openedAt = Date.parse(opened.openedAt);
  await sleep(Math.max(0, downAt + OUTAGE_MS - Date.now()));
  const upAt = Date.now();
  down = false;
  await sleep(1000);
  sending = false;
  await producer;

  // Everything sent is delivered, once, within seconds of the receiver's recovery (at most a
  // probe interval until the probe finds it back, then the backlog drains).
  await waitFor("every message delivered", () => sent.every((id) => receiver.deliveredIds().has(id)), PROBE_EVERY_MS + 30_000);
  const deliveredBy = Math.max(...sent.map((id) => receiver.received.find((r) => r.id === id && r.status === 200)!.at));
  assert.ok(deliveredBy - upAt < PROBE_EVERY_MS + 5000, `the backlog drained ${deliveredBy - upAt} ms after the receiver came back`);
  for (const id of sent) {
    assert.equal(receiver.received.filter((r) => r.id === id && r.status === 200).length, 1, `${id} delivered once`);
  }

  // During the outage, once the circuit opened (and the attempts in flight then ended), only probes went out.
  const grace = 1000;
  const atReceiver = receiver.received.filter((r) => r.path === "/outage" && r.at > openedAt + grace && r.at < upAt && r.status !== 200);
  const probesAllowed = Math.ceil((upAt - openedAt) / PROBE_EVERY_MS) + 1;
  assert.ok(atReceiver.length <= probesAllowed, `${atReceiver.length} attempts during the outage, at most ${probesAllowed} probes expected`);
  assert.ok(atReceiver.length >= Math.floor((upAt - openedAt - grace) / PROBE_EVERY_MS) - 1, `${atReceiver.length} probes went out`);
  for (let i = 1; i < atReceiver.length; i++) {
    const gap = atReceiver[i]!.at - atReceiver[i - 1]!.at;
    assert.ok(gap >= PROBE_EVERY_MS - 300, `probes ${gap} ms apart`);
  }
  const { rows } = await db.query(
    `select count(*)::int as n from attempts a join subscriptions s on s.id = a.subscription_id
        where s.name = 'outage' and a.outcome <> 'delivered' and a.started_at > $1 and a.started_at < $2`,
    [new Date(openedAt + grace), new Date(upAt)],
  );
  assert.equal(rows[0].n, atReceiver.length, "the attempt log holds the probes the receiver saw");
  // All failures: the ones that opened the circuit, those in flight then, and the probes.
  const failed = receiver.received.filter((r) => r.path === "/outage" && r.status !== 200).length;
  assert.ok(failed <= FAILURES + 20 + probesAllowed, `${failed} failed attempts in all`);

  const dead = await db.query("select count(*)::int as n from deliveries where state = 'dead'");
  assert.equal(dead.rows[0].n, 0, "nothing went dead");

  const shown = (await admin.get("/v1/subscriptions/outage")).body;
  assert.equal(shown.health.state, "closed");
  assert.deepEqual(
    shown.health.history.map((e: { event: string }) => e.event),
    ["closed", "opened"],
  );
  assert.equal(shown.health.opens, 1);
  // One alert, opened with the circuit and resolved when it closed.
  const alerts = (await admin.get("/v1/alerts?state=all&subscription=outage")).body.items;
  assert.deepEqual(
    alerts.map((a: { condition: string; state: string; resolvedBy: string }) => [a.condition, a.state, a.resolvedBy]),
    [["circuit_open", "resolved", "tidings"]],
  );
  assert.match(alerts[0].resolveNote, /^the circuit closed/);
  const events = await db.query("select event from alert_events where alert_id = $1 order by id", [alerts[0].id]);
  assert.deepEqual(
    events.rows.map((e) => e.event),
    ["opened", "resolved"],
  );
  const metrics = await (await fetch(`${service.url}/metrics`)).text();
  assert.match(metrics, /tidings_circuit_opens_total\{subscription="outage"\} 1/);
  assert.match(metrics, /tidings_circuit_open\{subscription="outage"\} 0/);
});

test("a circuit open longer than pauseAfter pauses its subscription with an alert; resuming delivers what waited", async () => {
  let down = true;
  receiver.behaviour = (r) => (r.path === "/gone" && down ? 500 : 200);
  await admin.post("/v1/subscriptions", {
    name: "gone",
    topic: "t.gone",
    endpoint: { type: "http", url: `${receiver.url}/gone` },
    circuit: { failures: 2, probeEvery: "500ms", pauseAfter: "2s" },
  });
  const ids: string[] = [];
  for (let i = 0; i < 10; i++) ids.push((await admin.post("/v1/messages", { topic: "t.gone", payload: { i } })).body.id);
  const open = await waitFor("the circuit to open", async () => {
    const s = (await admin.get("/v1/subscriptions/gone")).body;
    return s.health.state !== "closed" ? s : null;
  });
  const metrics = await (await fetch(`${service.url}/metrics`)).text();
  assert.match(metrics, /tidings_circuit_open\{subscription="gone"\} 1/);
  assert.equal(open.enabled, true);
  const paused = await waitFor("the subscription paused", async () => {
    const s = (await admin.get("/v1/subscriptions/gone")).body;
    return s.enabled ? null : s;
  });
  assert.ok(Date.parse(paused.updatedAt) - Date.parse(open.health.openedAt) >= 2000, "paused only after pauseAfter");
  assert.equal(paused.health.history[0].event, "auto_paused");
  const alerts = (await admin.get("/v1/alerts?subscription=gone")).body.items;
  const pausedAlert = alerts.find((a: { condition: string }) => a.condition === "subscription_auto_paused");
  assert.match(pausedAlert?.detail ?? "", /paused automatically/);
  // Paused: no probe goes out any more.
  const before = receiver.received.filter((r) => r.path === "/gone").length;
  await sleep(1500);
  assert.equal(receiver.received.filter((r) => r.path === "/gone").length, before, "no attempt while paused");

  down = false;
  const resumed = await admin.patch("/v1/subscriptions/gone", { enabled: true });
  assert.equal(resumed.status, 200);
  await waitFor("what waited delivered", () => ids.every((id) => receiver.deliveredIds().has(id)), 10_000).catch(async (error) => {
    const { rows } = await db.query(
      "select d.state, d.attempts, d.next_attempt_at - now() as due_in, d.lease_owner, d.parked from deliveries d join subscriptions s on s.id = d.subscription_id where s.name = 'gone' and d.state <> 'delivered'",
    );
    const h = await db.query("select h.* from subscription_health h join subscriptions s on s.id = h.subscription_id where s.name = 'gone'");
    throw new Error(`${error}: ${JSON.stringify(rows)} ${JSON.stringify(h.rows)}`);
  });
  const shown = (await admin.get("/v1/subscriptions/gone")).body;
  assert.equal(shown.health.state, "closed");
  assert.equal(shown.health.history[0].event, "reset");
  // Resumed and closed: both its alerts are resolved.
  await waitFor("the subscription's alerts resolved", async () => (await admin.get("/v1/alerts?subscription=gone")).body.items.length === 0);
  assert.equal((await admin.get(`/v1/alerts/${pausedAlert.id}`)).body.resolveNote, "the subscription was resumed");
  const dead = await db.query(
    "select count(*)::int as n from deliveries d join subscriptions s on s.id = d.subscription_id where s.name = 'gone' and d.state = 'dead'",
  );
  assert.equal(dead.rows[0].n, 0);
});

test("circuit options: bad fields are refused naming the field; null turns the breaker off", async () => {
  const bad = await admin.post("/v1/subscriptions", {
    name: "bad-circuit",
    topic: "t.x",
    endpoint: { type: "http", url: `${receiver.url}/x` },
    circuit: { probeEvery: "often" },
  });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.field, "circuit.probeEvery");
  assert.equal((await admin.get("/v1/subscriptions/bad-circuit")).status, 404);
  const off = await admin.post("/v1/subscriptions", { name: "no-circuit", topic: "t.x", endpoint: { type: "http", url: `${receiver.url}/x` }, circuit: null });
  assert.equal(off.status, 201);
  assert.equal(off.body.circuit, null);
  const on = await admin.patch("/v1/subscriptions/no-circuit", { circuit: { failures: 3 } });
  assert.deepEqual(on.body.circuit, { failures: 3, failureRatio: null, window: null, minAttempts: null, probeEvery: "30s", pauseAfter: "3d" });
  for (const [circuit, field] of [
    [{ failureRatio: 1.5 }, "circuit.failureRatio"],
    [{ failureRatio: 0 }, "circuit.failureRatio"],
    [{ failureRatio: 0.5, window: "500ms" }, "circuit.window"],
    [{ failureRatio: 0.5, minAttempts: 0 }, "circuit.minAttempts"],
    [{ window: "1m" }, "circuit.window"],
  ] as const) {
    const refused = await admin.patch("/v1/subscriptions/no-circuit", { circuit });
    assert.equal(refused.status, 400, JSON.stringify(circuit));
    assert.equal(refused.body.error.field, field, JSON.stringify(refused.body));
  }
  // A ratio alone, shown back as given (with the defaults it took) by a later read.
  const ratio = await admin.patch("/v1/subscriptions/no-circuit", { circuit: { failureRatio: 0.25, window: "90s" } });
  assert.equal(ratio.status, 200);
  const shown = (await admin.get("/v1/subscriptions/no-circuit")).body;
  assert.deepEqual(shown.circuit, { failures: null, failureRatio: 0.25, window: "90s", minAttempts: 20, probeEvery: "30s", pauseAfter: "3d" });
  assert.equal(shown.health.window, null);
  const openapi = await (await fetch(`${service.url}/openapi.json`)).text();
  assert.match(openapi, /probeEvery/);
  assert.match(openapi, /failureRatio/);
});

/** A fixed-seed random stream (mulberry32), so a "random" receiver gives the same answers each run. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test("a receiver failing 60% at random opens a failure-ratio circuit but not a count-in-a-row one of the same size", async () => {
  // Each path fails 60% of what it receives, in the order received. Seed 17: 36 of the first 60
  // fail, never fewer than 59% of any first 20 or more, and never more than 4 in a row.
  const streams = new Map([
    ["/flaky-ratio", seeded(17)],
    ["/flaky-count", seeded(17)],
  ]);
  receiver.behaviour = (r) => ((streams.get(r.path)?.() ?? 0) < 0.6 ? 503 : 200);
  const subscription = (name: string, circuit: object) =>
    admin.post("/v1/subscriptions", {
      name,
      topic: "t.flaky",
      endpoint: { type: "http", url: `${receiver.url}/${name}` },
      // One attempt each: the answers are the stream's, one a message.
      retry: { schedule: [], maxAttempts: 1 },
      circuit: { ...circuit, probeEvery: "1h" },
    });
  assert.equal((await subscription("flaky-ratio", { failureRatio: 0.5, window: "10s", minAttempts: 20 })).status, 201);
  assert.equal((await subscription("flaky-count", { failures: 20 })).status, 201);
  const MESSAGES = 60;
  for (let i = 0; i < MESSAGES; i++) assert.equal((await admin.post("/v1/messages", { topic: "t.flaky", payload: { i } })).status, 201);

  const opened = await waitFor("the ratio circuit to open", async () => {
    const s = (await admin.get("/v1/subscriptions/flaky-ratio")).body;
    return s.health.state !== "closed" ? s.health : null;
  }).catch(async (error) => {
    const h = await db.query(
      "select s.name, s.circuit, h.* from subscription_health h join subscriptions s on s.id = h.subscription_id where s.name like 'flaky%'",
    );
    const n = receiver.received.filter((r) => r.path === "/flaky-ratio").map((r) => r.status);
    throw new Error(`${error}: ${JSON.stringify(h.rows)} ${JSON.stringify(n)}`);
  });
  // It opened on the ratio, judged over at least 20 attempts of the window.
  const [, failed, attempts] = /^(\d+) of (\d+) attempts failed within 10s$/.exec(opened.history[0].detail) ?? [];
  assert.ok(Number(attempts) >= 20 && Number(failed) / Number(attempts) >= 0.5, opened.history[0].detail);
  const before = receiver.received.filter((r) => r.path === "/flaky-ratio" && r.at <= Date.parse(opened.openedAt)).length;
  assert.ok(before >= 20, `${before} attempts before it opened`);

  // Every message was tried at the count-in-a-row subscription (36 of 60 failed): its circuit never opened.
  await waitFor("every message tried at the count subscription", async () => {
    const { rows } = await db.query(
      `select count(*)::int as n from deliveries d join subscriptions s on s.id = d.subscription_id
        where s.name = 'flaky-count' and d.state in ('delivered', 'dead')`,
    );
    return rows[0].n === MESSAGES;
  });
  const count = (await admin.get("/v1/subscriptions/flaky-count")).body.health;
  assert.equal(receiver.received.filter((r) => r.path === "/flaky-count" && r.status !== 200).length, 36);
  assert.equal(count.state, "closed");
  assert.equal(count.opens, 0, JSON.stringify(count.history));
  assert.deepEqual(count.history, []);
  // The ratio circuit stayed open: the successes of attempts in flight when it opened did not close it.
  const ratio = (await admin.get("/v1/subscriptions/flaky-ratio")).body.health;
  assert.notEqual(ratio.state, "closed");
  assert.equal(ratio.opens, 1);
});

test("a receiver's 429 with Retry-After holds the whole subscription back, on every node", async () => {
  const other = await startTestService(database.url);
  try {
    let throttledAt = 0;
    receiver.behaviour = (r) => {
      if (r.path !== "/busy") return 200;
      if (throttledAt === 0) {
        throttledAt = Date.now();
        return { status: 429, headers: { "retry-after": "2" } };
      }
      return 200;
    };
    await admin.post("/v1/subscriptions", { name: "busy", topic: "t.busy", endpoint: { type: "http", url: `${receiver.url}/busy` } });
    const first = (await admin.post("/v1/messages", { topic: "t.busy", payload: { first: true } })).body.id;
    await waitFor("the 429", () => throttledAt > 0);
    await waitFor("the 429 recorded", async () => (await admin.get("/v1/subscriptions/busy")).body.health.throttledUntil !== null);
    // Sent through the other process: it pushes its own deliveries, and must hold them too.
    const otherAdmin = api(other.url, ADMIN_KEY);
    // Every process shows the hold in its metrics.
    await waitFor("both processes show the hold", async () =>
      (await Promise.all([service.url, other.url].map(async (url) => (await fetch(`${url}/metrics`)).text()))).every((m) =>
        m.includes('tidings_subscription_throttled{subscription="busy"} 1'),
      ),
    );
    const later: string[] = [];
    for (let i = 0; i < 10; i++) later.push((await otherAdmin.post("/v1/messages", { topic: "t.busy", payload: { i } })).body.id);
    await waitFor("all delivered", () => [first, ...later].every((id) => receiver.deliveredIds().has(id)), 15_000);
    const busy = receiver.received.filter((r) => r.path === "/busy" && r.at > throttledAt);
    const soonest = Math.min(...busy.map((r) => r.at));
    // Retry-After is whole seconds; the service counts from the end of the attempt (a few ms later).
    assert.ok(soonest - throttledAt >= 1990, `the next delivery went ${soonest - throttledAt} ms after the 429`);
    assert.ok(soonest - throttledAt < 4000, `the backlog went ${soonest - throttledAt} ms after the 429`);
    const health = (await admin.get("/v1/subscriptions/busy")).body.health;
    assert.equal(health.state, "closed");
  } finally {
    await other.close();
  }
});
