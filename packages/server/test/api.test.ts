import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { Webhook } from "standardwebhooks";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, startTestService, type RunningService } from "@tidings/testkit/service";
import { Receiver } from "@tidings/testkit/receiver";
import { api } from "./support/api.ts";
import { waitFor } from "@tidings/testkit/wait";
import type { FastifyRequest } from "fastify";
import { Authenticator } from "../src/http/auth.ts";
import type { TidingsError } from "../src/domain/errors.ts";

let database: TestDatabase;
let service: RunningService;
let receiver: Receiver;
let db: pg.Pool;
let admin: ReturnType<typeof api>;

before(async () => {
  database = await createTestDatabase("api");
  service = await startTestService(database.url, { TIDINGS_BODY_LIMIT: "65536" });
  receiver = await new Receiver().start();
  db = new pg.Pool({ connectionString: database.url, max: 2 });
  admin = api(service.url, ADMIN_KEY);
});

after(async () => {
  await service.close();
  await receiver.stop();
  await db.end();
  await database.drop();
});

const count = async (table: string) => Number((await db.query(`select count(*) from ${table}`)).rows[0].count);

describe("authentication", () => {
  test("no key is 401, a wrong key is 401; health, readiness and metrics need none", async () => {
    assert.equal((await api(service.url, null).get("/v1/messages")).status, 401);
    assert.equal((await api(service.url, "tdk_wrong").get("/v1/messages")).status, 401);
    assert.equal((await api(service.url, null).get("/v1/messages")).body.error.code, "unauthorized");
    for (const path of ["/healthz", "/readyz", "/metrics", "/openapi.json"]) {
      assert.equal(
        (
          await api(service.url, null)
            .get(path)
            .catch(() => ({ status: 0 }))
        ).status === 200 || path === "/metrics",
        true,
        path,
      );
    }
    const metrics = await fetch(`${service.url}/metrics`);
    assert.equal(metrics.status, 200);
  });

  test("an app key on admin endpoints is 403; another app's message is not found, by its id or its full id", async () => {
    const a = await admin.post("/v1/apps", { name: "shop" });
    const b = await admin.post("/v1/apps", { name: "billing" });
    assert.equal(a.status, 201);
    assert.match(a.body.apiKey, /^tdk_/);
    assert.match(a.body.secret, /^whsec_/);
    const shop = api(service.url, a.body.apiKey);
    const billing = api(service.url, b.body.apiKey);
    assert.equal((await shop.get("/v1/apps")).status, 403);
    assert.equal((await shop.post("/v1/subscriptions", {})).status, 403);
    assert.equal((await shop.get("/v1/subscriptions")).status, 403);
    const sent = await shop.post("/v1/messages", { topic: "t.auth", payload: { n: 1 } });
    assert.equal(sent.status, 201);
    assert.equal(sent.body.app, "shop");
    // Answered exactly like an id that does not exist: nothing tells billing that shop has it.
    for (const ref of [sent.body.id, `shop%2F${sent.body.id}`]) {
      for (const call of [
        billing.get(`/v1/messages/${ref}`),
        billing.get(`/v1/messages/${ref}/attempts`),
        billing.get(`/v1/messages/${ref}/checks`),
        billing.post(`/v1/messages/${ref}/resend`),
        billing.post(`/v1/messages/${ref}/dead`),
        billing.post(`/v1/messages/${ref}/commit`),
        billing.post(`/v1/messages/${ref}/rollback`),
        billing.delete(`/v1/messages/${ref}`),
      ]) {
        const answer = await call;
        assert.equal(answer.status, 404, JSON.stringify(answer.body));
        assert.equal(answer.body.error.code, "not_found");
      }
    }
    assert.equal((await shop.get(`/v1/messages/${sent.body.id}`)).status, 200);
    assert.equal((await shop.get(`/v1/messages/shop%2F${sent.body.id}`)).body.id, sent.body.id);
    // The admin names an app's message by its full id; a bare id is the admin's own namespace.
    assert.equal((await admin.get(`/v1/messages/shop%2F${sent.body.id}`)).status, 200);
    assert.equal((await admin.get(`/v1/messages/${sent.body.id}`)).status, 404);
    // An app lists only its own messages.
    await billing.post("/v1/messages", { topic: "t.auth", payload: { n: 2 } });
    const listed = await shop.get("/v1/messages?topic=t.auth");
    assert.deepEqual(
      listed.body.items.map((m: { app: string }) => m.app),
      ["shop"],
    );
    // A deleted app's key stops working.
    assert.equal((await admin.delete("/v1/apps/billing")).status, 204);
    assert.equal((await billing.get("/v1/messages")).status, 401);
  });

  test("two apps use the same message ids without seeing, blocking or learning about each other", async () => {
    const one = api(service.url, (await admin.post("/v1/apps", { name: "twin-one" })).body.apiKey);
    const two = api(service.url, (await admin.post("/v1/apps", { name: "twin-two" })).body.apiKey);
    await admin.post("/v1/subscriptions", { name: "twins", topic: "t.twins", endpoint: { type: "http", url: `${receiver.url}/twins` } });
    const first = await one.post("/v1/messages", { id: "order-1001-paid", topic: "t.twins", payload: { from: "one", secret: 1 } });
    assert.equal(first.status, 201);
    // The same id from another app is a new message, not a repeat (200) or a clash (409).
    const second = await two.post("/v1/messages", { id: "order-1001-paid", topic: "t.twins", payload: { from: "two" } });
    assert.equal(second.status, 201, JSON.stringify(second.body));
    assert.equal(second.body.id, "order-1001-paid");
    assert.deepEqual(second.body.payload, { from: "two" });
    // A non-atomic batch reusing the id answers with the caller's own message, never the other's.
    const batch = await two.post("/v1/messages/batch", {
      atomic: false,
      messages: [
        { id: "order-1001-paid", topic: "t.twins", payload: { from: "two" } },
        { id: "order-1001-paid", topic: "t.twins", payload: { from: "two", changed: true } },
        { id: "order-1002-paid", topic: "t.twins", payload: { from: "two" } },
      ],
    });
    assert.deepEqual(batch.body.outcomes, ["exists", "conflict", "created"]);
    assert.ok(!JSON.stringify(batch.body).includes("secret"), "nothing of app one's message in app two's answer");
    for (const item of batch.body.items) assert.equal(item.app, "twin-two");
    // Each reads its own under the shared id.
    assert.deepEqual((await one.get("/v1/messages/order-1001-paid")).body.payload, { from: "one", secret: 1 });
    assert.deepEqual((await two.get("/v1/messages/order-1001-paid")).body.payload, { from: "two" });
    assert.deepEqual(
      (await two.get("/v1/messages?id=order-1001-paid")).body.items.map((m: { app: string }) => m.app),
      ["twin-two"],
    );
    // The admin finds the id in every app.
    const everywhere = await admin.get("/v1/messages?id=order-1001-paid");
    assert.deepEqual(everywhere.body.items.map((m: { app: string }) => m.app).sort(), ["twin-one", "twin-two"]);
    // Receivers deduplicate on webhook-id: the full id keeps the two messages apart.
    await waitFor("both messages delivered", () => receiver.received.filter((r) => r.path === "/twins").length >= 3);
    const ids = receiver.received
      .filter((r) => r.path === "/twins")
      .map((r) => r.id)
      .sort();
    assert.deepEqual(ids, ["twin-one/order-1001-paid", "twin-two/order-1001-paid", "twin-two/order-1002-paid"]);
  });

  test("an app may read, but not change, the messages of its read topics", async () => {
    const producer = api(service.url, (await admin.post("/v1/apps", { name: "payments" })).body.apiKey);
    const created = await admin.post("/v1/apps", { name: "accounts", readTopics: ["pay.done"] });
    assert.deepEqual(created.body.readTopics, ["pay.done"]);
    const consumer = api(service.url, created.body.apiKey);
    const mine = await producer.post("/v1/messages", { topic: "pay.done", key: "tx-9", payload: { amount: 5 } });
    const other = await producer.post("/v1/messages", { topic: "pay.refund", key: "tx-9", payload: { amount: 5 } });
    // A consumer names the producer's message by its full id (the webhook-id it received).
    const ref = `payments%2F${mine.body.id}`;
    assert.equal((await consumer.get(`/v1/messages/${ref}`)).status, 200);
    assert.equal((await consumer.get(`/v1/messages/${ref}/attempts`)).status, 200);
    assert.equal((await consumer.get(`/v1/messages/payments%2F${other.body.id}`)).status, 404);
    assert.equal((await consumer.get(`/v1/messages/${mine.body.id}`)).status, 404, "a bare id is the consumer's own namespace");
    assert.deepEqual(
      (await consumer.get("/v1/messages?key=tx-9")).body.items.map((m: { id: string }) => m.id),
      [mine.body.id],
    );
    assert.equal((await consumer.post(`/v1/messages/${ref}/resend`)).status, 403);
    assert.equal((await consumer.delete(`/v1/messages/${ref}`)).status, 403);
    await admin.patch("/v1/apps/accounts", { readTopics: [] });
    assert.equal((await consumer.get(`/v1/messages/${ref}`)).status, 404);
  });

  test("a key lookup in flight when an app changes on this node is not cached", async () => {
    let answer = { name: "racer", readTopics: [], enabled: true };
    let release = () => {};
    const gate = new Promise<void>((resolve) => (release = resolve));
    const auth = new Authenticator(ADMIN_KEY, {
      app: async () => {
        const read = answer;
        await gate;
        return read;
      },
      operator: async () => null,
    });
    const request = { headers: { authorization: "Bearer tdk_racer" } } as FastifyRequest;
    const inFlight = auth.authenticate(request);
    // The app is disabled while the lookup (which read it enabled) is in flight.
    answer = { ...answer, enabled: false };
    auth.forget();
    release();
    assert.equal((await inFlight).kind, "app");
    await assert.rejects(auth.authenticate(request), (e: TidingsError) => e.code === "app_disabled" && /racer/.test(e.message));
  });
});

describe("apps and subscriptions", () => {
  test("apps can be created, read, listed, changed and deleted", async () => {
    const created = await admin.post("/v1/apps", { name: "orders", checkUrl: "http://127.0.0.1:9/check" });
    assert.equal(created.status, 201);
    assert.equal((await admin.post("/v1/apps", { name: "orders" })).status, 409);
    assert.equal((await admin.get("/v1/apps/orders")).body.checkUrl, "http://127.0.0.1:9/check");
    assert.ok((await admin.get("/v1/apps")).body.items.some((a: { name: string }) => a.name === "orders"));
    const patched = await admin.patch("/v1/apps/orders", { checkUrl: null });
    assert.equal(patched.status, 200);
    assert.equal(patched.body.checkUrl, null);
    assert.equal("apiKey" in (await admin.get("/v1/apps/orders")).body, false);
    const oldKey = api(service.url, created.body.apiKey);
    assert.equal((await oldKey.get("/v1/messages")).status, 200);
    const rotated = await admin.patch("/v1/apps/orders", { rotateKey: true, rotateSecret: true });
    assert.match(rotated.body.apiKey, /^tdk_/);
    assert.match(rotated.body.secret, /^whsec_/);
    assert.notEqual(rotated.body.secret, created.body.secret);
    assert.equal((await oldKey.get("/v1/messages")).status, 401);
    assert.equal((await api(service.url, rotated.body.apiKey).get("/v1/messages")).status, 200);
    assert.equal((await admin.delete("/v1/apps/orders")).status, 204);
    assert.equal((await admin.get("/v1/apps/orders")).status, 404);
    assert.equal((await admin.delete("/v1/apps/orders")).status, 404);
  });

  test("a disabled app's key is refused with 403 app_disabled and stores nothing; enabled again, it works", async () => {
    const created = await admin.post("/v1/apps", { name: "kiosk", checkUrl: `${receiver.url}/kiosk-check` });
    assert.equal(created.body.enabled, true);
    const kiosk = api(service.url, created.body.apiKey);
    assert.equal(
      (await admin.post("/v1/subscriptions", { name: "kiosk-later", topic: "t.kiosk.later", endpoint: { type: "http", url: `${receiver.url}/kiosk-later` } }))
        .status,
      201,
    );
    const before = await kiosk.post("/v1/messages", { id: "kiosk-1", topic: "t.kiosk", payload: { n: 1 } });
    assert.equal(before.status, 201);
    // Accepted before the disable: still delivered, and still checked back, after it.
    assert.equal((await kiosk.post("/v1/messages", { id: "kiosk-later", topic: "t.kiosk.later", payload: { n: 0 }, delay: "1s" })).status, 201);
    assert.equal((await kiosk.post("/v1/messages", { id: "kiosk-half", topic: "t.kiosk", payload: { n: 0 }, prepare: true, checkAfter: "1s" })).status, 201);
    // Looked up (and cached by this node) while enabled; the disable must not wait for the cache.
    assert.equal((await kiosk.get("/v1/messages/kiosk-1")).status, 200);

    const disabled = await admin.patch("/v1/apps/kiosk", { enabled: false });
    assert.equal(disabled.status, 200);
    assert.equal(disabled.body.enabled, false);
    assert.equal((await admin.get("/v1/apps/kiosk")).body.enabled, false);
    assert.equal((await admin.get("/v1/apps")).body.items.find((a: { name: string }) => a.name === "kiosk").enabled, false);
    const stored = await count("messages");
    for (const [what, call] of [
      ["POST /v1/messages", kiosk.post("/v1/messages", { id: "kiosk-2", topic: "t.kiosk", payload: { n: 2 } })],
      ["POST /v1/messages/batch", kiosk.post("/v1/messages/batch", { messages: [{ topic: "t.kiosk", payload: { n: 3 } }] })],
      ["GET /v1/messages/:id", kiosk.get("/v1/messages/kiosk-1")],
      ["GET /v1/messages", kiosk.get("/v1/messages")],
    ] as const) {
      const answer = await call;
      assert.equal(answer.status, 403, `${what}: ${JSON.stringify(answer.body)}`);
      assert.equal(answer.body.error.code, "app_disabled", what);
      assert.match(answer.body.error.message, /\bkiosk\b.*disabled/, what);
    }
    assert.equal(await count("messages"), stored, "nothing stored while disabled");
    assert.equal((await admin.get("/v1/messages/kiosk%2Fkiosk-2")).status, 404);
    // Told apart from an unknown key, and from the admin, who still reads the app's messages.
    assert.equal((await api(service.url, "tdk_unknown").get("/v1/messages")).body.error.code, "unauthorized");
    assert.equal((await admin.get("/v1/messages/kiosk%2Fkiosk-1")).status, 200);

    await waitFor("the delayed message delivered while its app is disabled", () => receiver.deliveredIds().has("kiosk/kiosk-later"));
    await waitFor("the prepared message checked back while its app is disabled", () =>
      receiver.received.some((r) => r.path === "/kiosk-check" && r.body.includes('"kiosk-half"')),
    );
    assert.equal((await admin.post("/v1/messages/kiosk%2Fkiosk-half/rollback")).status, 200);

    const enabled = await admin.patch("/v1/apps/kiosk", { enabled: true });
    assert.equal(enabled.body.enabled, true);
    assert.equal((await kiosk.get("/v1/messages/kiosk-1")).status, 200);
    assert.equal((await kiosk.post("/v1/messages", { id: "kiosk-2", topic: "t.kiosk", payload: { n: 2 } })).status, 201);

    const wrong = await admin.patch("/v1/apps/kiosk", { enabled: "no" });
    assert.equal(wrong.status, 400);
    assert.equal(wrong.body.error.code, "invalid_request");
    assert.equal(wrong.body.error.field, "enabled");
    assert.equal((await admin.get("/v1/apps/kiosk")).body.enabled, true, "a refused change changes nothing");
    const openapi = (await api(service.url, null).get("/openapi.json")).body;
    assert.equal(openapi.paths["/v1/apps/{name}"].patch.requestBody.content["application/json"].schema.properties.enabled.type, "boolean");
  });

  test("subscriptions can be created, read, listed, paused, resumed and deleted; the secret shows once", async () => {
    const created = await admin.post("/v1/subscriptions", {
      name: "crud",
      topic: "t.crud",
      tags: ["a"],
      endpoint: { type: "http", url: `${receiver.url}/crud`, headers: { "x-team": "ops" } },
      retry: { schedule: ["1s", "5s"], maxAttempts: 4, window: "1h" },
    });
    assert.equal(created.status, 201);
    assert.match(created.body.secret, /^whsec_/);
    assert.deepEqual(created.body.retry, { schedule: ["1s", "5s"], maxAttempts: 4, window: "1h" });
    const got = await admin.get("/v1/subscriptions/crud");
    assert.equal(got.status, 200);
    assert.equal(got.body.secret, undefined);
    assert.equal((await admin.post("/v1/subscriptions", { name: "crud", topic: "t.crud", endpoint: { type: "http", url: `${receiver.url}/x` } })).status, 409);
    const paused = await admin.patch("/v1/subscriptions/crud", { enabled: false });
    assert.equal(paused.body.enabled, false);
    assert.equal((await admin.patch("/v1/subscriptions/crud", { enabled: true })).body.enabled, true);
    const rotated = await admin.patch("/v1/subscriptions/crud", { rotateSecret: true });
    assert.match(rotated.body.secret, /^whsec_/);
    assert.notEqual(rotated.body.secret, created.body.secret);
    assert.ok((await admin.get("/v1/subscriptions")).body.items.some((s: { name: string }) => s.name === "crud"));
    assert.equal((await admin.delete("/v1/subscriptions/crud")).status, 204);
    assert.equal((await admin.get("/v1/subscriptions/crud")).status, 404);
  });
});

describe("bad input", () => {
  test("each kind of bad input gets a 4xx naming the problem, and nothing is written", async () => {
    const before = { messages: await count("messages"), subscriptions: await count("subscriptions"), apps: await count("apps") };
    const cases: Array<[string, Promise<{ status: number; body: any }>, number, string | undefined]> = [
      ["malformed JSON", admin.postRaw("/v1/messages", '{"topic": "x", '), 400, undefined],
      ["missing topic", admin.post("/v1/messages", { payload: {} }), 400, "topic"],
      ["missing payload", admin.post("/v1/messages", { topic: "x" }), 400, "payload"],
      ["wrongly typed topic", admin.post("/v1/messages", { topic: 42, payload: {} }), 400, "topic"],
      ["wrongly typed header", admin.post("/v1/messages", { topic: "x", payload: {}, headers: { a: 1 } }), 400, "headers.a"],
      ["unknown field", admin.post("/v1/messages", { topic: "x", payload: {}, colour: "red" }), 400, "colour"],
      ["bad delay", admin.post("/v1/messages", { topic: "x", payload: {}, delay: "soon" }), 400, "delay"],
      ["bad deliverAt", admin.post("/v1/messages", { topic: "x", payload: {}, deliverAt: "tomorrow" }), 400, "deliverAt"],
      ["delay and deliverAt", admin.post("/v1/messages", { topic: "x", payload: {}, delay: "1s", deliverAt: new Date().toISOString() }), 400, "delay"],
      ["bad id", admin.post("/v1/messages", { id: "has space", topic: "x", payload: {} }), 400, "id"],
      ["body over the limit", admin.post("/v1/messages", { topic: "x", payload: "y".repeat(70_000) }), 413, undefined],
      ["batch item missing topic", admin.post("/v1/messages/batch", { messages: [{ topic: "x", payload: 1 }, { payload: 2 }] }), 400, "messages[1].topic"],
      [
        "batch item bad delay",
        admin.post("/v1/messages/batch", {
          messages: [
            { topic: "x", payload: 1 },
            { topic: "x", payload: 2, delay: "2 weeks" },
          ],
        }),
        400,
        "messages[1].delay",
      ],
      ["empty batch", admin.post("/v1/messages/batch", { messages: [] }), 400, "messages"],
      [
        "bad subscription name",
        admin.post("/v1/subscriptions", { name: "Bad Name", topic: "x", endpoint: { type: "http", url: "http://127.0.0.1:1/" } }),
        400,
        "name",
      ],
      [
        "non-http URL",
        admin.post("/v1/subscriptions", { name: "s-ftp", topic: "x", endpoint: { type: "http", url: "ftp://127.0.0.1/" } }),
        400,
        "endpoint.url",
      ],
      ["not a URL", admin.post("/v1/subscriptions", { name: "s-nourl", topic: "x", endpoint: { type: "http", url: "nowhere" } }), 400, "endpoint.url"],
      [
        "metadata URL",
        admin.post("/v1/subscriptions", { name: "s-meta", topic: "x", endpoint: { type: "http", url: "http://169.254.169.254/" } }),
        400,
        "endpoint.url",
      ],
      [
        "unknown endpoint type",
        admin.post("/v1/subscriptions", { name: "s-type", topic: "x", endpoint: { type: "smtp", url: "http://127.0.0.1/" } }),
        400,
        "endpoint.type",
      ],
      [
        "bad schedule duration",
        admin.post("/v1/subscriptions", {
          name: "s-dur",
          topic: "x",
          endpoint: { type: "http", url: "http://127.0.0.1:1/" },
          retry: { schedule: ["1m", "5 minutes"] },
        }),
        400,
        "retry.schedule[1]",
      ],
      [
        "bad window",
        admin.post("/v1/subscriptions", { name: "s-win", topic: "x", endpoint: { type: "http", url: "http://127.0.0.1:1/" }, retry: { window: "1 day" } }),
        400,
        "retry.window",
      ],
      [
        "bad maxAttempts",
        admin.post("/v1/subscriptions", { name: "s-max", topic: "x", endpoint: { type: "http", url: "http://127.0.0.1:1/" }, retry: { maxAttempts: 0 } }),
        400,
        "retry.maxAttempts",
      ],
      ["bad app name", admin.post("/v1/apps", { name: "" }), 400, "name"],
      ["bad check URL", admin.post("/v1/apps", { name: "app-bad-url", checkUrl: "file:///etc/passwd" }), 400, "checkUrl"],
      ["unknown subscription", admin.get("/v1/subscriptions/nope"), 404, undefined],
      ["unknown app", admin.patch("/v1/apps/nope", { checkUrl: null }), 404, undefined],
      ["unknown message", admin.get("/v1/messages/nope"), 404, undefined],
      ["resend to unknown subscription", admin.post("/v1/messages/nope/resend", { subscription: "x" }), 404, undefined],
      ["bad list limit", admin.get("/v1/messages?limit=lots"), 400, "querystring.limit"],
      ["bad list state", admin.get("/v1/messages?state=lost"), 400, "querystring.state"],
      ["unknown list subscription", admin.get("/v1/messages?subscription=nope"), 404, "subscription"],
      ["unknown route", admin.get("/v1/nothing"), 404, undefined],
    ];
    for (const [what, call, status, field] of cases) {
      const answer = await call;
      assert.equal(answer.status, status, `${what}: ${JSON.stringify(answer.body)}`);
      assert.equal(typeof answer.body.error.code, "string", what);
      assert.ok(answer.body.error.message.length > 0, what);
      if (field !== undefined) assert.equal(answer.body.error.field, field, `${what}: ${JSON.stringify(answer.body)}`);
    }
    assert.deepEqual({ messages: await count("messages"), subscriptions: await count("subscriptions"), apps: await count("apps") }, before);
  });
});

describe("messages", () => {
  test("the same id with the same content is idempotent (200); with other content it is 409", async () => {
    const first = await admin.post("/v1/messages", { id: "order-1001", topic: "t.idem", key: "1001", payload: { b: 1, a: 2 } });
    assert.equal(first.status, 201);
    const again = await admin.post("/v1/messages", { id: "order-1001", topic: "t.idem", key: "1001", payload: { a: 2, b: 1 } });
    assert.equal(again.status, 200);
    assert.equal(again.body.createdAt, first.body.createdAt);
    const other = await admin.post("/v1/messages", { id: "order-1001", topic: "t.idem", key: "1001", payload: { a: 3 } });
    assert.equal(other.status, 409);
    assert.equal(other.body.error.code, "conflict");
    // Concurrent duplicates gathered into one write still answer one 201 and the rest 200.
    const racing = await Promise.all(Array.from({ length: 20 }, () => admin.post("/v1/messages", { id: "race-1", topic: "t.idem", payload: 1 })));
    assert.deepEqual(racing.map((r) => r.status).sort(), [...Array(19).fill(200), 201]);
  });

  test("every kind of JSON payload, header and key is stored and read back exactly", async () => {
    const tricky = 'quote " backslash \\ slash / tab \t newline \n ünïcødé 🎉 \u2028 <script>';
    const payloads: unknown[] = [
      tricky,
      0,
      -1.5e-7,
      true,
      null,
      [],
      [1, "two", { three: [3] }],
      { nested: { deep: { deeper: [null, false] } }, "key with spaces": tricky },
    ];
    const messages = payloads.map((payload, i) => ({
      id: `p-${i}`,
      topic: "t.payloads",
      key: `${tricky}-${i}`,
      tag: "t_ag",
      payload,
      headers: { "x-note": tricky },
    }));
    const batch = await admin.post("/v1/messages/batch", { messages: messages.slice(0, 4) });
    assert.equal(batch.status, 201, JSON.stringify(batch.body));
    for (const m of messages.slice(4)) {
      const one = await admin.post("/v1/messages", { ...m, delay: "1h" });
      assert.equal(one.status, 201, JSON.stringify(one.body));
    }
    for (const m of messages) {
      const stored = await admin.get(`/v1/messages/${m.id}`);
      assert.deepEqual([stored.body.payload, stored.body.key, stored.body.tag, stored.body.headers], [m.payload, m.key, m.tag, m.headers], m.id);
      // The same content again is a repeat (200), whichever way it came in.
      assert.equal((await admin.post("/v1/messages", m)).status, 200, m.id);
    }
    // Kept as the producer wrote it: key order included (jsonb would sort these keys).
    const ordered = await admin.post("/v1/messages", { topic: "t.payloads", payload: { zebra: 1, apple: { z: 1, a: 2 } } });
    const read = await admin.get(`/v1/messages/${ordered.body.id}`);
    assert.deepEqual(
      [Object.keys(read.body.payload), Object.keys(read.body.payload.apple)],
      [
        ["zebra", "apple"],
        ["z", "a"],
      ],
    );
    const delayed = await admin.get("/v1/messages/p-7");
    assert.ok(Date.parse(delayed.body.deliverAt) - Date.parse(delayed.body.createdAt) > 3_500_000);
  });

  test("a batch is all or nothing", async () => {
    const ok = await admin.post("/v1/messages/batch", {
      messages: [
        { id: "b-1", topic: "t.batch", payload: 1 },
        { id: "b-2", topic: "t.batch", payload: 2 },
      ],
    });
    assert.equal(ok.status, 201);
    assert.deepEqual(
      ok.body.items.map((m: { id: string }) => m.id),
      ["b-1", "b-2"],
    );
    const clash = await admin.post("/v1/messages/batch", {
      messages: [
        { id: "b-3", topic: "t.batch", payload: 3 },
        { id: "b-1", topic: "t.batch", payload: 99 },
      ],
    });
    assert.equal(clash.status, 409);
    assert.equal((await admin.get("/v1/messages/b-3")).status, 404);
    const loose = await admin.post("/v1/messages/batch", {
      atomic: false,
      messages: [
        { id: "b-4", topic: "t.batch", payload: 4 },
        { id: "b-1", topic: "t.batch", payload: 99 },
        { id: "b-2", topic: "t.batch", payload: 2 },
      ],
    });
    assert.equal(loose.status, 201);
    assert.deepEqual(loose.body.outcomes, ["created", "conflict", "exists"]);
    assert.equal(loose.body.items[1].payload, 1);
    assert.equal((await admin.get("/v1/messages/b-4")).status, 200);
    // Prefer: return=minimal answers ids and outcomes only, and says so.
    const minimal = await fetch(`${service.url}/v1/messages/batch`, {
      method: "POST",
      headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json", prefer: "respond-async, return=minimal" },
      body: JSON.stringify({
        atomic: false,
        messages: [
          { id: "b-5", topic: "t.batch", payload: 5 },
          { id: "b-1", topic: "t.batch", payload: 1 },
        ],
      }),
    });
    assert.equal(minimal.status, 201);
    assert.equal(minimal.headers.get("preference-applied"), "return=minimal");
    assert.deepEqual(await minimal.json(), { ids: ["b-5", "b-1"], outcomes: ["created", "exists"] });
    const big = await admin.post("/v1/messages/batch", { messages: Array.from({ length: 1001 }, (_, i) => ({ topic: "t.batch", payload: i })) });
    assert.equal(big.status, 400);
    assert.equal(big.body.error.field, "messages");
  });

  test("search by topic, key, state, subscription and delivery state pages newest first", async () => {
    await admin.post("/v1/subscriptions", { name: "search", topic: "t.search", endpoint: { type: "http", url: `${receiver.url}/search` } });
    for (let i = 0; i < 7; i++) await admin.post("/v1/messages", { id: `s-${i}`, topic: "t.search", key: i % 2 ? "odd" : "even", payload: i });
    const page1 = await admin.get("/v1/messages?topic=t.search&limit=3");
    assert.deepEqual(
      page1.body.items.map((m: { id: string }) => m.id),
      ["s-6", "s-5", "s-4"],
    );
    const page2 = await admin.get(`/v1/messages?topic=t.search&limit=3&cursor=${page1.body.nextCursor}`);
    assert.deepEqual(
      page2.body.items.map((m: { id: string }) => m.id),
      ["s-3", "s-2", "s-1"],
    );
    const page3 = await admin.get(`/v1/messages?topic=t.search&limit=3&cursor=${page2.body.nextCursor}`);
    assert.deepEqual(
      page3.body.items.map((m: { id: string }) => m.id),
      ["s-0"],
    );
    assert.equal(page3.body.nextCursor, null);
    const mid = (await admin.get("/v1/messages/s-3")).body.createdAt;
    const after = await admin.get(`/v1/messages?topic=t.search&createdAfter=${encodeURIComponent(mid)}`);
    assert.deepEqual(
      after.body.items.map((m: { id: string }) => m.id),
      ["s-6", "s-5", "s-4", "s-3"],
    );
    const before = await admin.get(`/v1/messages?topic=t.search&createdBefore=${encodeURIComponent(mid)}`);
    assert.deepEqual(
      before.body.items.map((m: { id: string }) => m.id),
      ["s-2", "s-1", "s-0"],
    );
    assert.equal((await admin.get("/v1/messages?createdAfter=yesterday")).body.error.field, "querystring.createdAfter");
    const odd = await admin.get("/v1/messages?topic=t.search&key=odd");
    assert.deepEqual(
      odd.body.items.map((m: { id: string }) => m.id),
      ["s-5", "s-3", "s-1"],
    );
    assert.equal((await admin.get("/v1/messages?topic=t.search&state=committed")).body.items.length, 7);
    await waitFor("search deliveries", async () => (await admin.get("/v1/messages?subscription=search&deliveryState=delivered")).body.items.length === 7);
    assert.equal((await admin.get("/v1/messages?subscription=search&deliveryState=pending")).body.items.length, 0);
  });

  test("a message shows its deliveries and its delivery log; mark dead, resend and delete act on it", async () => {
    receiver.behaviour = (r) => (r.path === "/down" ? 500 : 200);
    await admin.post("/v1/subscriptions", { name: "ops-up", topic: "t.ops", endpoint: { type: "http", url: `${receiver.url}/up` } });
    await admin.post("/v1/subscriptions", {
      name: "ops-down",
      topic: "t.ops",
      endpoint: { type: "http", url: `${receiver.url}/down` },
      retry: { schedule: ["1h"] },
    });
    const sent = await admin.post("/v1/messages", { id: "ops-1", topic: "t.ops", key: "k", payload: { x: 1 } });
    const id = sent.body.id;
    const shown = await waitFor("ops deliveries", async () => {
      const m = (await admin.get(`/v1/messages/${id}`)).body;
      const down = m.deliveries.find((d: { subscription: string }) => d.subscription === "ops-down");
      return m.deliveries.some((d: { state: string }) => d.state === "delivered") && down.attempts === 1 ? m : null;
    });
    const down = shown.deliveries.find((d: { subscription: string }) => d.subscription === "ops-down");
    assert.equal(down.state, "pending");
    assert.equal(down.lastStatus, 500);
    assert.match(down.lastError, /HTTP 500/);
    assert.ok(new Date(down.nextAttemptAt).getTime() > Date.now() + 50 * 60_000);
    const log = (await admin.get(`/v1/messages/${id}/attempts`)).body.items;
    assert.equal(log.length, 2);
    assert.deepEqual(log.map((a: { outcome: string }) => a.outcome).sort(), ["delivered", "failed"]);
    assert.ok(log.every((a: { latencyMs: number; attempt: number }) => a.latencyMs >= 0 && a.attempt === 1));

    assert.deepEqual((await admin.post(`/v1/messages/${id}/dead`, { subscription: "ops-down", reason: "receiver retired" })).body, { dead: 1 });
    const dead = (await admin.get(`/v1/messages/${id}`)).body.deliveries.find((d: { subscription: string }) => d.subscription === "ops-down");
    assert.equal(dead.state, "dead");
    assert.equal(dead.deadReason, "receiver retired");

    receiver.behaviour = () => 200;
    assert.deepEqual((await admin.post(`/v1/messages/${id}/resend`, { subscription: "ops-down" })).body, { resent: 1 });
    await waitFor("resent delivery", async () =>
      (await admin.get(`/v1/messages/${id}`)).body.deliveries.every((d: { state: string }) => d.state === "delivered"),
    );
    assert.equal((await admin.delete(`/v1/messages/${id}`)).status, 204);
    assert.equal((await admin.get(`/v1/messages/${id}`)).status, 404);
    assert.equal(Number((await db.query("select count(*) from deliveries where message_id = $1", [id])).rows[0].count), 0);
  });
});

describe("delivery", () => {
  test("each message reaches every matching subscription, signed so that standardwebhooks verifies it", async () => {
    const all = await admin.post("/v1/subscriptions", { name: "fan-all", topic: "t.fan", endpoint: { type: "http", url: `${receiver.url}/all` } });
    const vip = await admin.post("/v1/subscriptions", {
      name: "fan-vip",
      topic: "t.fan",
      tags: ["vip"],
      endpoint: { type: "http", url: `${receiver.url}/vip`, headers: { "x-team": "ops" } },
    });
    await admin.post("/v1/subscriptions", { name: "fan-other", topic: "t.other", endpoint: { type: "http", url: `${receiver.url}/other` } });
    const plain = await admin.post("/v1/messages", { topic: "t.fan", key: "p", payload: { kind: "plain" } });
    const tagged = await admin.post("/v1/messages", { topic: "t.fan", tag: "vip", key: "v", payload: { kind: "vip" }, headers: { trace: "abc" } });
    await waitFor("fan-out", () => receiver.received.filter((r) => r.path === "/all" || r.path === "/vip").length >= 3);
    const at = (path: string) =>
      receiver.received
        .filter((r) => r.path === path)
        .map((r) => r.id)
        .sort();
    assert.deepEqual(at("/all"), [plain.body.id, tagged.body.id].sort());
    assert.deepEqual(at("/vip"), [tagged.body.id]);
    assert.deepEqual(at("/other"), []);
    const got = receiver.received.find((r) => r.path === "/vip")!;
    assert.equal(got.headers["x-team"], "ops");
    assert.equal(got.headers["tidings-attempt"], "1");
    const verified = new Webhook(vip.body.secret).verify(got.body, {
      "webhook-id": String(got.headers["webhook-id"]),
      "webhook-timestamp": String(got.headers["webhook-timestamp"]),
      "webhook-signature": String(got.headers["webhook-signature"]),
    }) as Record<string, unknown>;
    assert.deepEqual(
      { id: verified.id, topic: verified.topic, tag: verified.tag, key: verified.key, payload: verified.payload, headers: verified.headers },
      { id: tagged.body.id, topic: "t.fan", tag: "vip", key: "v", payload: { kind: "vip" }, headers: { trace: "abc" } },
    );
    assert.equal(typeof verified.createdAt, "string");
    assert.throws(() => new Webhook(all.body.secret).verify(got.body, got.headers as Record<string, string>));
  });

  test("a delay holds the first attempt back", async () => {
    await admin.post("/v1/subscriptions", { name: "later", topic: "t.later", endpoint: { type: "http", url: `${receiver.url}/later` } });
    const sentAt = Date.now();
    const sent = await admin.post("/v1/messages", { topic: "t.later", payload: 1, delay: "1500ms" });
    const got = await waitFor("delayed delivery", () => receiver.received.find((r) => r.id === sent.body.id));
    assert.ok(got.at - sentAt >= 1500, `delivered after ${got.at - sentAt} ms`);
  });

  test("a paused subscription keeps its deliveries pending until resumed", async () => {
    await admin.post("/v1/subscriptions", { name: "paused", topic: "t.paused", enabled: false, endpoint: { type: "http", url: `${receiver.url}/paused` } });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await admin.post("/v1/messages", { topic: "t.paused", payload: i })).body.id);
    // A delayed message to another subscription can only go out through the poller, so once
    // it has arrived, the poller has had its chance at the paused deliveries too.
    await admin.post("/v1/subscriptions", { name: "paused-probe", topic: "t.paused-probe", endpoint: { type: "http", url: `${receiver.url}/probe` } });
    const probe = await admin.post("/v1/messages", { topic: "t.paused-probe", payload: 0, delay: "200ms" });
    await waitFor("the probe through the poller", () => receiver.counts.get(probe.body.id) === 1);
    assert.equal(receiver.received.filter((r) => r.path === "/paused").length, 0);
    const pending = (await admin.get(`/v1/messages/${ids[0]}`)).body.deliveries[0];
    assert.equal(pending.state, "pending");
    assert.equal(pending.attempts, 0);
    await admin.patch("/v1/subscriptions/paused", { enabled: true });
    await waitFor("resumed deliveries", () => ids.every((id) => receiver.counts.get(id) === 1));
  });

  test("metrics count accepted, delivered, failed and dead, and gauge pending deliveries", async () => {
    const text = await (await fetch(`${service.url}/metrics`)).text();
    const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1]);
    assert.ok(value("tidings_messages_accepted_total") >= 20);
    assert.ok(value("tidings_deliveries_delivered_total") >= 10);
    assert.ok(value("tidings_delivery_attempts_failed_total") >= 1);
    assert.ok(Number.isFinite(value("tidings_deliveries_dead_total")));
    assert.ok(Number.isFinite(value("tidings_deliveries_pending")));
    // Retries may be moving deliveries while we look: the gauge must agree with the database once both are read at rest.
    await waitFor("the pending gauge to match the database", async () => {
      const gauge = /^tidings_deliveries_pending (\S+)$/m.exec(await (await fetch(`${service.url}/metrics`)).text())?.[1];
      return Number(gauge) === Number((await db.query("select count(*) from deliveries where state = 'pending'")).rows[0].count);
    });
    assert.ok(value("tidings_deliveries_pending") >= 0);
  });
});
