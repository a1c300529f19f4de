import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, startTestService, type RunningService } from "@tidings/testkit/service";
import { Receiver } from "@tidings/testkit/receiver";
import { stillAfter, waitFor } from "@tidings/testkit/wait";
import { api } from "./support/api.ts";

// Grouped alerts and their lifecycle, with real PostgreSQL, a real service and a real receiver
// that goes down and comes back: one alert per condition and subject, however many occurrences.

let database: TestDatabase;
let service: RunningService;
let receiver: Receiver;
let admin: ReturnType<typeof api>;
let db: pg.Pool;
/** Paths of the receiver that answer 500. */
const down = new Set<string>();
/** What the check URL answers: a status, or an answer body. */
let checkAnswer: { status: number; body: string } = { status: 500, body: "down" };
const checker = createServer((req, res) => {
  req.resume();
  req.on("end", () => res.writeHead(checkAnswer.status, { "content-type": "application/json" }).end(checkAnswer.body));
});

before(async () => {
  database = await createTestDatabase("alerts");
  await new Promise<void>((resolve) => checker.listen(0, "127.0.0.1", resolve));
  service = await startTestService(database.url, {
    TIDINGS_ALERT_INTERVAL: "200ms",
    TIDINGS_ALERT_PENDING_AGE: "2s",
    TIDINGS_ALERT_CHECK_FAILURES: "3",
    TIDINGS_CHECK_INTERVAL: "100ms",
    TIDINGS_CHECK_LIMIT: "1000",
  });
  receiver = await new Receiver().start();
  receiver.behaviour = (r) => (down.has(r.path) ? 500 : 200);
  admin = api(service.url, ADMIN_KEY);
  db = new pg.Pool({ connectionString: database.url, max: 2 });
});
after(async () => {
  await service.close();
  await receiver.stop();
  await new Promise((r) => checker.close(r));
  await db.end();
  await database.drop();
});

/** A subscription whose failed deliveries die at once (one attempt per cycle), without a breaker. */
async function subscribe(name: string, retry: unknown = { schedule: [], maxAttempts: 1 }, more: Record<string, unknown> = {}): Promise<void> {
  const created = await admin.post("/v1/subscriptions", {
    name,
    topic: `t.${name}`,
    endpoint: { type: "http", url: `${receiver.url}/${name}` },
    retry,
    circuit: null,
    ...more,
  });
  assert.equal(created.status, 201);
}

async function publish(name: string, n: number): Promise<string[]> {
  const sent = await admin.post("/v1/messages/batch", { messages: Array.from({ length: n }, (_, i) => ({ topic: `t.${name}`, payload: { i } })) });
  assert.equal(sent.status, 201);
  return sent.body.items.map((m: { id: string }) => m.id);
}

const deadCount = async (name: string): Promise<number> =>
  (
    await db.query("select count(*)::int as n from deliveries d join subscriptions s on s.id = d.subscription_id where s.name = $1 and d.state = 'dead'", [
      name,
    ])
  ).rows[0].n;

/** The alerts of a condition about a subscription, every state, newest first. */
async function alertsOf(condition: string, subscription: string) {
  const answer = await admin.get(`/v1/alerts?state=all&condition=${condition}&subscription=${subscription}`);
  assert.equal(answer.status, 200);
  return answer.body.items;
}

async function eventsOf(alertId: number): Promise<Array<{ event: string; summary: string; next_step: string; link: string; subject: string }>> {
  return (await db.query("select event, summary, next_step, link, subject from alert_events where alert_id = $1 order by id", [alertId])).rows;
}

test("a receiver down: one alert however many deliveries die, with its count and examples; acknowledged; resolved when a delivery succeeds", async () => {
  await subscribe("down");
  down.add("/down");
  const first = await publish("down", 40);
  await waitFor("40 dead deliveries", async () => (await deadCount("down")) === 40);

  const alerts = await waitFor("the alert counting 40", async () => {
    const items = await alertsOf("delivery_dead", "down");
    return items.length === 1 && items[0].count === 40 ? items : null;
  });
  const [alert] = alerts;
  assert.equal(alert.state, "open");
  assert.equal(alert.subject, "subscription down");
  assert.equal(alert.subscription, "down");
  assert.equal(alert.examples.length, 10, "the latest 10 occurrences");
  for (const e of alert.examples) {
    assert.ok(first.includes(e.messageId), `${e.messageId} is one of the messages sent`);
    assert.match(e.detail, /HTTP 500/);
  }
  assert.ok(alert.firstAt <= alert.lastAt);
  assert.equal(alert.link, "#/dead-letters?subscription=down");
  assert.match(alert.nextStep, /re-send/);
  // The stats count it once.
  assert.equal((await admin.get("/v1/stats")).body.openAlerts, 1);

  let events = await eventsOf(alert.id);
  assert.deepEqual(
    events.map((e) => e.event),
    ["opened"],
  );
  assert.equal(events[0]!.subject, "subscription down");
  assert.equal(events[0]!.link, "#/dead-letters?subscription=down");

  // Acknowledged: who (the caller) and the note; it keeps counting what dies after.
  const acked = await admin.post(`/v1/alerts/${alert.id}/acknowledge`, { note: "on it, the receiver's host is rebooting" });
  assert.equal(acked.status, 200);
  assert.deepEqual(
    [acked.body.state, acked.body.acknowledgedBy, acked.body.acknowledgeNote],
    ["acknowledged", "admin", "on it, the receiver's host is rebooting"],
  );
  assert.equal((await admin.post(`/v1/alerts/${alert.id}/acknowledge`, {})).status, 200, "acknowledging again changes nothing");
  await publish("down", 5);
  await waitFor("45 counted into the same alert", async () => {
    const items = await alertsOf("delivery_dead", "down");
    return items.length === 1 && items[0].count === 45 && items[0].state === "acknowledged";
  });
  events = await eventsOf(alert.id);
  assert.deepEqual(
    events.map((e) => e.event),
    ["opened", "acknowledged"],
  );
  assert.match(events[1]!.summary, /acknowledged by admin .*on it/);

  // The receiver is back: the next delivery that succeeds resolves it.
  down.delete("/down");
  await publish("down", 1);
  const resolved = await waitFor("the alert resolved", async () => {
    const [a] = await alertsOf("delivery_dead", "down");
    return a.state === "resolved" ? a : null;
  });
  assert.deepEqual([resolved.resolvedBy, resolved.resolveNote], ["tidings", "a delivery succeeded again"]);
  events = await eventsOf(alert.id);
  assert.deepEqual(
    events.map((e) => e.event),
    ["opened", "acknowledged", "resolved"],
  );
  assert.match(events[2]!.summary, /^resolved \("a delivery succeeded again"\): 45 deliveries dead on subscription down since /);
  assert.match(events[2]!.next_step, /re-send or skip/);
});

test("re-sending and skipping every dead delivery resolves the alert; one still dead keeps it open", async () => {
  await subscribe("flaky");
  down.add("/flaky");
  const ids = await publish("flaky", 3);
  await waitFor("3 dead", async () => (await deadCount("flaky")) === 3);
  const [alert] = await waitFor("its alert", async () => {
    const items = await alertsOf("delivery_dead", "flaky");
    return items.length === 1 && items[0].count === 3 ? items : null;
  });
  // Still failing: re-sent, they die again and count into the same alert.
  assert.equal((await admin.post(`/v1/messages/${ids[0]}/resend`, {})).status, 200);
  await waitFor("the re-sent one counted", async () => (await alertsOf("delivery_dead", "flaky"))[0].count === 4);
  down.delete("/flaky");
  // Two re-sent and delivered: the alert resolves on that success.
  for (const id of ids.slice(0, 2)) assert.equal((await admin.post(`/v1/messages/${id}/resend`, {})).status, 200);
  await waitFor("resolved by the success", async () => (await alertsOf("delivery_dead", "flaky"))[0].state === "resolved");
  // The first success resolves it; the other re-sent one must be delivered too before the next
  // outage, or it could die in it and be the new alert's example instead of the late message.
  await waitFor("both re-sent ones delivered", async () => {
    const { rows } = await db.query("select count(*)::int as n from deliveries where message_id = any($1) and state = 'delivered'", [ids.slice(0, 2)]);
    return rows[0].n === 2;
  });

  // A second outage: one dies; while it stays dead the alert stays open; skipped, it resolves.
  down.add("/flaky");
  const [late] = await publish("flaky", 1);
  const second = await waitFor("a new alert", async () => {
    const items = await alertsOf("delivery_dead", "flaky");
    return items.length === 2 && items[0].state === "open" ? items[0] : null;
  });
  assert.notEqual(second.id, alert.id);
  assert.equal(second.count, 1);
  assert.equal(second.examples[0].messageId, late);
  await stillAfter("the alert stays open while its delivery is dead", async () => (await alertsOf("delivery_dead", "flaky"))[0].state === "open", 1000);
  const dead = await db.query("select d.id from deliveries d where d.message_id = $1", [late]);
  assert.equal((await admin.post(`/v1/deliveries/${dead.rows[0].id}/skip`)).status, 200);
  const cleared = await waitFor("resolved once nothing is dead", async () => {
    const [a] = await alertsOf("delivery_dead", "flaky");
    return a.state === "resolved" ? a : null;
  });
  assert.equal(cleared.resolveNote, "no delivery that died is dead any more (re-sent or skipped)");
  assert.deepEqual(
    (await eventsOf(second.id)).map((e) => e.event),
    ["opened", "resolved"],
  );
});

test("resolved by hand with a note: one 'resolved' event; resolving again changes nothing, acknowledging is refused", async () => {
  await subscribe("byhand");
  down.add("/byhand");
  await publish("byhand", 2);
  const [alert] = await waitFor("its alert", async () => {
    const items = await alertsOf("delivery_dead", "byhand");
    return items.length === 1 && items[0].count === 2 ? items : null;
  });
  const resolved = await admin.post(`/v1/alerts/${alert.id}/resolve`, { note: "the receiver was retired" });
  assert.equal(resolved.status, 200);
  assert.deepEqual([resolved.body.state, resolved.body.resolvedBy, resolved.body.resolveNote], ["resolved", "admin", "the receiver was retired"]);
  assert.ok(resolved.body.resolvedAt);
  const again = await admin.post(`/v1/alerts/${alert.id}/resolve`);
  assert.equal(again.status, 200);
  assert.equal(again.body.resolveNote, "the receiver was retired");
  const ack = await admin.post(`/v1/alerts/${alert.id}/acknowledge`, { note: "late" });
  assert.equal(ack.status, 409);
  const events = await eventsOf(alert.id);
  assert.deepEqual(
    events.map((e) => e.event),
    ["opened", "resolved"],
  );
  assert.match(events[1]!.summary, /^resolved by admin \("the receiver was retired"\): 2 deliveries dead on subscription byhand/);
  // Listed as resolved, not among the unresolved.
  assert.ok(!(await admin.get("/v1/alerts?subscription=byhand")).body.items.some((a: { id: number }) => a.id === alert.id));
  assert.ok((await admin.get("/v1/alerts?state=resolved&subscription=byhand")).body.items.some((a: { id: number }) => a.id === alert.id));
});

test("bad input is refused naming the field; an unknown alert is 404", async () => {
  const refused = async (answer: Promise<{ status: number; body: { error: { field?: string } } }>, field: string) => {
    const a = await answer;
    assert.equal(a.status, 400, JSON.stringify(a.body));
    assert.match(String(a.body.error.field), new RegExp(field));
  };
  await refused(admin.post("/v1/alerts/1/acknowledge", { note: 5 }), "note");
  await refused(admin.post("/v1/alerts/1/resolve", { note: "x".repeat(1001) }), "note");
  await refused(admin.post("/v1/alerts/1/resolve", { reason: "x" }), "reason");
  await refused(admin.get("/v1/alerts?state=sleeping"), "state");
  await refused(admin.get("/v1/alerts?limit=many"), "limit");
  await refused(admin.get("/v1/alerts?condition=Bad-Condition"), "condition");
  assert.equal((await admin.post("/v1/alerts/999999/resolve", { note: "x" })).status, 404);
  assert.equal((await admin.post("/v1/alerts/999999/acknowledge")).status, 404);
});

test("a subscription whose oldest pending delivery waits past the threshold gets a pending_too_old alert, resolved when it goes", async () => {
  // A failure waits an hour for its retry: the delivery stays pending.
  await subscribe("slow", { schedule: ["1h"], maxAttempts: 5 });
  down.add("/slow");
  const [id] = await publish("slow", 1);
  const alert = await waitFor(
    "the pending-age alert",
    async () => (await alertsOf("pending_too_old", "slow")).find((a: { state: string }) => a.state === "open"),
    15_000,
  );
  assert.equal(alert.subject, "subscription slow");
  assert.match(alert.detail, new RegExp(`oldest pending delivery \\(${id}\\) has waited \\d+m \\d+s, over the service's default threshold of 2s$`));
  assert.equal(alert.link, "#/subscriptions/slow");
  down.delete("/slow");
  assert.equal((await admin.post("/v1/subscriptions/slow/retry-pending")).status, 200);
  const resolved = await waitFor("resolved once it is delivered", async () => {
    const [a] = await alertsOf("pending_too_old", "slow");
    return a.state === "resolved" ? a : null;
  });
  assert.equal(resolved.id, alert.id, "one alert, however many rounds found it late");
  assert.equal(resolved.resolveNote, "no pending delivery is older than the threshold");
  assert.deepEqual(
    (await eventsOf(alert.id)).map((e) => e.event),
    ["opened", "resolved"],
  );
});

test("each subscription's own pending-age threshold: the short one alerts, the long one and the one turned off do not; a change applies at the next round", async () => {
  // Failures wait an hour for their retry: each delivery stays pending, all of the same age.
  const hourly = { schedule: ["1h"], maxAttempts: 5 };
  await subscribe("age-short", hourly, { pendingAgeAlert: "1s" });
  await subscribe("age-long", hourly, { pendingAgeAlert: "1h" });
  await subscribe("age-off", hourly, { pendingAgeAlert: false });
  for (const name of ["age-short", "age-long", "age-off"]) down.add(`/${name}`);
  const sent = await admin.post("/v1/messages/batch", {
    messages: ["age-short", "age-long", "age-off"].map((name) => ({ topic: `t.${name}`, payload: {} })),
  });
  assert.equal(sent.status, 201);

  // A round that found the short one's delivery 3s old (past the service's 2s) left the other two alone.
  const waitedS = (detail: string) => {
    const m = /has waited (\d+)m (\d+)s/.exec(detail);
    return m ? Number(m[1]) * 60 + Number(m[2]) : 0;
  };
  const short = await waitFor(
    "a round that found the short one's delivery 3s old",
    async () => (await alertsOf("pending_too_old", "age-short")).find((a: { state: string; detail: string }) => a.state === "open" && waitedS(a.detail) >= 3),
    20_000,
  );
  assert.match(short.detail, /, over the subscription's threshold of 1s$/);
  assert.deepEqual(await alertsOf("pending_too_old", "age-long"), []);
  assert.deepEqual(await alertsOf("pending_too_old", "age-off"), []);

  // The API and the metrics show each one's threshold.
  const listed = (await admin.get("/v1/subscriptions")).body.items.filter((s: { name: string }) => s.name.startsWith("age-"));
  assert.deepEqual(
    listed.map((s: { name: string; pendingAgeAlert: unknown }) => [s.name, s.pendingAgeAlert]),
    [
      ["age-long", "1h"],
      ["age-off", false],
      ["age-short", "1s"],
    ],
  );
  assert.equal((await admin.get("/v1/subscriptions/slow")).body.pendingAgeAlert, null, "created without one: the service's default");
  const metrics = await (await fetch(`${service.url}/metrics`)).text();
  for (const [name, label] of [
    ["age-short", "1s"],
    ["age-off", "off"],
    ["slow", "2s"],
  ]) {
    const info = metrics.split("\n").find((l) => l.startsWith("tidings_subscription_info{") && l.includes(`subscription="${name}"`));
    assert.ok(info?.includes(`pending_age_alert="${label}"`), `${name}: ${info}`);
  }
  const threshold = (name: string) =>
    metrics
      .split("\n")
      .find((l) => l.startsWith(`tidings_subscription_pending_age_alert_seconds{subscription="${name}"}`))
      ?.split(" ")[1];
  assert.deepEqual([threshold("age-short"), threshold("age-long"), threshold("age-off"), threshold("slow")], ["1", "3600", undefined, "2"]);

  // Shortened, the long one alerts with its new threshold; turned off, the short one's alert resolves.
  const patched = await admin.patch("/v1/subscriptions/age-long", { pendingAgeAlert: "2s" });
  assert.equal(patched.status, 200);
  assert.equal(patched.body.pendingAgeAlert, "2s");
  const long = await waitFor("the long one's alert", async () =>
    (await alertsOf("pending_too_old", "age-long")).find((a: { state: string }) => a.state === "open"),
  );
  assert.match(long.detail, /, over the subscription's threshold of 2s$/);
  assert.equal((await admin.patch("/v1/subscriptions/age-short", { pendingAgeAlert: false })).body.pendingAgeAlert, false);
  const off = await waitFor("the short one's alert resolved", async () => {
    const [a] = await alertsOf("pending_too_old", "age-short");
    return a.state === "resolved" ? a : null;
  });
  assert.equal(off.resolveNote, "the pending-age alert is off for the subscription");
  // null: back to the service's default.
  assert.equal((await admin.patch("/v1/subscriptions/age-long", { pendingAgeAlert: null })).body.pendingAgeAlert, null);
  assert.equal((await admin.get("/v1/subscriptions/age-long")).body.pendingAgeAlert, null);
});

test("a bad pendingAgeAlert is refused with 400 naming the field, on create and on change", async () => {
  const refused = async (answer: Promise<{ status: number; body: { error: { field?: string } } }>) => {
    const a = await answer;
    assert.equal(a.status, 400, JSON.stringify(a.body));
    assert.equal(a.body.error.field, "pendingAgeAlert", JSON.stringify(a.body));
  };
  const create = (pendingAgeAlert: unknown) =>
    admin.post("/v1/subscriptions", { name: "age-bad", topic: "t.x", endpoint: { type: "http", url: `${receiver.url}/x` }, pendingAgeAlert });
  for (const bad of ["soon", "500ms", "31d", "", true, 5, "x".repeat(21)]) {
    await refused(create(bad));
    await refused(admin.patch("/v1/subscriptions/slow", { pendingAgeAlert: bad }));
  }
  assert.equal((await admin.get("/v1/subscriptions/age-bad")).status, 404);
  // The bounds themselves are taken.
  assert.equal((await admin.patch("/v1/subscriptions/slow", { pendingAgeAlert: "30d" })).body.pendingAgeAlert, "30d");
  assert.equal((await admin.patch("/v1/subscriptions/slow", { pendingAgeAlert: "1000ms" })).body.pendingAgeAlert, "1s");
  assert.equal((await admin.patch("/v1/subscriptions/slow", { pendingAgeAlert: null })).body.pendingAgeAlert, null);
});

test("an app's check URL failing in a row raises check_url_failing for the app; its next answer resolves it", async () => {
  const checkUrl = `http://127.0.0.1:${(checker.address() as AddressInfo).port}/check`;
  const created = await admin.post("/v1/apps", { name: "shop", checkUrl });
  assert.equal(created.status, 201);
  const shop = api(service.url, created.body.apiKey);
  checkAnswer = { status: 500, body: "down" };
  assert.equal((await shop.post("/v1/messages", { id: "p-1", topic: "t.none", payload: {}, prepare: true, checkAfter: "100ms" })).status, 201);
  const alert = await waitFor("the check URL's alert", async () => {
    const items = (await admin.get("/v1/alerts?condition=check_url_failing&app=shop")).body.items;
    return items.length === 1 ? items[0] : null;
  });
  assert.equal(alert.subject, "app shop");
  assert.ok(alert.count >= 3, "failures in a row");
  assert.match(alert.detail, /check-backs in a row failed; the last: HTTP 500/);
  assert.equal(alert.examples[0].messageId, "shop/p-1");
  checkAnswer = { status: 200, body: JSON.stringify({ status: "rollback" }) };
  const resolved = await waitFor("resolved by an answer", async () => {
    const a = (await admin.get(`/v1/alerts/${alert.id}`)).body;
    return a.state === "resolved" ? a : null;
  });
  assert.equal(resolved.resolveNote, "the check URL answered again");
  assert.deepEqual(
    (await eventsOf(alert.id)).map((e) => e.event),
    ["opened", "resolved"],
  );
});
