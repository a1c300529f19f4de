import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { createServer, type IncomingHttpHeaders } from "node:http";
import type { AddressInfo } from "node:net";
import { Webhook } from "standardwebhooks";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, startTestService, type RunningService } from "@tidings/testkit/service";
import { Receiver } from "@tidings/testkit/receiver";
import { api } from "./support/api.ts";
import { waitFor } from "@tidings/testkit/wait";

let database: TestDatabase;
let services: RunningService[];
let receiver: Receiver;
/** The producer's check URL: answers (slowly, so overlapping checks of one message would show) from `answers`. */
const checks: Array<{ id: string; checkNo: number; headers: IncomingHttpHeaders; body: string }> = [];
const checker = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", async () => {
    const id = String(req.headers["webhook-id"]);
    checks.push({ id, checkNo: Number(req.headers["tidings-check"]), headers: req.headers, body: Buffer.concat(chunks).toString() });
    const now = (inFlight.get(id) ?? 0) + 1;
    inFlight.set(id, now);
    maxConcurrentChecks = Math.max(maxConcurrentChecks, now);
    await new Promise((r) => setTimeout(r, 60));
    inFlight.set(id, inFlight.get(id)! - 1);
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ status: answers.get(id) ?? "unknown" }));
  });
});
let db: pg.Pool;
let admin: ReturnType<typeof api>;
let app: ReturnType<typeof api>;
let appSecret: string;
/** What the producer's check URL answers, per message id. */
const answers = new Map<string, string>();
/** Checks in flight per message id, and the most ever seen at once. */
const inFlight = new Map<string, number>();
let maxConcurrentChecks = 0;

before(async () => {
  database = await createTestDatabase("tx");
  const env = { TIDINGS_CHECK_INTERVAL: "100ms", TIDINGS_CHECK_LIMIT: "4", TIDINGS_POLL_INTERVAL: "50ms" };
  // Two service processes' worth of schedulers on one database.
  services = [await startTestService(database.url, env), await startTestService(database.url, env)];
  receiver = await new Receiver().start();
  await new Promise<void>((resolve) => checker.listen(0, "127.0.0.1", resolve));
  const checkUrl = `http://127.0.0.1:${(checker.address() as AddressInfo).port}/check`;
  db = new pg.Pool({ connectionString: database.url, max: 2 });
  admin = api(services[0]!.url, ADMIN_KEY);
  const created = await admin.post("/v1/apps", { name: "orders", checkUrl });
  appSecret = created.body.secret;
  app = api(services[1]!.url, created.body.apiKey);
  await admin.post("/v1/subscriptions", { name: "inventory", topic: "order.paid", endpoint: { type: "http", url: `${receiver.url}/inventory` } });
});

after(async () => {
  for (const s of services) await s.close();
  await receiver.stop();
  checker.closeAllConnections();
  checker.close();
  await db.end();
  await database.drop();
});

/** Deliveries of app "orders"'s message `id` (receivers see the full id, `orders/<id>`). */
const deliveredTo = (id: string) => receiver.received.filter((r) => r.id === `orders/${id}`).length;

test("a prepared message is invisible until committed, then delivered at once; commit is idempotent", async () => {
  const prepared = await app.post("/v1/messages", { id: "o-1", topic: "order.paid", key: "1", payload: { sn: 1 }, prepare: true, checkAfter: "1h" });
  assert.equal(prepared.status, 201);
  assert.equal(prepared.body.state, "prepared");
  assert.equal((await app.get("/v1/messages/o-1")).body.deliveries.length, 0);
  const committed = await app.post("/v1/messages/o-1/commit");
  assert.equal(committed.status, 200);
  assert.equal(committed.body.state, "committed");
  await waitFor("delivery of o-1", () => deliveredTo("o-1") === 1);
  assert.equal((await app.post("/v1/messages/o-1/commit")).status, 200);
  const late = await app.post("/v1/messages/o-1/rollback");
  assert.equal(late.status, 409);
  assert.equal(late.body.error.state, "committed");
  // The producer retrying its prepare after a lost reply gets the stored message back.
  assert.equal((await app.post("/v1/messages", { id: "o-1", topic: "order.paid", key: "1", payload: { sn: 1 }, prepare: true, checkAfter: "1h" })).status, 200);
});

test("a rolled back message is never delivered; commit after rollback is 409", async () => {
  await app.post("/v1/messages", { id: "o-2", topic: "order.paid", payload: { sn: 2 }, prepare: true, checkAfter: "1h" });
  assert.equal((await app.post("/v1/messages/o-2/rollback")).body.state, "rolled_back");
  assert.equal((await app.post("/v1/messages/o-2/rollback")).status, 200);
  const commit = await app.post("/v1/messages/o-2/commit");
  assert.equal(commit.status, 409);
  assert.equal(commit.body.error.state, "rolled_back");
  assert.equal((await app.get("/v1/messages/o-2")).body.deliveries.length, 0);
  assert.equal((await admin.post("/v1/messages/orders%2Fo-2/resend")).status, 409);
});

test("POST /v1/messages/commit commits several prepared messages, each with its own result like the single call", async () => {
  const other = api(services[0]!.url, (await admin.post("/v1/apps", { name: "other-many" })).body.apiKey);
  const prepare = (client: typeof app, id: string) =>
    client.post("/v1/messages", { id, topic: "order.paid", key: id, payload: { id }, prepare: true, checkAfter: "1h" });
  for (const id of ["m-1", "m-2", "m-done", "m-back"]) assert.equal((await prepare(app, id)).status, 201);
  assert.equal((await prepare(other, "m-theirs")).status, 201);
  await app.post("/v1/messages/m-done/commit");
  await app.post("/v1/messages/m-back/rollback");

  const answer = await app.post("/v1/messages/commit", { ids: ["m-1", "m-2", "m-done", "m-back", "m-none", "m-theirs"] });
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  const [one, two, done, back, none, theirs] = answer.body.results;
  assert.deepEqual(
    [one, two, done],
    [
      { id: "m-1", state: "committed" },
      { id: "m-2", state: "committed" },
      { id: "m-done", state: "committed" },
    ],
  );
  assert.equal(back.error.code, "conflict");
  assert.equal(back.error.state, "rolled_back");
  assert.equal(none.error.code, "not_found");
  // Another app's id is not in this app's namespace: as if it did not exist.
  assert.equal(theirs.error.code, "not_found");
  // Each committed one is delivered, once; the others are unchanged.
  for (const id of ["m-1", "m-2", "m-done"]) await waitFor(`delivery of ${id}`, () => deliveredTo(id) === 1);
  assert.equal((await app.get("/v1/messages/m-back")).body.state, "rolled_back");
  assert.equal((await other.get("/v1/messages/m-theirs")).body.state, "prepared");
  assert.equal(deliveredTo("m-back") + deliveredTo("m-theirs"), 0);

  const empty = await app.post("/v1/messages/commit", { ids: [] });
  assert.equal(empty.status, 400);
  assert.equal(empty.body.error.field, "ids");
  assert.equal((await app.post("/v1/messages/commit", { ids: ["bad id"] })).body.error.field, "ids[0]");
});

test("only the owning app (or the admin) settles a prepared message: another app gets 404 and changes nothing", async () => {
  const other = api(services[0]!.url, (await admin.post("/v1/apps", { name: "intruder" })).body.apiKey);
  await app.post("/v1/messages", { id: "o-own", topic: "order.paid", payload: { sn: 0 }, prepare: true, checkAfter: "1h" });
  for (const action of ["commit", "rollback"]) {
    for (const ref of ["o-own", "orders%2Fo-own"]) {
      const refused = await other.post(`/v1/messages/${ref}/${action}`);
      assert.equal(refused.status, 404, `${action} ${ref}`);
      assert.equal(refused.body.error.code, "not_found");
    }
  }
  assert.equal((await other.post("/v1/messages/no-such-id/commit")).status, 404);
  assert.equal((await app.get("/v1/messages/o-own")).body.state, "prepared");
  assert.equal((await admin.post("/v1/messages/orders%2Fo-own/commit")).body.state, "committed");
});

test("concurrent commits, repeats and a foreign app's commit in the same instant each get their own answer", async () => {
  const other = api(services[1]!.url, (await admin.post("/v1/apps", { name: "intruder-2" })).body.apiKey);
  const ids = Array.from({ length: 60 }, (_, i) => `o-many-${i}`);
  await app.post("/v1/messages/batch", { messages: ids.map((id) => ({ id, topic: "order.paid", payload: { id }, prepare: true, checkAfter: "1h" })) });
  await app.post("/v1/messages/o-many-59/rollback");
  const answers = await Promise.all([
    ...ids.map((id) => app.post(`/v1/messages/${id}/commit`)),
    ...ids.slice(0, 10).map((id) => app.post(`/v1/messages/${id}/commit`)),
    ...ids.slice(10, 20).map((id) => other.post(`/v1/messages/${id}/commit`)),
  ]);
  const statuses = answers.map((a) => a.status);
  assert.deepEqual(statuses.slice(0, 59), Array(59).fill(200));
  assert.equal(statuses[59], 409);
  assert.deepEqual(statuses.slice(60, 70), Array(10).fill(200));
  assert.deepEqual(statuses.slice(70, 80), Array(10).fill(404));
  await waitFor("59 committed messages delivered once each", () => ids.slice(0, 59).every((id) => deliveredTo(id) === 1));
});

test("an unresolved prepared message is checked back with its app, signed, and the answer applied", async () => {
  answers.set("o-3", "commit");
  answers.set("o-4", "rollback");
  await app.post("/v1/messages", { id: "o-3", topic: "order.paid", payload: { sn: 3 }, prepare: true, checkAfter: "200ms" });
  await app.post("/v1/messages", { id: "o-4", topic: "order.paid", payload: { sn: 4 }, prepare: true, checkAfter: "200ms" });
  await waitFor("o-3 delivered after its check-back", () => deliveredTo("o-3") === 1);
  await waitFor("o-4 rolled back", async () => (await app.get("/v1/messages/o-4")).body.state === "rolled_back");
  const check = checks.find((r) => r.id === "o-3")!;
  const body = new Webhook(appSecret).verify(check.body, {
    "webhook-id": String(check.headers["webhook-id"]),
    "webhook-timestamp": String(check.headers["webhook-timestamp"]),
    "webhook-signature": String(check.headers["webhook-signature"]),
  }) as Record<string, unknown>;
  assert.deepEqual(body, { id: "o-3", topic: "order.paid", tag: null, key: null, payload: { sn: 3 }, checks: 1 });
  const log = (await app.get("/v1/messages/o-3/checks")).body.items;
  assert.deepEqual(
    log.map((c: { check: number; answer: string; statusCode: number }) => [c.check, c.answer, c.statusCode]),
    [[1, "commit", 200]],
  );
  assert.equal(deliveredTo("o-4"), 0);
});

test("a prepared message's checkContext, sent alone or in a batch, comes back in its check-back body as context", async () => {
  answers.set("c-single", "rollback");
  answers.set("c-batch", "rollback");
  answers.set("c-none", "rollback");
  const context = "5b1a8c1e-9d1f-4a57-b7a4-0f6f3c1d2e3f";
  const single = await app.post("/v1/messages", {
    id: "c-single",
    topic: "order.paid",
    payload: {},
    prepare: true,
    checkAfter: "100ms",
    checkContext: context,
  });
  assert.equal(single.status, 201, JSON.stringify(single.body));
  const batch = await app.post("/v1/messages/batch", {
    atomic: false,
    messages: [
      { id: "c-batch", topic: "order.paid", payload: {}, prepare: true, checkAfter: "100ms", checkContext: "other-database" },
      { id: "c-none", topic: "order.paid", payload: {}, prepare: true, checkAfter: "100ms" },
    ],
  });
  assert.equal(batch.status, 201, JSON.stringify(batch.body));
  assert.deepEqual(batch.body.outcomes, ["created", "created"]);
  const stored = await db.query("select id, check_context from messages where id like 'orders/c-%' order by id");
  assert.deepEqual(stored.rows, [
    { id: "orders/c-batch", check_context: "other-database" },
    { id: "orders/c-none", check_context: null },
    { id: "orders/c-single", check_context: context },
  ]);
  // Not part of the content: the same prepare again with another context is a repeat, kept as first stored.
  const again = await app.post("/v1/messages", { id: "c-single", topic: "order.paid", payload: {}, prepare: true, checkAfter: "100ms", checkContext: "x" });
  assert.equal(again.status, 200);
  const sent = async (id: string) => {
    const check = await waitFor(`a check-back of ${id}`, () => checks.find((r) => r.id === id));
    return JSON.parse(check.body) as Record<string, unknown>;
  };
  assert.deepEqual(await sent("c-single"), { id: "c-single", topic: "order.paid", tag: null, key: null, payload: {}, checks: 1, context });
  assert.equal((await sent("c-batch")).context, "other-database");
  assert.ok(!("context" in (await sent("c-none"))), "no context key when none was sent");
  for (const id of ["c-single", "c-batch", "c-none"]) {
    await waitFor(`${id} rolled back`, async () => (await app.get(`/v1/messages/${id}`)).body.state === "rolled_back");
  }
});

test("a producer that answers unknown every time leaves the message in doubt, with an alert; a hand commit delivers it", async () => {
  await app.post("/v1/messages", { id: "o-5", topic: "order.paid", payload: { sn: 5 }, prepare: true, checkAfter: "100ms" });
  const doubtful = await waitFor("o-5 in doubt", async () => {
    const m = (await admin.get("/v1/messages/orders%2Fo-5")).body;
    return m.inDoubtAt ? m : null;
  });
  assert.equal(doubtful.state, "prepared");
  assert.equal(doubtful.checks, 4);
  const log = (await admin.get("/v1/messages/orders%2Fo-5/checks")).body.items;
  assert.deepEqual(
    log.map((c: { check: number; answer: string }) => [c.check, c.answer]),
    [
      [1, "unknown"],
      [2, "unknown"],
      [3, "unknown"],
      [4, "unknown"],
    ],
  );
  assert.ok((await admin.get("/v1/messages?state=in_doubt")).body.items.some((m: { id: string }) => m.id === "o-5"));
  // The app's one message_in_doubt alert counts it, among its examples.
  const [alert] = (await admin.get("/v1/alerts?condition=message_in_doubt&app=orders")).body.items;
  assert.equal(alert.subject, "app orders");
  assert.ok(alert.examples.some((e: { messageId: string }) => e.messageId === "orders/o-5"));
  // No more checks once in doubt.
  assert.equal(checks.filter((r) => r.id === "o-5").length, 4);
  assert.equal((await admin.post("/v1/messages/orders%2Fo-5/commit")).status, 200);
  await waitFor("o-5 delivered", () => deliveredTo("o-5") === 1);
  // None of the app's messages is in doubt any more: its alert is resolved.
  await waitFor("the alert resolved", async () => (await admin.get(`/v1/alerts/${alert.id}`)).body.state === "resolved");
  assert.equal((await admin.get(`/v1/alerts/${alert.id}`)).body.resolveNote, "no message is in doubt any more");
});

test("two service processes never check the same message at the same moment", async () => {
  const ids = Array.from({ length: 20 }, (_, i) => `par-${i}`);
  await app.post("/v1/messages/batch", { messages: ids.map((id) => ({ id, topic: "order.paid", payload: {}, prepare: true, checkAfter: "50ms" })) });
  await waitFor(
    "every message in doubt",
    async () => (await db.query("select count(*)::int as n from messages where id like 'orders/par-%' and in_doubt_at is not null")).rows[0].n === 20,
    30_000,
  );
  assert.equal(maxConcurrentChecks, 1);
  for (const id of ids) {
    const numbers = checks.filter((r) => r.id === id).map((r) => r.checkNo);
    assert.deepEqual(numbers, [1, 2, 3, 4], id);
  }
});

test("bad input to prepare is refused with the field named", async () => {
  const bad = await app.post("/v1/messages", { topic: "order.paid", payload: {}, prepare: true, checkAfter: "soon" });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.field, "checkAfter");
  const notPrepared = await app.post("/v1/messages", { topic: "order.paid", payload: {}, checkAfter: "1s" });
  assert.equal(notPrepared.body.error.field, "checkAfter");
  const refused = async (path: string, body: unknown) => {
    const answer = await app.post(path, body);
    assert.equal(answer.status, 400, JSON.stringify(answer.body));
    return answer.body.error.field;
  };
  assert.equal(await refused("/v1/messages", { topic: "order.paid", payload: {}, checkContext: "db" }), "checkContext");
  assert.equal(await refused("/v1/messages", { topic: "order.paid", payload: {}, prepare: false, checkContext: "db" }), "checkContext");
  assert.equal(await refused("/v1/messages", { topic: "order.paid", payload: {}, prepare: true, checkContext: "d".repeat(201) }), "checkContext");
  assert.equal(await refused("/v1/messages", { topic: "order.paid", payload: {}, prepare: true, checkContext: "" }), "checkContext");
  assert.equal(await refused("/v1/messages", { topic: "order.paid", payload: {}, prepare: true, checkContext: "a\u0000b" }), "checkContext");
  assert.equal(
    await refused("/v1/messages/batch", {
      messages: [
        { topic: "order.paid", payload: {}, prepare: true, checkContext: "d".repeat(200) },
        { topic: "order.paid", payload: {}, checkContext: "db" },
      ],
    }),
    "messages[1].checkContext",
  );
  const longest = await app.post("/v1/messages", { topic: "order.paid", payload: {}, prepare: true, checkAfter: "1h", checkContext: "d".repeat(200) });
  assert.equal(longest.status, 201, "200 characters are fine");
  assert.equal((await app.post("/v1/messages/nope/commit")).status, 404);
});
