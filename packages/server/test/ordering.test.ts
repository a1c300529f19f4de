import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Agent, request } from "undici";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, spawnService, startTestService, type RunningService, type ServiceProcess } from "@tidings/testkit/service";
import { Receiver } from "@tidings/testkit/receiver";
import { waitFor } from "@tidings/testkit/wait";
import { api } from "./support/api.ts";
import { sendUntilAcknowledged } from "./support/producer.ts";

const TOTAL = Number(process.env.TIDINGS_ORDERING_MESSAGES ?? 10_000);
const KEYS = 100;

let database: TestDatabase;
let service: RunningService;
let receiver: Receiver;
let admin: ReturnType<typeof api>;

before(async () => {
  database = await createTestDatabase("ordering");
  service = await startTestService(database.url);
  receiver = await new Receiver().start();
  admin = api(service.url, ADMIN_KEY);
});
after(async () => {
  await service.close();
  await receiver.stop();
  await database.drop();
});

/** Ids the receiver answered 2xx, in the order of their first 2xx, for one path. */
const firstDeliveries = (path: string): string[] => [
  ...new Set(receiver.received.filter((r) => r.path === path && r.status >= 200 && r.status < 300).map((r) => r.id)),
];
/** Alerts of a condition (grouped by subscription) with `messageId` among their examples: unresolved ones, or of any state. */
const alertsWith = async (condition: string, messageId: string, state: "unresolved" | "all" = "unresolved"): Promise<number> =>
  (await admin.get(`/v1/alerts?state=${state}&condition=${condition}`)).body.items.filter((a: { examples: Array<{ messageId: string }> }) =>
    a.examples.some((e) => e.messageId === messageId),
  ).length;
const openAlerts = (condition: string, messageId: string): Promise<number> => alertsWith(condition, messageId);

async function subscribe(name: string, extra: Record<string, unknown>): Promise<void> {
  const r = await admin.post("/v1/subscriptions", { name, topic: `t.${name}`, endpoint: { type: "http", url: `${receiver.url}/${name}` }, ...extra });
  assert.equal(r.status, 201, JSON.stringify(r.body));
}
async function publish(name: string, id: string, key: string | null, extra: Record<string, unknown> = {}): Promise<void> {
  const r = await admin.post("/v1/messages", { id, topic: `t.${name}`, key, payload: { id }, ...extra });
  assert.equal(r.status, 201, JSON.stringify(r.body));
}

test("a subscription shows its ordering and onDead, defaults none and block; other values are refused naming the field", async () => {
  await subscribe("plain", {});
  const plain = await admin.get("/v1/subscriptions/plain");
  assert.equal(plain.body.ordering, "none");
  assert.equal(plain.body.onDead, "block");
  const changed = await admin.patch("/v1/subscriptions/plain", { ordering: "key", onDead: "skip" });
  assert.equal(changed.status, 200);
  assert.deepEqual([changed.body.ordering, changed.body.onDead], ["key", "skip"]);
  const bad = await admin.patch("/v1/subscriptions/plain", { ordering: "fifo" });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.field, "ordering");
  const badDead = await admin.post("/v1/subscriptions", { name: "bad", topic: "t", endpoint: { type: "http", url: receiver.url }, onDead: "drop" });
  assert.equal(badDead.status, 400);
  assert.equal(badDead.body.error.field, "onDead");
  const openapi = (await api(service.url, null).get("/openapi.json")).body;
  assert.ok(openapi.paths["/v1/deliveries/{id}/skip"]?.post, "the skip route is in the OpenAPI document");
  const create = JSON.stringify(openapi.paths["/v1/subscriptions"].post);
  assert.ok(create.includes('"ordering"') && create.includes('"onDead"'), "ordering and onDead are in the OpenAPI document");
});

test("onDead block: a dead delivery holds its key with a key_blocked alert until re-sent, skipped or deleted; other keys and keyless messages go on", async () => {
  let failing = new Set(["b-1"]);
  receiver.behaviour = (r) => (r.path === "/block" && failing.has(r.id) ? 500 : 200);
  await subscribe("block", { ordering: "key", retry: { schedule: [], maxAttempts: 1 } });
  for (const id of ["b-0", "b-1", "b-2"]) await publish("block", id, "k1");
  await publish("block", "b-other", "k2");
  await publish("block", "b-keyless", null);
  await waitFor("the key_blocked alert of b-1", async () => (await openAlerts("key_blocked", "b-1")) === 1, 10_000);
  await waitFor(
    "the other key and the keyless message delivered",
    () => ["b-other", "b-keyless"].every((id) => firstDeliveries("/block").includes(id)),
    10_000,
  );
  assert.deepEqual(
    firstDeliveries("/block").filter((id) => id.startsWith("b-") && id.length === 3),
    ["b-0"],
    "b-2 waits behind the dead b-1",
  );

  // Re-sent, b-1 goes, then b-2; the alert is resolved.
  failing = new Set(["b-3"]);
  assert.equal((await admin.post("/v1/messages/b-1/resend", {})).status, 200);
  await waitFor("b-2 delivered after the re-send", () => firstDeliveries("/block").includes("b-2"), 10_000);
  assert.deepEqual(
    firstDeliveries("/block").filter((id) => /^b-\d$/.test(id)),
    ["b-0", "b-1", "b-2"],
  );
  await waitFor("the key_blocked alert resolved", async () => (await openAlerts("key_blocked", "b-1")) === 0, 10_000);

  // Skipped, b-3 stays undelivered and b-4 goes.
  await publish("block", "b-3", "k1");
  await publish("block", "b-4", "k1");
  await waitFor("the key_blocked alert of b-3", async () => (await openAlerts("key_blocked", "b-3")) === 1, 10_000);
  assert.ok(!firstDeliveries("/block").includes("b-4"));
  const dead = (await admin.get("/v1/messages/b-3")).body.deliveries[0];
  assert.equal(dead.state, "dead");
  const waiting = (await admin.get("/v1/messages/b-4")).body.deliveries[0];
  assert.equal((await admin.post(`/v1/deliveries/${waiting.id}/skip`, {})).status, 409, "only a dead delivery can be skipped");
  assert.equal((await admin.post("/v1/deliveries/999999999/skip", {})).status, 404);
  const skipped = await admin.post(`/v1/deliveries/${dead.id}/skip`, {});
  assert.deepEqual([skipped.status, skipped.body.skipped], [200, true]);
  await waitFor("b-4 delivered after the skip", () => firstDeliveries("/block").includes("b-4"), 10_000);
  // No key blocked any more; and b-4's success resolved the dead-letter alert that counted b-3.
  await waitFor("b-3's key_blocked alert resolved", async () => (await openAlerts("key_blocked", "b-3")) === 0, 10_000);
  await waitFor("b-3's delivery_dead alert resolved", async () => (await openAlerts("delivery_dead", "b-3")) === 0, 10_000);
  assert.ok(!firstDeliveries("/block").includes("b-3"));

  // Deleted, b-5 lets b-6 go.
  failing = new Set(["b-5"]);
  await publish("block", "b-5", "k1");
  await publish("block", "b-6", "k1");
  await waitFor("the key_blocked alert of b-5", async () => (await openAlerts("key_blocked", "b-5")) === 1, 10_000);
  assert.equal((await admin.delete("/v1/messages/b-5")).status, 204);
  await waitFor("b-6 delivered after b-5 was deleted", () => firstDeliveries("/block").includes("b-6"), 10_000);
  assert.deepEqual(
    firstDeliveries("/block").filter((id) => /^b-\d$/.test(id)),
    ["b-0", "b-1", "b-2", "b-4", "b-6"],
  );
});

test("a head marked dead by hand holds its key with a key_blocked alert, as one that died of failing", async () => {
  receiver.behaviour = (r) => (r.path === "/marked" && r.id === "m-0" ? 500 : 200);
  await subscribe("marked", { ordering: "key", retry: { schedule: ["1h"], maxAttempts: 5 } });
  await publish("marked", "m-0", "k");
  await publish("marked", "m-1", "k");
  await waitFor("m-0's first attempt", () => receiver.received.some((r) => r.id === "m-0"), 10_000);
  const marked = await admin.post("/v1/messages/m-0/dead", { reason: "the receiver will never take it" });
  assert.deepEqual([marked.status, marked.body.dead], [200, 1]);
  assert.equal(await openAlerts("key_blocked", "m-0"), 1, "the key waits on it, and says so");
  assert.ok(!firstDeliveries("/marked").includes("m-1"), "m-1 waits behind it");
  const head = (await admin.get("/v1/messages/m-0")).body.deliveries[0];
  assert.equal((await admin.post(`/v1/deliveries/${head.id}/skip`, {})).status, 200);
  await waitFor("m-1 delivered after the skip", () => firstDeliveries("/marked").includes("m-1"), 10_000);
  await waitFor("the key_blocked alert resolved", async () => (await openAlerts("key_blocked", "m-0")) === 0, 10_000);
});

test("onDead skip: the next message of the key goes as soon as the one before is dead, with no key_blocked alert", async () => {
  receiver.behaviour = (r) => (r.path === "/skip" && r.id === "s-1" ? 500 : 200);
  await subscribe("skip", { ordering: "key", onDead: "skip", retry: { schedule: ["100ms"], maxAttempts: 2 } });
  for (const id of ["s-0", "s-1", "s-2"]) await publish("skip", id, "k");
  await waitFor("s-2 delivered", () => firstDeliveries("/skip").includes("s-2"), 10_000);
  assert.deepEqual(firstDeliveries("/skip"), ["s-0", "s-2"]);
  const s1 = receiver.received.filter((r) => r.id === "s-1");
  assert.equal(s1.length, 2, "s-1 got its two attempts");
  assert.ok(s1[1]!.at <= receiver.received.find((r) => r.id === "s-2")!.at, "s-2 went after s-1's last attempt");
  assert.equal(await alertsWith("key_blocked", "s-1", "all"), 0, "no key was ever blocked");
  await waitFor("s-1 counted by a dead-letter alert", async () => (await alertsWith("delivery_dead", "s-1", "all")) === 1, 10_000);
});

test("an unordered subscription, and keyless messages on an ordered one, are not held behind a failing message", async () => {
  receiver.behaviour = (r) => (r.id === "u-0" || r.id === "n-0" ? 500 : 200);
  await subscribe("unordered", { retry: { schedule: ["1h"] } });
  await subscribe("keyless", { ordering: "key", retry: { schedule: ["1h"] } });
  await publish("unordered", "u-0", "k");
  await waitFor("u-0 tried", () => receiver.received.some((r) => r.id === "u-0"), 5_000);
  await publish("unordered", "u-1", "k");
  await publish("keyless", "n-0", null);
  await waitFor("n-0 tried", () => receiver.received.some((r) => r.id === "n-0"), 5_000);
  await publish("keyless", "n-1", null);
  await waitFor("u-1 and n-1 delivered", () => firstDeliveries("/unordered").includes("u-1") && firstDeliveries("/keyless").includes("n-1"), 5_000);
  assert.equal((await admin.get("/v1/messages/u-0")).body.deliveries[0].state, "pending");
  assert.equal((await admin.get("/v1/messages/n-0")).body.deliveries[0].state, "pending");
});

test("a delayed message takes its place in its key when it is due, a prepared one when it is committed", async () => {
  receiver.behaviour = () => 200;
  await subscribe("places", { ordering: "key" });
  await publish("places", "d-0", "k", { delay: "1500ms" });
  await publish("places", "d-1", "k");
  await publish("places", "p-0", "j", { prepare: true, checkAfter: "1h" });
  await publish("places", "p-1", "j");
  await waitFor("d-1 and p-1 delivered", () => ["d-1", "p-1"].every((id) => firstDeliveries("/places").includes(id)), 5_000);
  assert.equal((await admin.post("/v1/messages/p-0/commit")).status, 200);
  await publish("places", "p-2", "j");
  await waitFor("d-0, p-0 and p-2 delivered", () => ["d-0", "p-0", "p-2"].every((id) => firstDeliveries("/places").includes(id)), 10_000);
  const order = firstDeliveries("/places");
  assert.ok(order.indexOf("d-1") < order.indexOf("d-0"), "the delayed d-0 comes after d-1, accepted before it was due");
  assert.ok(order.indexOf("p-1") < order.indexOf("p-0") && order.indexOf("p-0") < order.indexOf("p-2"), "p-0 takes its place when committed");
});

/**
 * A receiver that answers after a short random time and fails 20% of requests at random; it
 * records, per key, the first 2xx of each message and whether two requests of one key ever
 * overlapped.
 */
class OrderingReceiver {
  readonly first = new Map<string, number[]>();
  private readonly seen = new Set<string>();
  private readonly inFlight = new Map<string, number>();
  overlaps = 0;
  requests = 0;
  private server: Server | null = null;
  url = "";

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        const key = String(body.key);
        this.requests++;
        const now = (this.inFlight.get(key) ?? 0) + 1;
        this.inFlight.set(key, now);
        if (now > 1) this.overlaps++;
        setTimeout(() => {
          this.inFlight.set(key, this.inFlight.get(key)! - 1);
          const fail = Math.random() < 0.2;
          if (!fail && !this.seen.has(body.id)) {
            this.seen.add(body.id);
            const list = this.first.get(key) ?? [];
            list.push(body.payload.n);
            this.first.set(key, list);
          }
          res.writeHead(fail ? 500 : 200).end(fail ? "nope" : "ok");
        }, Math.random() * 3);
      });
    });
    this.server.keepAliveTimeout = 60_000;
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  get delivered(): number {
    return this.seen.size;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

test(`${TOTAL} messages over ${KEYS} keys, two processes, a receiver failing 20%, one process SIGKILLed: every key's first deliveries in order, none missing`, {
  timeout: 300_000,
}, async () => {
  const db = await createTestDatabase("ordering-crash");
  const target = await new OrderingReceiver().start();
  // Short leases so that what the killed process held is taken over quickly.
  const env = { DATABASE_URL: db.url, TIDINGS_LEASE: "2s", TIDINGS_POLL_INTERVAL: "200ms" };
  const nodes: ServiceProcess[] = await Promise.all([spawnService(env), spawnService(env)]);
  const alive = [true, true];
  const agent = new Agent({ connections: KEYS });
  try {
    const created = await api(nodes[0]!.url, ADMIN_KEY).post("/v1/subscriptions", {
      name: "ordered",
      topic: "t.ordered",
      endpoint: { type: "http", url: `${target.url}/hooks` },
      ordering: "key",
      retry: { schedule: ["20ms", "50ms", "100ms"], maxAttempts: 1000 },
    });
    assert.equal(created.status, 201);
    let acked = 0;
    /** How many messages the receiver had taken when the first process was killed (null: not yet). */
    let deliveredAtKill: number | null = null;
    /** Sends until a live node acknowledges it (the next one each turn, a killed one passed over). */
    const send = (key: number, n: number) =>
      sendUntilAcknowledged(
        (t) => {
          const turn = key + n + t;
          return nodes[alive[turn % 2] ? turn % 2 : 1 - (turn % 2)]!.url;
        },
        { id: `o-${key}-${n}`, topic: "t.ordered", key: `k${key}`, payload: { n } },
        agent,
      );
    const started = Date.now();
    // One producer per key, each sending its key's messages one after another: the order the
    // service accepted them is the order of n.
    await Promise.all(
      Array.from({ length: KEYS }, async (_, key) => {
        for (let n = 0; key + n * KEYS < TOTAL; n++) {
          await send(key, n);
          acked++;
          if (deliveredAtKill === null && acked >= TOTAL * 0.4) {
            deliveredAtKill = target.delivered;
            alive[0] = false;
            await nodes[0]!.kill("SIGKILL");
          }
        }
      }),
    );
    assert.ok(deliveredAtKill !== null && deliveredAtKill < TOTAL * 0.5, `killed mid-run, with ${deliveredAtKill} of ${TOTAL} delivered`);
    await assert.rejects(request(`${nodes[0]!.url}/healthz`, { headersTimeout: 2000 }), "the killed process answers nothing");
    await waitFor(`all ${TOTAL} messages delivered`, () => target.delivered >= TOTAL, 240_000, 200);
    const seconds = (Date.now() - started) / 1000;
    let checked = 0;
    for (let key = 0; key < KEYS; key++) {
      const got = target.first.get(`k${key}`) ?? [];
      const expected = Array.from({ length: Math.ceil((TOTAL - key) / KEYS) }, (_, n) => n);
      assert.deepEqual(got, expected, `key k${key}: first deliveries out of order or missing`);
      checked += got.length;
    }
    assert.equal(checked, TOTAL);
    // Not asserted: with leases of 2 s on a loaded machine, an attempt can outlive its lease and
    // meet the next owner's at the receiver (the order of first deliveries holds all the same).
    console.log(
      `ordering: ${TOTAL} messages over ${KEYS} keys in ${seconds.toFixed(1)} s, ${target.requests} requests (20% failed), no key out of order; ` +
        `${target.overlaps} times two requests of one key at the receiver at once`,
    );
  } finally {
    await Promise.all(nodes.map((n) => n.kill("SIGKILL")));
    await agent.close();
    await target.stop();
    await db.drop();
  }
});
