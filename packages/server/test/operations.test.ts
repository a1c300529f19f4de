import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { RunningService } from "../src/runtime/service.ts";
import { api } from "./support/api.ts";
import { decoded, startSmtp, verify } from "./support/notifications.ts";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { Receiver } from "@tidings/testkit/receiver";
import { ADMIN_KEY, startTestService } from "@tidings/testkit/service";
import { waitFor } from "@tidings/testkit/wait";

// The on-call story end to end: a receiver goes down overnight; people are told once, on every
// channel, not once per dead delivery; an operator acknowledges it under their own name; the
// receiver comes back and the alert resolves by itself, and people are told that too.

let db: TestDatabase;
let service: RunningService;
let receiver: Receiver;
let smtp: Awaited<ReturnType<typeof startSmtp>>;
let down = true;

before(async () => {
  db = await createTestDatabase("operations");
  service = await startTestService(db.url);
  receiver = await new Receiver((r) => (r.path === "/orders" && down ? 503 : 200)).start();
  smtp = await startSmtp({ user: "tidings", pass: "mail-s3cret" });
});
after(async () => {
  await service?.close();
  await receiver?.stop();
  await smtp?.close();
  await db?.drop();
});

const SLACK_PATH = "/services/T0/B0/slackTOKEN";

test("a receiver down: one grouped alert, told once on each channel; acknowledged by an operator; resolved by itself when deliveries succeed again", async () => {
  const admin = api(service.url, ADMIN_KEY);
  const hook = await admin.post("/v1/channels", { name: "pager", type: "webhook", url: `${receiver.url}/pager` });
  assert.equal(hook.status, 201, JSON.stringify(hook.body));
  assert.equal((await admin.post("/v1/channels", { name: "chat", type: "slack", url: `${receiver.url}${SLACK_PATH}` })).status, 201);
  const mail = await admin.post("/v1/channels", {
    name: "oncall-mail",
    type: "email",
    smtp: {
      host: "127.0.0.1",
      port: smtp.port,
      tls: "none",
      username: "tidings",
      password: "mail-s3cret",
      from: "tidings@example.test",
      to: ["oncall@example.test"],
    },
  });
  assert.equal(mail.status, 201, JSON.stringify(mail.body));
  const olga = await admin.post("/v1/operators", { name: "olga", role: "operator" });
  assert.equal(olga.status, 201, JSON.stringify(olga.body));
  const operator = api(service.url, olga.body.key);

  // No circuit breaker: every delivery dies on its own, as on a long night.
  const sub = await admin.post("/v1/subscriptions", {
    name: "orders",
    topic: "orders.paid",
    endpoint: { type: "http", url: `${receiver.url}/orders` },
    retry: { schedule: [], maxAttempts: 1 },
    circuit: null,
  });
  assert.equal(sub.status, 201, JSON.stringify(sub.body));
  const sent = await admin.post("/v1/messages/batch", { messages: Array.from({ length: 30 }, (_, i) => ({ topic: "orders.paid", payload: { i } })) });
  assert.equal(sent.status, 201);

  const dead = await waitFor("30 deliveries dead in one alert", async () => {
    const items = (await admin.get("/v1/alerts?subscription=orders")).body.items as Array<{ id: number; condition: string; count: number }>;
    const grouped = items.filter((a) => a.condition === "delivery_dead");
    return grouped.length === 1 && grouped[0]!.count === 30 ? grouped : null;
  });
  assert.equal(dead.length, 1, "exactly one alert for the subscription's dead deliveries");
  const alertId = dead[0]!.id;

  // Each channel tells of it once: the webhook signed (checked by the Standard Webhooks library),
  // Slack's {text, blocks}, and a mail through the SMTP server.
  const pager = () => receiver.received.filter((r) => r.path === "/pager").map((r) => verify(hook.body.secret, r));
  const chat = () => receiver.received.filter((r) => r.path === SLACK_PATH).map((r) => JSON.parse(r.body) as { text: string; blocks: unknown[] });
  const told = (event: string) => pager().flatMap((n) => n.events.filter((e) => e.alertId === alertId && e.event === event));
  await waitFor("every channel told of the opened alert", () => told("opened").length > 0 && chat().length > 0 && smtp.mails.length > 0);
  assert.equal(pager().length, 1, "one webhook notification, not one per dead delivery");
  assert.deepEqual(
    pager()[0]!.events.map((e) => [e.event, e.condition, e.subject]),
    [["opened", "delivery_dead", "subscription orders"]],
  );
  assert.match(pager()[0]!.events[0]!.url, new RegExp(`^${service.url}/console/#/`));
  assert.equal(chat().length, 1);
  assert.ok(Array.isArray(chat()[0]!.blocks) && chat()[0]!.blocks.length > 0);
  assert.match(chat()[0]!.text, /subscription orders/);
  assert.equal(smtp.mails.length, 1);
  assert.deepEqual(smtp.mails[0]!.to, ["oncall@example.test"]);
  assert.match(decoded(smtp.mails[0]!.raw), /subscription orders/);

  // Olga acknowledges it under her name; people are told.
  const ack = await operator.post(`/v1/alerts/${alertId}/acknowledge`, { note: "looking at the orders service" });
  assert.equal(ack.status, 200, JSON.stringify(ack.body));
  assert.deepEqual([ack.body.state, ack.body.acknowledgedBy, ack.body.acknowledgeNote], ["acknowledged", "operator olga", "looking at the orders service"]);
  await waitFor("the acknowledgement told", () => told("acknowledged").length === 1);

  // The receiver is back: the next delivery succeeds, and the alert resolves by itself.
  down = false;
  assert.equal((await admin.post("/v1/messages", { topic: "orders.paid", payload: { again: true } })).status, 201);
  const resolved = await waitFor("the alert resolved by itself", async () => {
    const a = (await admin.get(`/v1/alerts/${alertId}`)).body;
    return a.state === "resolved" ? a : null;
  });
  assert.equal(resolved.resolvedBy, "tidings");
  await waitFor("the resolution told on every channel", () => told("resolved").length === 1 && chat().length >= 2 && smtp.mails.length >= 2);
  assert.equal(told("opened").length, 1, "the opening was told once");

  // The audit log has Olga's acknowledgement.
  const audit = (await admin.get("/v1/audit?actor=olga")).body.items as Array<{ action: string; target: string }>;
  assert.deepEqual(
    audit.map((e) => [e.action, e.target]),
    [["alert.acknowledge", `alert/${alertId}`]],
  );
});
