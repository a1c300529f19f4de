import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, startTestService, type RunningService } from "@tidings/testkit/service";
import { Receiver } from "@tidings/testkit/receiver";
import { api } from "./support/api.ts";
import { waitFor } from "@tidings/testkit/wait";

let database: TestDatabase;
let service: RunningService;
let receiver: Receiver;
let admin: ReturnType<typeof api>;

// The poll interval is long on purpose: retries must go out at their scheduled time, not on a tick.
before(async () => {
  database = await createTestDatabase("retries");
  service = await startTestService(database.url, { TIDINGS_POLL_INTERVAL: "5s" });
  receiver = await new Receiver().start();
  admin = api(service.url, ADMIN_KEY);
});
after(async () => {
  await service.close();
  await receiver.stop();
  await database.drop();
});

const SCHEDULE = [200, 400, 600];
/** Slack for a retry: the result write, the claim and the HTTP round trip on a loaded 2-core box. */
const SLACK_MS = 250;

test("a receiver that fails N times gets the message at attempt N+1, each attempt at its scheduled time", async () => {
  receiver.behaviour = (r, n) => (r.path === "/flaky" && n <= 3 ? 500 : 200);
  await admin.post("/v1/subscriptions", {
    name: "flaky",
    topic: "t.flaky",
    endpoint: { type: "http", url: `${receiver.url}/flaky` },
    retry: { schedule: SCHEDULE.map((ms) => `${ms}ms`) },
  });
  const sent = await admin.post("/v1/messages", { topic: "t.flaky", payload: { n: 1 } });
  const id = sent.body.id;
  await waitFor("attempt 4", () => receiver.counts.get(id) === 4);
  const attempts = receiver.received.filter((r) => r.id === id);
  assert.deepEqual(
    attempts.map((r) => r.attempt),
    [1, 2, 3, 4],
  );
  assert.deepEqual(
    attempts.map((r) => r.status),
    [500, 500, 500, 200],
  );
  for (let i = 1; i < attempts.length; i++) {
    const gap = attempts[i]!.at - attempts[i - 1]!.at;
    assert.ok(gap >= SCHEDULE[i - 1]! && gap < SCHEDULE[i - 1]! + SLACK_MS, `gap before attempt ${i + 1}: ${gap} ms, scheduled ${SCHEDULE[i - 1]} ms`);
  }
  const shown = await waitFor("delivered state", async () => {
    const m = (await admin.get(`/v1/messages/${id}`)).body;
    return m.deliveries[0].state === "delivered" ? m : null;
  });
  assert.equal(shown.deliveries[0].attempts, 4);
  const log = (await admin.get(`/v1/messages/${id}/attempts`)).body.items;
  assert.deepEqual(
    log.map((a: { attempt: number; statusCode: number; outcome: string }) => [a.attempt, a.statusCode, a.outcome]),
    [
      [1, 500, "failed"],
      [2, 500, "failed"],
      [3, 500, "failed"],
      [4, 200, "delivered"],
    ],
  );
});

test("a receiver that never succeeds ends dead after the last step, and resend brings the message back", async () => {
  let up = false;
  receiver.behaviour = (r) => (r.path === "/down" && !up ? 503 : 200);
  await admin.post("/v1/subscriptions", {
    name: "down",
    topic: "t.down",
    endpoint: { type: "http", url: `${receiver.url}/down` },
    retry: { schedule: ["100ms", "100ms"] },
  });
  const id = (await admin.post("/v1/messages", { topic: "t.down", payload: 1 })).body.id;
  const dead = await waitFor("dead delivery", async () => {
    const d = (await admin.get(`/v1/messages/${id}`)).body.deliveries[0];
    return d.state === "dead" ? d : null;
  });
  assert.equal(receiver.counts.get(id), 3);
  assert.equal(dead.attempts, 3);
  assert.match(dead.deadReason, /3 attempts/);
  assert.equal((await admin.get("/v1/messages?subscription=down&deliveryState=dead")).body.items[0].id, id);

  up = true;
  assert.deepEqual((await admin.post(`/v1/messages/${id}/resend`)).body, { resent: 1 });
  const delivered = await waitFor("re-sent delivery", async () => {
    const d = (await admin.get(`/v1/messages/${id}`)).body.deliveries[0];
    return d.state === "delivered" ? d : null;
  });
  assert.equal(delivered.attempts, 4);
  assert.equal(receiver.received.filter((r) => r.id === id).at(-1)!.attempt, 4);
});

test("Retry-After on 429 is honoured", async () => {
  receiver.behaviour = (r, n) => (r.path === "/busy" && n === 1 ? { status: 429, headers: { "retry-after": "1" } } : 200);
  await admin.post("/v1/subscriptions", {
    name: "busy",
    topic: "t.busy",
    endpoint: { type: "http", url: `${receiver.url}/busy` },
    retry: { schedule: ["100ms", "5s"] },
  });
  const id = (await admin.post("/v1/messages", { topic: "t.busy", payload: 1 })).body.id;
  await waitFor("second attempt", () => receiver.counts.get(id) === 2);
  const [first, second] = receiver.received.filter((r) => r.id === id);
  const gap = second!.at - first!.at;
  assert.ok(gap >= 1000 && gap < 1000 + SLACK_MS, `gap ${gap} ms, Retry-After 1 s`);
});

test("re-sending a subscription's dead deliveries brings them all back, in batches", async () => {
  let up = false;
  receiver.behaviour = (r) => (r.path === "/bulk" && !up ? 500 : 200);
  await admin.post("/v1/subscriptions", {
    name: "bulk",
    topic: "t.bulk",
    endpoint: { type: "http", url: `${receiver.url}/bulk` },
    retry: { schedule: [], maxAttempts: 1 },
  });
  const sent = await admin.post("/v1/messages/batch", { messages: Array.from({ length: 25 }, (_, i) => ({ topic: "t.bulk", payload: i })) });
  const ids: string[] = sent.body.items.map((m: { id: string }) => m.id);
  await waitFor("25 dead", async () => (await admin.get("/v1/messages?subscription=bulk&deliveryState=dead&limit=100")).body.items.length === 25);
  up = true;
  const resent = await admin.post("/v1/subscriptions/bulk/resend-dead", { batchSize: 10 });
  assert.deepEqual(resent.body, { resent: 25, batches: 3 });
  await waitFor("all re-delivered", () => ids.every((id) => receiver.received.some((r) => r.id === id && r.status === 200)));
  assert.equal((await admin.get("/v1/messages?subscription=bulk&deliveryState=dead")).body.items.length, 0);
});
