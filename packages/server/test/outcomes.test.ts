// POST /v1/outcomes as a consumer meets it: the outcome lands on the delivery it names (by
// subscription + message id, the subscription named to it by the tidings-subscription header),
// only for messages the reporting app may read; bad input is refused naming the field; a re-send
// starts the delivery over without its old outcome; a message with an unreported delivery is not completed.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { api } from "./support/api.ts";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { Receiver } from "@tidings/testkit/receiver";
import { ADMIN_KEY, startTestService, type RunningService } from "@tidings/testkit/service";
import { waitFor } from "@tidings/testkit/wait";

describe("consumer outcomes", () => {
  let db: TestDatabase;
  let service: RunningService;
  let receiver: Receiver;
  const admin = () => api(service.url, ADMIN_KEY);
  let producerKey: string;
  let consumerKey: string;
  let strangerKey: string;

  before(async () => {
    db = await createTestDatabase("outcomes");
    service = await startTestService(db.url);
    receiver = await new Receiver(() => 200).start();
    const app = async (name: string, readTopics: string[]) => String((await admin().post("/v1/apps", { name, readTopics })).body.apiKey);
    producerKey = await app("shop", []);
    consumerKey = await app("billing", ["order.paid"]);
    strangerKey = await app("stranger", ["other.topic"]);
    for (const name of ["billing", "audit"]) {
      const created = await admin().post("/v1/subscriptions", { name, topic: "order.paid", endpoint: { type: "http", url: `${receiver.url}/${name}` } });
      assert.equal(created.status, 201, JSON.stringify(created.body));
    }
  });
  after(async () => {
    await service.close();
    await receiver.stop();
    await db.drop();
  });

  async function delivered(id: string): Promise<string> {
    const sent = await api(service.url, producerKey).post("/v1/messages", { id, topic: "order.paid", payload: { id } });
    assert.equal(sent.status, 201);
    const fullId = `shop/${id}`;
    await waitFor("both deliveries made", () => receiver.received.filter((r) => r.id === fullId).length === 2);
    return fullId;
  }
  const deliveries = async (fullId: string) => (await admin().get(`/v1/messages/${encodeURIComponent(fullId)}`)).body;

  test("a delivery carries its subscription's name, and shows the outcome its consumer reports", async () => {
    const fullId = await delivered("o-1");
    const names = receiver.received.filter((r) => r.id === fullId).map((r) => r.headers["tidings-subscription"]);
    assert.deepEqual(names.sort(), ["audit", "billing"]);
    const report = await api(service.url, consumerKey).post("/v1/outcomes", {
      outcomes: [
        { subscription: "billing", messageId: fullId, outcome: "failed", error: "db down" },
        { subscription: "billing", messageId: fullId, outcome: "applied" },
        { subscription: "billing", messageId: "shop/no-such", outcome: "applied" },
      ],
    });
    assert.deepEqual(report.body, { recorded: 1, ignored: 1, gaveUp: 0, completed: [] });
    const m = await deliveries(fullId);
    const billing = m.deliveries.find((d: { subscription: string }) => d.subscription === "billing");
    assert.equal(billing.outcome, "applied");
    assert.equal(billing.outcomeError, null);
    assert.ok(billing.outcomeAt);
    assert.equal(m.deliveries.find((d: { subscription: string }) => d.subscription === "audit").outcome, null, "audit reported nothing");
    assert.equal(m.completedAt, null, "a delivery nobody reported on keeps the message from being completed");

    // A lesser outcome does not replace a better one: the inbox has the message.
    await api(service.url, consumerKey).post("/v1/outcomes", { outcomes: [{ subscription: "billing", messageId: fullId, outcome: "failed", error: "late" }] });
    assert.equal((await deliveries(fullId)).deliveries.find((d: { subscription: string }) => d.subscription === "billing").outcome, "applied");

    const done = await api(service.url, producerKey).post("/v1/outcomes", { outcomes: [{ subscription: "audit", messageId: fullId, outcome: "duplicate" }] });
    assert.deepEqual(done.body.completed, [fullId]);
    assert.ok((await deliveries(fullId)).completedAt);

    // A re-send starts over: the old outcome goes with the old cycle.
    await admin().post(`/v1/messages/${encodeURIComponent(fullId)}/resend`, { subscription: "billing" });
    const resent = (await deliveries(fullId)).deliveries.find((d: { subscription: string }) => d.subscription === "billing");
    assert.equal(resent.outcome, null);
  });

  test("an app reports only on messages it may read, and bad reports are refused naming the field", async () => {
    const fullId = await delivered("o-2");
    const stranger = await api(service.url, strangerKey).post("/v1/outcomes", {
      outcomes: [{ subscription: "billing", messageId: fullId, outcome: "applied" }],
    });
    assert.deepEqual(stranger.body, { recorded: 0, ignored: 1, gaveUp: 0, completed: [] });
    assert.equal((await deliveries(fullId)).deliveries.find((d: { subscription: string }) => d.subscription === "billing").outcome, null);

    const bad = await api(service.url, consumerKey).post("/v1/outcomes", { outcomes: [{ subscription: "billing", messageId: fullId, outcome: "done" }] });
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(bad.body), /outcome/);
    const empty = await api(service.url, consumerKey).post("/v1/outcomes", { outcomes: [] });
    assert.equal(empty.status, 400);
    assert.match(JSON.stringify(empty.body), /outcomes/);
    const none = await api(service.url, null).post("/v1/outcomes", { outcomes: [{ subscription: "billing", messageId: fullId, outcome: "applied" }] });
    assert.equal(none.status, 401);
    // A long error is kept, cut: a report is not lost over the length of a stack trace.
    const long = await api(service.url, consumerKey).post("/v1/outcomes", {
      outcomes: [{ subscription: "billing", messageId: fullId, outcome: "failed", error: `boom\u0000${"x".repeat(5000)}` }],
    });
    assert.equal(long.status, 200);
    const billing = (await deliveries(fullId)).deliveries.find((d: { subscription: string }) => d.subscription === "billing");
    assert.equal(billing.outcomeError.length, 1000);
    assert.ok(billing.outcomeError.startsWith("boomx"), "NUL removed");
  });
});
