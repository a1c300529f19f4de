import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Receiver } from "@tidings/testkit/receiver";
import { waitFor } from "@tidings/testkit/wait";
import { TidingsClient, TidingsError } from "../src/index.ts";
import { startTidings, type TestTidings } from "./support/tidings.ts";

/** A real HTTP server on a free port, answering with `handle`; counts the requests it got. */
async function server(handle: (req: IncomingMessage, res: ServerResponse, n: number) => void) {
  let n = 0;
  const s = createServer((req, res) => handle(req, res, ++n));
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
    requests: () => n,
    close: () => {
      s.closeAllConnections();
      return new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
}

test("the client's default transport: idempotent calls retried after 5xx, the answer parsed, the key sent", async () => {
  const seen: string[] = [];
  const s = await server((req, res, n) => {
    seen.push(String(req.headers.authorization));
    if (n < 3) return void res.writeHead(503).end();
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ id: "m-1", state: "committed" }));
  });
  try {
    const client = new TidingsClient({ url: s.url, apiKey: "k-123", retries: 2 });
    const message = await client.messages.get("m-1");
    assert.equal(message?.id, "m-1");
    assert.equal(s.requests(), 3);
    assert.deepEqual(new Set(seen), new Set(["Bearer k-123"]));
  } finally {
    await s.close();
  }
});

test("the client's default transport: a 4xx is a TidingsError naming the field, not retried; 404 on get is null", async () => {
  const s = await server((req, res) => {
    if (req.method === "GET")
      return void res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: { code: "not_found", message: "no" } }));
    res
      .writeHead(400, { "content-type": "application/json" })
      .end(JSON.stringify({ error: { code: "invalid", message: "topic is required", field: "topic" } }));
  });
  try {
    const client = new TidingsClient({ url: s.url, apiKey: "k", retries: 2 });
    assert.equal(await client.messages.get("nope"), null);
    await assert.rejects(client.messages.send({ topic: "order.paid", payload: {} }), (error: unknown) => {
      assert.ok(error instanceof TidingsError);
      assert.equal(error.status, 400);
      assert.equal(error.field, "topic");
      return true;
    });
    assert.equal(s.requests(), 2);
  } finally {
    await s.close();
  }
});

test("the client's default transport: no answer in time is a timeout, a closed port a network error", async () => {
  const s = await server(() => {
    // never answers
  });
  try {
    const client = new TidingsClient({ url: s.url, apiKey: "k", retries: 0, timeoutMs: 200 });
    await assert.rejects(client.messages.get("m"), (error: unknown) => error instanceof TidingsError && error.code === "timeout");
  } finally {
    await s.close();
  }
  const closed = new TidingsClient({ url: s.url, apiKey: "k", retries: 1 });
  await assert.rejects(
    closed.messages.get("m"),
    (error: unknown) => error instanceof TidingsError && error.code === "network" && /ECONNREFUSED/.test(error.message),
  );
});

for (const transport of ["undici", "fetch"] as const) {
  const options = transport === "fetch" ? { fetch: globalThis.fetch } : {};

  test(`the client (${transport}) reads at most maxAnswerBytes of an answer, and does not ask again`, async () => {
    const big = JSON.stringify({ items: ["x".repeat(300_000)] });
    // The first answer says its length; the second is chunked, its length unknown until read.
    const s = await server((req, res) => {
      if (req.url?.includes("sized")) return void res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(big) }).end(big);
      res.writeHead(200, { "content-type": "application/json" });
      for (let i = 0; i < big.length; i += 16_384) res.write(big.slice(i, i + 16_384));
      res.end();
    });
    try {
      const client = new TidingsClient({ url: s.url, apiKey: "k", retries: 2, maxAnswerBytes: 100_000, ...options });
      for (const id of ["sized", "chunked"]) {
        await assert.rejects(
          client.messages.get(id),
          (error: unknown) => error instanceof TidingsError && error.code === "payload_too_large" && /maxAnswerBytes \(100000 bytes\)/.test(error.message),
        );
      }
      assert.equal(s.requests(), 2, "a too-large answer is not asked for again");
      // Under the limit, the same answer is read whole.
      const roomy = new TidingsClient({ url: s.url, apiKey: "k", retries: 0, maxAnswerBytes: 1_000_000, ...options });
      assert.equal(((await roomy.messages.get("chunked")) as unknown as { items: string[] }).items[0]!.length, 300_000);
    } finally {
      await s.close();
    }
  });

  test(`the client (${transport}): one deadline for the whole answer, a byte at a time included`, async () => {
    const timers: NodeJS.Timeout[] = [];
    const s = await server((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"items":[');
      // A byte every 50 ms: each well inside any idle timeout, the answer never done.
      timers.push(setInterval(() => res.write(" "), 50));
    });
    try {
      const client = new TidingsClient({ url: s.url, apiKey: "k", retries: 0, timeoutMs: 400, ...options });
      const started = performance.now();
      await assert.rejects(client.messages.get("m"), (error: unknown) => error instanceof TidingsError && error.code === "timeout");
      const took = performance.now() - started;
      assert.ok(took < 2_000, `the call ended ${Math.round(took)} ms after it began (deadline 400 ms)`);
    } finally {
      for (const t of timers) clearInterval(t);
      await s.close();
    }
  });
}

// The client against a real service (in this process, on its own database): one call of each
// operation, its answer typed from the service's API document.
describe("the client against the service", () => {
  let tidings: TestTidings;
  let receiver: Receiver;
  /** Whether the receiver acknowledges: it refuses until a test says so. */
  let accepting = false;
  const subscription = `client-${randomBytes(3).toString("hex")}`;
  const topic = `client.${subscription}`;

  before(async () => {
    receiver = await new Receiver(() => (accepting ? 200 : 500)).start();
    tidings = await startTidings("client");
  });
  after(async () => {
    await tidings?.close();
    await receiver?.stop();
  });

  test("subscriptions: create (its secret shown once), get, list, update", async () => {
    const created = await tidings.admin.subscriptions.create({
      name: subscription,
      topic,
      endpoint: { type: "http", url: receiver.url },
      retry: { schedule: ["100ms"], maxAttempts: 1 },
    });
    assert.match(created.secret ?? "", /^whsec_/);
    assert.equal((await tidings.admin.subscriptions.get(subscription))?.topic, topic);
    assert.equal(await tidings.admin.subscriptions.get("no-such"), null);
    assert.ok((await tidings.admin.subscriptions.list()).some((s) => s.name === subscription));
    const updated = await tidings.admin.subscriptions.update(subscription, { rateLimit: 1000 });
    assert.equal(updated.rateLimit, 1000);
    assert.equal(updated.secret, undefined);
  });

  test("a refusal carries the service's code and the field at fault", async () => {
    await assert.rejects(tidings.admin.subscriptions.create({ name: "Bad Name", topic, endpoint: { type: "http", url: receiver.url } }), (error: unknown) => {
      assert.ok(error instanceof TidingsError);
      assert.equal(error.code, "invalid_request");
      assert.equal(error.serviceCode, "invalid_request");
      assert.equal(error.field, "name");
      return true;
    });
    // An app's key on a person's route: the service's forbidden, as the SDK's.
    await assert.rejects(
      tidings.client.stats(),
      (error: unknown) => error instanceof TidingsError && error.status === 403 && error.serviceCode === "forbidden",
    );
  });

  test("a dead delivery: listed, counted, alerted; re-sent, skipped, marked dead, and its message's logs", async () => {
    const sent = await tidings.client.messages.send({ topic, key: "k-1", payload: { n: 1 } });
    const dead = await waitFor("the delivery dead", async () => (await tidings.admin.deliveries.list({ state: "dead", subscription })).items[0]);
    assert.equal(dead.messageId.endsWith(`/${sent.id}`), true);
    assert.equal(dead.attempts, 1);

    const found = await tidings.client.messages.list({ topic, subscription, deliveryState: "dead", limit: 10 });
    assert.deepEqual(
      found.items.map((m) => m.id),
      [sent.id],
    );
    assert.equal((await tidings.client.messages.attempts(sent.id))[0]?.statusCode, 500);
    const stats = await tidings.admin.stats();
    assert.equal(stats.subscriptions.find((s) => s.subscription === subscription)?.counts.dead, 1);

    const alert = await waitFor("its alert", async () => (await tidings.admin.alerts.list({ condition: "delivery_dead", subscription }))[0]);
    assert.equal((await tidings.admin.alerts.acknowledge(alert.id, "looking")).state, "acknowledged");
    assert.equal((await tidings.admin.alerts.page({ state: "acknowledged" })).items[0]?.id, alert.id);

    // Skipping a delivery that is not dead is refused; a dead one is skipped.
    await assert.rejects(
      tidings.admin.deliveries.skip(dead.id + 1_000_000),
      (error: unknown) => error instanceof TidingsError && error.serviceCode === "not_found",
    );
    assert.deepEqual(await tidings.admin.deliveries.skip(dead.id), { id: dead.id, skipped: true });
    assert.equal((await tidings.admin.alerts.resolve(alert.id)).state, "resolved");

    accepting = true;
    assert.equal(await tidings.admin.deliveries.resend(dead), 1);
    await waitFor("delivered after the re-send", async () => (await tidings.client.messages.get(sent.id))?.deliveries?.[0]?.state === "delivered");
    assert.equal(await tidings.admin.deliveries.markDead(dead, "done by hand"), 0);
    accepting = false;
  });

  test("jobs: re-send dead as a job, waited for, and a window recovered; retry-pending", async () => {
    const sent = await tidings.client.messages.send({ topic, payload: { n: 2 } });
    await waitFor("dead", async () => (await tidings.client.messages.get(sent.id))?.deliveries?.[0]?.state === "dead");
    const job = await tidings.admin.jobs.resendDead(subscription, { batchSize: 10 });
    assert.equal(job.kind, "resend_dead");
    const done = await waitFor("the job done", async () => {
      const now = await tidings.admin.jobs.get(job.id);
      return now?.state === "succeeded" ? now : null;
    });
    assert.equal(done.done, 1);
    assert.ok((await tidings.admin.jobs.list({ subscription })).some((j) => j.id === job.id));
    assert.equal(await tidings.admin.jobs.get("no-such-job"), null);

    await waitFor("dead again", async () => (await tidings.client.messages.get(sent.id))?.deliveries?.[0]?.state === "dead");
    const waited = await tidings.admin.subscriptions.resendDead(subscription, { waitSeconds: 10 });
    assert.deepEqual(waited, { resent: 1, batches: 1 });
    await waitFor("dead once more", async () => (await tidings.client.messages.get(sent.id))?.deliveries?.[0]?.state === "dead");
    const recovered = await tidings.admin.subscriptions.recover(subscription, { since: sent.createdAt, waitSeconds: 10 });
    assert.equal(recovered.kind, "recover");
    assert.equal(recovered.state, "succeeded");
    assert.equal(typeof (await tidings.admin.subscriptions.retryPending(subscription)), "number");
  });

  test("messages: prepare, its checks, commit, rollback, mark dead, delete; outcomes; the feed", async () => {
    const prepared = await tidings.client.messages.prepare({ topic: `${topic}.half`, payload: {} }, { checkAfter: "1h" });
    assert.equal(prepared.state, "prepared");
    assert.deepEqual(await tidings.client.messages.checks(prepared.id), []);
    assert.equal((await tidings.client.messages.commit(prepared.id)).state, "committed");
    await assert.rejects(tidings.client.messages.rollback(prepared.id), (error: unknown) => {
      assert.ok(error instanceof TidingsError);
      assert.equal(error.serviceCode, "conflict");
      assert.equal(error.details?.state, "committed");
      return true;
    });

    // Due in a minute: its delivery waits, pending, to be marked dead.
    const sent = await tidings.client.messages.send({ topic, payload: { n: 3 }, delayMs: 60_000 });
    assert.equal(await tidings.client.messages.markDead(sent.id, { subscription, reason: "not wanted" }), 1);
    const full = (await tidings.client.messages.get(sent.id))!;
    assert.equal(full.deliveries?.[0]?.deadReason, "not wanted");
    const recorded = await tidings.client.reportOutcomes([{ subscription, messageId: `${full.app}/${sent.id}`, outcome: "applied" }]);
    assert.equal(recorded.recorded, 1);

    const feed: string[] = [];
    for await (const m of tidings.client.feed({ topic })) feed.push(m.id);
    assert.ok(feed.includes(`${full.app}/${sent.id}`));

    await tidings.client.messages.delete(sent.id);
    assert.equal(await tidings.client.messages.get(sent.id), null);
  });

  test("messages.lookup: which of many ids the service has, with their state, in one call; a bad id names its index", async () => {
    const sent = await tidings.client.messages.send({ topic, payload: {}, delayMs: 60_000 });
    const prepared = await tidings.client.messages.prepare({ topic: `${topic}.half`, payload: {} }, { checkAfter: "1h" });
    const answer = await tidings.client.messages.lookup([prepared.id, "never-sent", sent.id]);
    assert.deepEqual(answer, {
      found: [
        { id: prepared.id, state: "prepared" },
        { id: sent.id, state: "committed" },
      ],
      missing: ["never-sent"],
    });
    await assert.rejects(tidings.client.messages.lookup([sent.id, "x".repeat(201)]), (error: unknown) => {
      assert.ok(error instanceof TidingsError);
      assert.equal(error.code, "invalid_request");
      assert.equal(error.field, "ids[1]");
      return true;
    });
  });

  test("apps, relays and reconciliation reports", async () => {
    const name = `app-${randomBytes(3).toString("hex")}`;
    const app = await tidings.admin.apps.create({ name });
    assert.match(app.apiKey, /\S{16,}/);
    const disabled = await tidings.admin.apps.update(name, { enabled: false });
    assert.equal(disabled.enabled, false);
    const itsClient = new TidingsClient({ url: tidings.url, apiKey: app.apiKey, retries: 0 });
    await assert.rejects(
      itsClient.messages.list(),
      (error: unknown) => error instanceof TidingsError && error.code === "forbidden" && error.serviceCode === "app_disabled",
    );
    assert.equal((await tidings.admin.apps.get(name))?.enabled, false);
    assert.ok((await tidings.admin.apps.list()).some((a) => a.name === name));

    await tidings.client.relays.heartbeat({ name: "relay-1", pending: 2, failed: 0, oldestPendingSeconds: 1.5, lastSentAt: null });
    const relays = await tidings.admin.relays.list();
    const relay = relays.items.find((r) => r.name === "relay-1");
    assert.equal(relay?.pending, 2);
    await tidings.admin.relays.forget(relay!.app, "relay-1");
    assert.equal((await tidings.admin.relays.list()).items.length, 0);

    const now = new Date().toISOString();
    const report = await tidings.client.reconciliations.report({
      kind: "consumer",
      subscription,
      reporter: "client-test",
      since: now,
      until: now,
      startedAt: now,
      finishedAt: now,
      counts: { checked: 1, missing: 1, repaired: 1, failed: 0 },
      differences: [{ id: "x/1", problem: "missing", action: "applied" }],
    });
    assert.equal((await tidings.admin.reconciliations.get(report.id))?.differences?.[0]?.id, "x/1");
    assert.deepEqual(
      (await tidings.admin.reconciliations.list({ differences: true, subscription })).items.map((r) => r.id),
      [report.id],
    );
    await tidings.admin.apps.delete(name);
    assert.equal(await tidings.admin.apps.get(name), null);
  });
});
