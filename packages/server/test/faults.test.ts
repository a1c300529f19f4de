import { after, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import pg from "pg";
import pino from "pino";
import { storableText } from "../src/domain/storableText.ts";
import { compileNetworkPolicy, effectiveAddress } from "../src/domain/networkPolicy.ts";
import { ResultWriter } from "../src/delivery/resultWriter.ts";
import { isDataError } from "../src/store/db.ts";
import { createPool } from "../src/store/db.ts";
import type { AttemptResult } from "../src/domain/delivery.ts";
import { claimDueDeliveries, recordAttempts } from "../src/store/deliveryAttempts.ts";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, spawnService, startTestService, type RunningService } from "@tidings/testkit/service";
import { Receiver } from "@tidings/testkit/receiver";
import { startMisbehavingReceiver, type MisbehavingReceiver } from "./support/misbehaving.ts";
import { api } from "./support/api.ts";
import { waitFor } from "@tidings/testkit/wait";

const cleanups: Array<() => Promise<unknown>> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
});

async function database(label: string): Promise<TestDatabase> {
  const db = await createTestDatabase(label);
  cleanups.push(() => db.drop());
  return db;
}
async function service(db: TestDatabase, env: Record<string, string> = {}): Promise<RunningService> {
  const s = await startTestService(db.url, env);
  cleanups.push(() => s.close());
  return s;
}
let misbehaving: MisbehavingReceiver | null = null;
async function misbehavingReceiver(): Promise<MisbehavingReceiver> {
  if (!misbehaving) {
    misbehaving = await startMisbehavingReceiver();
    const started = misbehaving;
    cleanups.push(() => started.stop());
  }
  return misbehaving;
}
async function sql<T = Record<string, unknown>>(db: TestDatabase, text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  try {
    return (await client.query(text, values)).rows as T[];
  } finally {
    await client.end();
  }
}
const deliveryOf = (message: { deliveries: Array<{ subscription: string }> }, subscription: string) =>
  message.deliveries.find((d) => d.subscription === subscription) as { state: string; attempts: number; lastError: string | null } | undefined;

test("storable text: NUL removed, unpaired surrogates replaced, cut without splitting a pair", () => {
  assert.equal(storableText("plain", 10), "plain");
  assert.equal(storableText("a\u0000b\u0000", 10), "ab");
  assert.equal(storableText("x\ud800y", 10), "x\ufffdy");
  assert.equal(storableText("x\udc00", 10), "x\ufffd");
  assert.equal(storableText("ab\ud83d\ude00c", 10), "ab\ud83d\ude00c", "a pair is kept");
  assert.equal(storableText("ab\ud83d\ude00c", 3), "ab", "a pair that does not fit whole is left out");
  assert.equal(storableText("abcdef", 4), "abcd");
  assert.equal(storableText(`${"\u0000".repeat(1000)}z`, 5), "z");
});

test("network policy: metadata and link-local refused by default, mapped IPv6 judged as IPv4, deny and allow lists", () => {
  const open = compileNetworkPolicy({ allow: [], deny: [] });
  for (const address of [
    "169.254.169.254",
    "169.254.170.2",
    "100.100.100.200",
    "192.0.0.192",
    "fd00:ec2::254",
    "fe80::1",
    "::ffff:169.254.169.254",
    "169.254.1.1",
  ]) {
    assert.match(open(address) ?? "allowed", /link-local or cloud metadata/, address);
  }
  for (const address of ["127.0.0.1", "::1", "10.1.2.3", "192.168.1.1", "93.184.216.34", "0.0.0.0"]) assert.equal(open(address), null, address);
  const noLoopback = compileNetworkPolicy({ allow: [], deny: ["127.0.0.0/8", "::1/128"] });
  for (const address of [
    "127.0.0.1",
    "127.1.2.3",
    "::1",
    "::ffff:127.0.0.1",
    "::ffff:7f00:1",
    "0:0:0:0:0:ffff:7f00:1",
    "0.0.0.0",
    "::",
    "[::1]",
    "::127.0.0.1",
  ]) {
    assert.match(noLoopback(address) ?? "allowed", /is in TIDINGS_ENDPOINT_DENY/, address);
  }
  assert.equal(noLoopback("10.0.0.1"), null);
  const onlyTen = compileNetworkPolicy({ allow: ["10.0.0.0/8"], deny: [] });
  assert.equal(onlyTen("10.9.9.9"), null);
  assert.match(onlyTen("192.168.0.1") ?? "", /not in TIDINGS_ENDPOINT_ALLOW/);
  assert.match(onlyTen("169.254.169.254") ?? "", /metadata/);
  const wide = compileNetworkPolicy({ allow: ["0.0.0.0/0"], deny: [] });
  assert.match(wide("169.254.169.254") ?? "", /metadata/, "a catch-all allow does not open metadata addresses");
  const ecs = compileNetworkPolicy({ allow: ["169.254.170.2/32"], deny: [] });
  assert.equal(ecs("169.254.170.2"), null, "named exactly, it is allowed");
  assert.match(ecs("169.254.169.254") ?? "", /metadata/);
  assert.deepEqual(effectiveAddress("::ffff:10.0.0.1"), { address: "10.0.0.1", type: "ipv4" });
  assert.equal(effectiveAddress("example.com"), null);
});

test("a result batch refused for its data is split: the others are written, the culprit without its text", async () => {
  const db = await database("faults_writer");
  const s = await service(db, { TIDINGS_POLL_INTERVAL: "1h" });
  const admin = api(s.url, ADMIN_KEY);
  // Paused: its deliveries stay pending for this test to claim and finish by hand.
  await admin.post("/v1/subscriptions", { name: "held", topic: "t.held", endpoint: { type: "http", url: "http://127.0.0.1:9/" }, enabled: false });
  const ids: string[] = [];
  for (let i = 0; i < 9; i++) ids.push((await admin.post("/v1/messages", { topic: "t.held", payload: { i } })).body.id);
  const pool = createPool(db.url, 2);
  cleanups.push(() => pool.end());
  const subscriptionId = (await sql<{ id: number }>(db, "select id from subscriptions where name = 'held'"))[0]!.id;
  const leased = await claimDueDeliveries(pool, "writer-test", 60_000, 100, [subscriptionId]);
  assert.equal(leased.length, 9);
  const results: AttemptResult[] = leased.map((d, i) => ({
    deliveryId: d.deliveryId,
    messageDay: d.messageDay,
    lease: d.lease!,
    messageId: d.message.id,
    subscriptionId,
    attempt: 1,
    outcome: "failed",
    startedAt: new Date(),
    latencyMs: 1,
    statusCode: 500,
    // Text that bypassed storableText: PostgreSQL refuses NUL in text (SQLSTATE 22P05).
    error: i === 4 ? "HTTP 500: bad\u0000body" : `HTTP 500: fine ${i}`,
    nextAttemptAt: new Date(Date.now() + 3_600_000),
    deadReason: null,
    firstAttemptAt: new Date(),
  }));
  await assert.rejects(recordAttempts(pool, results), (e: unknown) => isDataError(e), "the whole batch is refused as it is");
  let written = 0;
  const writer = new ResultWriter(
    (batch) => recordAttempts(pool, batch),
    (counts) => (written += counts.failed),
    pino({ level: "silent" }),
  );
  for (const r of results) writer.add(r);
  await waitFor("every result written", () => written === 9, 10_000);
  await writer.drain();
  const rows = await sql<{ id: string; last_error: string; attempts: number; lease_owner: string | null }>(
    db,
    "select id::text, last_error, attempts, lease_owner from deliveries where subscription_id = $1 order by id",
    [subscriptionId],
  );
  assert.equal(rows.length, 9);
  for (const row of rows) {
    assert.equal(row.attempts, 1);
    assert.equal(row.lease_owner, null);
  }
  const culprit = rows.find((r) => r.id === String(results[4]!.deliveryId))!;
  assert.equal(culprit.last_error, "the attempt's error text could not be stored");
  assert.equal(rows.filter((r) => r.last_error.startsWith("HTTP 500: fine")).length, 8);
});

test("a receiver answering 500 with a NUL byte in its body: healthy deliveries beside it are delivered exactly once", async () => {
  const db = await database("faults_nul");
  // A short lease: were results not recorded, healthy deliveries would be sent again within 2 s.
  const s = await service(db, { TIDINGS_LEASE: "2s" });
  const admin = api(s.url, ADMIN_KEY);
  const receiver = await misbehavingReceiver();
  await admin.post("/v1/subscriptions", { name: "nul", topic: "t.nul", endpoint: { type: "http", url: `${receiver.url}/nul` }, retry: { schedule: ["1h"] } });
  await admin.post("/v1/subscriptions", { name: "ok-a", topic: "t.nul", endpoint: { type: "http", url: `${receiver.url}/ok-a` } });
  await admin.post("/v1/subscriptions", { name: "ok-b", topic: "t.nul", endpoint: { type: "http", url: `${receiver.url}/ok-b` } });
  await admin.post("/v1/subscriptions", { name: "huge", topic: "t.nul", endpoint: { type: "http", url: `${receiver.url}/huge` }, retry: { schedule: ["1h"] } });
  const ids = await Promise.all(
    Array.from({ length: 30 }, async (_, i) => (await admin.post("/v1/messages", { topic: "t.nul", payload: { i } })).body.id as string),
  );
  for (const id of ids) {
    const message = await waitFor(
      `results of ${id} recorded`,
      async () => {
        const m = (await admin.get(`/v1/messages/${id}`)).body;
        const settled = deliveryOf(m, "nul")?.attempts === 1 && deliveryOf(m, "huge")?.attempts === 1;
        return deliveryOf(m, "ok-a")?.state === "delivered" && deliveryOf(m, "ok-b")?.state === "delivered" && settled ? m : null;
      },
      20_000,
    );
    const bad = deliveryOf(message, "nul")!;
    assert.equal(bad.state, "pending");
    assert.equal(bad.lastError, "HTTP 500: badbody \ufffd\ufffd\ufffd end");
    assert.equal(deliveryOf(message, "huge")!.lastError, "HTTP 200: the answer is longer than 1048576 bytes", "a 200 MB answer is cut off");
  }
  for (const id of ids) {
    assert.equal(receiver.count("/ok-a", id), 1, `ok-a got ${id} once`);
    assert.equal(receiver.count("/ok-b", id), 1, `ok-b got ${id} once`);
    assert.equal(receiver.count("/nul", id), 1, `nul was tried once for ${id} (next try in 1h)`);
  }
  const attempts = (await admin.get(`/v1/messages/${ids[0]}/attempts`)).body.items as Array<{ error: string | null }>;
  assert.ok(attempts.some((a) => a.error === "HTTP 500: badbody \ufffd\ufffd\ufffd end"));
});

test("a dripping receiver: other subscriptions' deliveries go on at once, and SIGTERM ends the process within 10 s", async () => {
  const db = await database("faults_drip");
  const receiver = await misbehavingReceiver();
  const fast = await new Receiver().start();
  cleanups.push(() => fast.stop());
  const child = await spawnService({
    DATABASE_URL: db.url,
    TIDINGS_DELIVERY_CONCURRENCY: "16",
    TIDINGS_DELIVERY_TIMEOUT: "4s",
    TIDINGS_POLL_INTERVAL: "200ms",
  });
  cleanups.push(() => child.kill("SIGKILL"));
  const admin = api(child.url, ADMIN_KEY);
  assert.equal(
    (
      await admin.post("/v1/subscriptions", {
        name: "drip",
        topic: "t.drip",
        endpoint: { type: "http", url: `${receiver.url}/drip` },
        retry: { schedule: ["500ms"] },
      })
    ).status,
    201,
  );
  const fastSub = await admin.post("/v1/subscriptions", { name: "fast", topic: "t.fast", endpoint: { type: "http", url: `${fast.url}/fast` }, maxInFlight: 8 });
  assert.equal(fastSub.body.maxInFlight, 8);
  assert.equal((await admin.get("/v1/subscriptions/drip")).body.maxInFlight, null, "null: the service default");
  const zero = await admin.patch("/v1/subscriptions/drip", { maxInFlight: 0 });
  assert.equal(zero.status, 400);
  assert.equal(zero.body.error.field, "maxInFlight");
  // 40 dripping deliveries: without a per-subscription cap they would take all 16 slots for 4 s each.
  await admin.post("/v1/messages/batch", { messages: Array.from({ length: 40 }, (_, i) => ({ topic: "t.drip", payload: { i } })) });
  await waitFor("the dripping receiver holding attempts", () => receiver.total("/drip") >= 4, 10_000);
  const latencies: number[] = [];
  for (let i = 0; i < 20; i++) {
    const sentAt = Date.now();
    const id = (await admin.post("/v1/messages", { topic: "t.fast", payload: { i } })).body.id as string;
    const got = await waitFor(`fast message ${i}`, () => fast.received.find((r) => r.id === id), 10_000, 5);
    latencies.push(got.at - sentAt);
  }
  const worst = Math.max(...latencies);
  console.log(`fast deliveries beside a dripping receiver: worst ${worst} ms, median ${latencies.sort((a, b) => a - b)[10]} ms`);
  assert.ok(worst < 1500, `every fast delivery within 1.5 s (worst ${worst} ms); a dripping attempt lasts 4 s`);
  // The dripping attempts end as timeouts at the deadline (4 s), not never.
  const dripId = (
    await sql<{ message_id: string }>(
      db,
      "select d.message_id from deliveries d join subscriptions s on s.id = d.subscription_id where s.name = 'drip' limit 1",
    )
  )[0]!.message_id;
  const failed = await waitFor(
    "a dripping attempt recorded as a timeout",
    async () => {
      const items = (await admin.get(`/v1/messages/${dripId}/attempts`)).body.items as Array<{ error: string | null; latencyMs: number }>;
      return items.find((a) => a.error === "timeout after 4s");
    },
    15_000,
  );
  assert.ok(failed.latencyMs >= 3900 && failed.latencyMs < 5500, `the attempt took ${failed.latencyMs} ms`);
  await waitFor(
    "attempts in flight at the dripping receiver",
    async () => Number((await sql<{ n: string }>(db, "select count(*) as n from deliveries where lease_owner is not null"))[0]!.n) > 0,
    10_000,
  );
  const stopAt = Date.now();
  await child.kill("SIGTERM");
  const took = Date.now() - stopAt;
  console.log(`SIGTERM with dripping attempts in flight: exited in ${took} ms (code ${child.child.exitCode})`);
  assert.ok(took < 10_000, `exited within 10 s (took ${took} ms)`);
  assert.equal(child.child.exitCode, 0);
  const held = await sql<{ n: string }>(db, "select count(*) as n from deliveries where lease_owner is not null");
  assert.equal(Number(held[0]!.n), 0, "every lease was given back");
});

test("a check URL answering 200 MB or dripping: the check is logged failed within the deadline, the process is fine", async () => {
  const db = await database("faults_check");
  const s = await service(db, { TIDINGS_DELIVERY_TIMEOUT: "2s", TIDINGS_CHECK_INTERVAL: "1h" });
  const admin = api(s.url, ADMIN_KEY);
  const receiver = await misbehavingReceiver();
  const huge = api(s.url, (await admin.post("/v1/apps", { name: "huge", checkUrl: `${receiver.url}/huge` })).body.apiKey);
  const drip = api(s.url, (await admin.post("/v1/apps", { name: "drip", checkUrl: `${receiver.url}/drip-check` })).body.apiKey);
  const rssBefore = process.memoryUsage().rss;
  const hugeId = (await huge.post("/v1/messages", { topic: "t.check", payload: {}, prepare: true, checkAfter: "100ms" })).body.id as string;
  const dripId = (await drip.post("/v1/messages", { topic: "t.check", payload: {}, prepare: true, checkAfter: "100ms" })).body.id as string;
  type Check = { error: string | null; latencyMs: number; answer: string | null };
  const hugeCheck = await waitFor(
    "the huge answer's check logged",
    async () => ((await admin.get(`/v1/messages/huge%2F${hugeId}/checks`)).body.items as Check[])[0],
    15_000,
  );
  const dripCheck = await waitFor(
    "the dripping answer's check logged",
    async () => ((await admin.get(`/v1/messages/drip%2F${dripId}/checks`)).body.items as Check[])[0],
    15_000,
  );
  assert.equal(hugeCheck.answer, null);
  assert.match(hugeCheck.error ?? "", /longer than 65536 bytes/);
  assert.ok(hugeCheck.latencyMs < 2000, `the huge answer was cut short (${hugeCheck.latencyMs} ms)`);
  assert.equal(dripCheck.answer, null);
  assert.equal(dripCheck.error, "timeout after 2s");
  assert.ok(dripCheck.latencyMs >= 1900 && dripCheck.latencyMs < 3500, `the dripping answer was given up at the deadline (${dripCheck.latencyMs} ms)`);
  const grown = (process.memoryUsage().rss - rssBefore) / 1_048_576;
  assert.ok(grown < 100, `memory grew by ${grown.toFixed(0)} MB`);
  assert.equal((await admin.get("/healthz")).status, 200);
  for (const id of [`huge%2F${hugeId}`, `drip%2F${dripId}`]) assert.equal((await admin.get(`/v1/messages/${id}`)).body.state, "prepared");
});

test("endpoint network policy at connect time: names resolving into denied ranges are never reached", async () => {
  const db = await database("faults_policy");
  const s = await service(db, { TIDINGS_ENDPOINT_DENY: "127.0.0.0/8,::1/128" });
  const admin = api(s.url, ADMIN_KEY);
  const receiver = await new Receiver().start();
  cleanups.push(() => receiver.stop());
  const port = new URL(receiver.url).port;
  // Loopback spelled as a literal is refused when set.
  for (const host of ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "0.0.0.0", "127.1", "2130706433", "0x7f.1"]) {
    const answer = await admin.post("/v1/subscriptions", { name: "literal", topic: "t.p", endpoint: { type: "http", url: `http://${host}:${port}/x` } });
    assert.equal(answer.status, 400, host);
    assert.equal(answer.body.error.field, "endpoint.url", host);
    assert.match(answer.body.error.message, /refused by the endpoint network policy/, host);
  }
  // A name is judged on the address it resolves to, at every connection.
  assert.equal(
    (
      await admin.post("/v1/subscriptions", {
        name: "by-name",
        topic: "t.p",
        endpoint: { type: "http", url: `http://localhost:${port}/x` },
        retry: { schedule: ["1h"] },
      })
    ).status,
    201,
  );
  assert.equal(
    (
      await admin.post("/v1/subscriptions", {
        name: "redis-by-name",
        topic: "t.p",
        endpoint: { type: "redis", url: "redis://localhost:6379/0", stream: "tidings-policy" },
        retry: { schedule: ["1h"] },
      })
    ).status,
    201,
  );
  assert.equal((await admin.post("/v1/apps", { name: "by-name", checkUrl: `http://localhost:${port}/check` })).status, 201);
  const id = (await admin.post("/v1/messages", { topic: "t.p", payload: {} })).body.id as string;
  const message = await waitFor("both attempts failed", async () => {
    const m = (await admin.get(`/v1/messages/${id}`)).body;
    return deliveryOf(m, "by-name")?.attempts === 1 && deliveryOf(m, "redis-by-name")?.attempts === 1 ? m : null;
  });
  assert.match(
    deliveryOf(message, "by-name")!.lastError ?? "",
    /^refused by the endpoint network policy: localhost resolves to (127\.0\.0\.1|::1) is in TIDINGS_ENDPOINT_DENY/,
  );
  assert.match(
    deliveryOf(message, "redis-by-name")!.lastError ?? "",
    /refused by the endpoint network policy: localhost resolves to (127\.0\.0\.1|::1) is in TIDINGS_ENDPOINT_DENY/,
  );
  assert.equal(deliveryOf(message, "by-name")!.state, "pending", "retried on its schedule");
  assert.equal(receiver.received.length, 0, "the receiver was never reached");
});

test("a re-send while an attempt is in flight starts no second attempt, and the first attempt's result is kept", async () => {
  const db = await database("faults_fence");
  const s = await service(db);
  const admin = api(s.url, ADMIN_KEY);
  // A receiver that holds requests open until told how to answer.
  let open = 0;
  let mostOpen = 0;
  const held: ServerResponse[] = [];
  const requests: number[] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      requests.push(Number(req.headers["tidings-attempt"]));
      open++;
      mostOpen = Math.max(mostOpen, open);
      res.on("close", () => open--);
      if (requests.length === 1) held.push(res);
      else res.writeHead(200).end("ok");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  cleanups.push(
    () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(resolve);
      }),
  );
  const probe = await new Receiver().start();
  cleanups.push(() => probe.stop());
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  await admin.post("/v1/subscriptions", { name: "fence", topic: "t.fence", endpoint: { type: "http", url } });
  await admin.post("/v1/subscriptions", { name: "probe", topic: "t.probe", endpoint: { type: "http", url: `${probe.url}/probe` } });
  const id = (await admin.post("/v1/messages", { topic: "t.fence", payload: {} })).body.id as string;
  await waitFor("the first attempt held open", () => held.length === 1);
  const leaseBefore = (await sql<{ lease_owner: string }>(db, "select lease_owner from deliveries where message_id = $1", [id]))[0]!.lease_owner;
  assert.equal((await admin.post(`/v1/messages/${id}/resend`, {})).status, 200);
  // A delayed message is taken by a claim after the re-send: once it is delivered, a poll has
  // run that would have taken the re-sent delivery had its lease been cleared.
  const probeId = (await admin.post("/v1/messages", { topic: "t.probe", payload: {}, delay: "300ms" })).body.id as string;
  await waitFor("the probe delivered by a later claim", () => probe.counts.get(probeId) === 1);
  const row = (await sql<{ lease_owner: string; resend_due: boolean }>(db, "select lease_owner, resend_due from deliveries where message_id = $1", [id]))[0]!;
  assert.equal(row.lease_owner, leaseBefore, "the attempt in flight keeps its lease");
  assert.equal(row.resend_due, true);
  assert.deepEqual(requests, [1], "no second attempt while the first is in flight");
  held[0]!.writeHead(500).end("not now");
  const message = await waitFor("delivered by the re-send", async () => {
    const m = (await admin.get(`/v1/messages/${id}`)).body;
    return deliveryOf(m, "fence")?.state === "delivered" ? m : null;
  });
  assert.equal(deliveryOf(message, "fence")!.attempts, 2);
  assert.deepEqual(requests, [1, 2]);
  assert.equal(mostOpen, 1, "never two attempts at once");
  const log = (await admin.get(`/v1/messages/${id}/attempts`)).body.items as Array<{ attempt: number; outcome: string; statusCode: number }>;
  assert.deepEqual(
    log.map((a) => [a.attempt, a.outcome, a.statusCode]),
    [
      [1, "failed", 500],
      [2, "delivered", 200],
    ],
  );
});
