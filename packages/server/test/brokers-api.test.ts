// Broker endpoints through the API: validation naming the field, passwords masked, the network
// policy on broker hosts, and what a delivery puts into each real broker (the machine's shared
// RabbitMQ, NATS and Redis: scripts/with-services.sh) -- headers, envelope, persistence -- and the
// clear errors of a delivery the broker cannot take. Credentials never reach the logs.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import pg from "pg";
import pino from "pino";
import { connect as amqpConnect } from "amqplib";
import { connect as natsConnect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Redis } from "ioredis";
import { loadConfig } from "../src/runtime/config.ts";
import { maskUrl, parseBrokerUrl, scrubSecrets } from "../src/transports/brokerUrl.ts";
import { natsToken, renderTemplate } from "../src/transports/brokerMessage.ts";
import type { LeasedDelivery } from "../src/domain/delivery.ts";
import { startService, type RunningService } from "../src/runtime/service.ts";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY } from "@tidings/testkit/service";
import { api } from "./support/api.ts";
import { waitFor } from "@tidings/testkit/wait";
import { TEST_AMQP_URL as AMQP_URL, TEST_NATS_URL as NATS_URL, TEST_REDIS_URL as REDIS_URL } from "@tidings/testkit/brokers";

const SUFFIX = randomBytes(4).toString("hex");

let database: TestDatabase;
let service: RunningService;
let logs = "";
let admin: ReturnType<typeof api>;
let sql: pg.Pool;

before(async () => {
  database = await createTestDatabase("brokers_api");
  const config = loadConfig({
    DATABASE_URL: database.url,
    TIDINGS_PORT: "0",
    TIDINGS_ADMIN_KEY: ADMIN_KEY,
    TIDINGS_POLL_INTERVAL: "100ms",
    TIDINGS_DATA_DIR: "/nonexistent-tidings-test-dir",
    TIDINGS_ENDPOINT_DENY: "10.0.0.0/8",
  });
  const sink = new Writable({
    write: (chunk, _e, done) => {
      logs += chunk.toString();
      done();
    },
  });
  service = await startService(config, pino({ level: "debug" }, sink));
  admin = api(service.url, ADMIN_KEY);
  sql = new pg.Pool({ connectionString: database.url, max: 2 });
});
after(async () => {
  await service.close();
  await sql.end();
  await database.drop();
});

const retry = { schedule: ["100ms"], maxAttempts: 2 };
const subscribe = (name: string, endpoint: Record<string, unknown>, topic = `t.${name}`) => admin.post("/v1/subscriptions", { name, topic, endpoint, retry });

describe("broker URL and template helpers", () => {
  test("maskUrl hides passwords and NATS tokens, and everything of what does not parse", () => {
    assert.equal(maskUrl("amqp://app:pw@mq:5672/vh"), "amqp://app:***@mq:5672/vh");
    assert.equal(maskUrl("amqps://app@mq"), "amqps://app@mq");
    assert.equal(maskUrl("nats://s3cret@n:4222"), "nats://***@n:4222");
    assert.equal(maskUrl("nats://u:p@n:4222"), "nats://u:***@n:4222");
    assert.equal(maskUrl("rediss://:p@r:6380/1"), "rediss://:***@r:6380/1");
    assert.equal(maskUrl("amqp://no host:pw@"), "***");
  });

  test("scrubSecrets removes the password from an error text", () => {
    assert.equal(scrubSecrets("login as app with p4ssw0rd refused", "amqp://app:p4ssw0rd@mq"), "login as app with *** refused");
    assert.equal(scrubSecrets("cannot reach amqp://app:p4ssw0rd@mq", "amqp://app:p4ssw0rd@mq"), "cannot reach amqp://app:***@mq");
  });

  test("parseBrokerUrl checks the scheme per type and finds the address", () => {
    assert.deepEqual(parseBrokerUrl("rabbitmq", "amqp://u:p@10.0.0.1/vh"), { protocol: "amqp:", host: "10.0.0.1", port: 5672 });
    assert.deepEqual(parseBrokerUrl("redis", "redis://[::1]:7000"), { protocol: "redis:", host: "::1", port: 7000 });
    assert.deepEqual(parseBrokerUrl("nats", "amqp://h"), { error: "must start with nats:// or tls://" });
  });

  test("templates fill topic, tag and key; NATS values lose wildcards and spaces", () => {
    const delivery = { message: { topic: "orders", tag: null, key: "a b*>" } } as unknown as LeasedDelivery;
    assert.equal(renderTemplate("{topic}.{tag}.{key}", delivery), "orders._.a b*>");
    assert.equal(renderTemplate("x.{topic}.{key}", delivery, natsToken), "x.orders.a_b__");
  });
});

describe("broker endpoints in the API", () => {
  test("bad endpoints get a 400 naming the field", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ type: "kafka", url: "kafka://h:9092" }, "endpoint.type"],
      [{ type: "rabbitmq", url: "amqp://h" }, "endpoint.exchange"],
      [{ type: "rabbitmq", url: "amqp://h", exchange: "x", subject: "s" }, "endpoint.subject"],
      [{ type: "rabbitmq", url: "http://h", exchange: "x" }, "endpoint.url"],
      [{ type: "nats", url: "nats://h", subject: "a.*" }, "endpoint.subject"],
      [{ type: "nats", url: "redis://h", subject: "a" }, "endpoint.url"],
      [{ type: "redis", url: "redis://h", stream: "s", maxLen: 0 }, "endpoint.maxLen"],
      [{ type: "redis", url: "not a url", stream: "s" }, "endpoint.url"],
      [{ type: "http", url: "http://127.0.0.1:9/", stream: "s" }, "endpoint.stream"],
    ];
    for (const [endpoint, field] of cases) {
      const r = await subscribe(`bad-${SUFFIX}`, endpoint);
      assert.equal(r.status, 400, JSON.stringify(endpoint));
      assert.equal(r.body.error.field, field, `${JSON.stringify(endpoint)}: ${r.body.error.message}`);
    }
  });

  test("the network policy applies to broker hosts", async () => {
    const denied = await subscribe(`deny-${SUFFIX}`, { type: "redis", url: "redis://10.1.2.3:6379", stream: "s" });
    assert.equal(denied.status, 400);
    assert.equal(denied.body.error.field, "endpoint.url");
    const metadata = await subscribe(`meta-${SUFFIX}`, { type: "nats", url: "nats://169.254.169.254:4222", subject: "s" });
    assert.equal(metadata.status, 400);
    assert.match(metadata.body.error.message, /metadata|refused/);
  });

  test("passwords in broker URLs are masked, and a masked URL sent back keeps the stored one", async () => {
    const name = `masked-${SUFFIX}`;
    const created = await subscribe(name, { type: "rabbitmq", url: "amqp://app:s3cr3t-pw@127.0.0.1:5672/vh", exchange: "orders" });
    assert.equal(created.status, 201);
    assert.equal(created.body.endpoint.url, "amqp://app:***@127.0.0.1:5672/vh");
    assert.equal(created.body.endpoint.routingKey, undefined);
    const shown = await admin.get(`/v1/subscriptions/${name}`);
    assert.equal(shown.body.endpoint.url, "amqp://app:***@127.0.0.1:5672/vh");
    const listed = await admin.get("/v1/subscriptions");
    assert.ok(!JSON.stringify(listed.body).includes("s3cr3t-pw"));
    // a client that GETs, edits the routing key and PATCHes the endpoint back
    const patched = await admin.patch(`/v1/subscriptions/${name}`, { endpoint: { ...shown.body.endpoint, routingKey: "{topic}.{tag}" } });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal(patched.body.endpoint.routingKey, "{topic}.{tag}");
    const stored = await sql.query("select endpoint from subscriptions where name = $1", [name]);
    assert.equal(stored.rows[0].endpoint.url, "amqp://app:s3cr3t-pw@127.0.0.1:5672/vh");
    const token = await subscribe(`token-${SUFFIX}`, { type: "nats", url: "nats://t0ken-value@127.0.0.1:4222", subject: "s" });
    assert.equal(token.body.endpoint.url, "nats://***@127.0.0.1:4222");
    const redis = await subscribe(`redispw-${SUFFIX}`, { type: "redis", url: "redis://:r3dis-pw@127.0.0.1:6379/2", stream: "s", maxLen: 1000 });
    assert.equal(redis.body.endpoint.url, "redis://:***@127.0.0.1:6379/2");
    assert.equal(redis.body.endpoint.maxLen, 1000);
    for (const n of [name, `token-${SUFFIX}`, `redispw-${SUFFIX}`]) assert.equal((await admin.delete(`/v1/subscriptions/${n}`)).status, 204);
  });
});

async function send(topic: string, id: string, extra: Record<string, unknown> = {}) {
  const r = await admin.post("/v1/messages", { id, topic, payload: { hello: id }, ...extra });
  assert.equal(r.status, 201, JSON.stringify(r.body));
}
async function deliveryOf(id: string) {
  return waitFor(`delivery of ${id} to settle`, async () => {
    const r = await admin.get(`/v1/messages/${id}`);
    const d = r.body.deliveries?.[0];
    return d && d.state !== "pending" ? d : null;
  });
}

describe("deliveries into real brokers", () => {
  test("RabbitMQ: a persistent message with the envelope and the tidings headers; unroutable and missing exchanges are failures", async () => {
    const exchange = `tidings_api_${SUFFIX}`;
    const model = await amqpConnect(AMQP_URL);
    const ch = await model.createChannel();
    try {
      await ch.assertExchange(exchange, "topic", { durable: false, autoDelete: false });
      const { queue } = await ch.assertQueue("", { exclusive: true });
      await ch.bindQueue(queue, exchange, "orders.#");
      const url = AMQP_URL;
      assert.equal((await subscribe(`rmq-${SUFFIX}`, { type: "rabbitmq", url, exchange, routingKey: "{topic}.{tag}" }, "orders")).status, 201);
      await send("orders", `rmq-ok-${SUFFIX}`, { tag: "paid", key: "order-7" });
      assert.equal((await deliveryOf(`rmq-ok-${SUFFIX}`)).state, "delivered");
      const got = await waitFor("the message in the queue", async () => (await ch.get(queue, { noAck: true })) || null);
      assert.equal(got.fields.routingKey, "orders.paid");
      assert.equal(got.properties.deliveryMode, 2, "persistent");
      assert.equal(got.properties.messageId, `rmq-ok-${SUFFIX}`);
      assert.deepEqual(
        { ...got.properties.headers, "tidings-delivery": undefined },
        {
          "tidings-id": `rmq-ok-${SUFFIX}`,
          "tidings-topic": "orders",
          "tidings-tag": "paid",
          "tidings-key": "order-7",
          "tidings-attempt": "1",
          "tidings-subscription": `rmq-${SUFFIX}`,
          "tidings-delivery": undefined,
        },
      );
      const body = JSON.parse(got.content.toString());
      assert.deepEqual(Object.keys(body), ["id", "topic", "tag", "key", "payload", "headers", "createdAt"]);
      assert.deepEqual(body.payload, { hello: `rmq-ok-${SUFFIX}` });

      assert.equal((await admin.delete(`/v1/subscriptions/rmq-${SUFFIX}`)).status, 204);

      assert.equal((await subscribe(`rmq-unroutable-${SUFFIX}`, { type: "rabbitmq", url, exchange, routingKey: "nowhere" }, "unroutable")).status, 201);
      await send("unroutable", `rmq-unroutable-${SUFFIX}`);
      const unroutable = await deliveryOf(`rmq-unroutable-${SUFFIX}`);
      assert.equal(unroutable.state, "dead");
      assert.match(unroutable.lastError, /unroutable: no queue is bound/);

      assert.equal((await subscribe(`rmq-noexchange-${SUFFIX}`, { type: "rabbitmq", url, exchange: `missing_${SUFFIX}` }, "noexchange")).status, 201);
      await send("noexchange", `rmq-noexchange-${SUFFIX}`);
      const missing = await deliveryOf(`rmq-noexchange-${SUFFIX}`);
      assert.equal(missing.state, "dead");
      assert.match(missing.lastError, /exchange "missing_\w+" does not exist/);

      const wrongPassword = AMQP_URL.replace(/\/\/[^@]*@/, "//guest:wr0ng-pa55word@");
      assert.equal((await subscribe(`rmq-auth-${SUFFIX}`, { type: "rabbitmq", url: wrongPassword, exchange }, "badauth")).status, 201);
      await send("badauth", `rmq-auth-${SUFFIX}`);
      const refused = await deliveryOf(`rmq-auth-${SUFFIX}`);
      assert.equal(refused.state, "dead");
      assert.ok(!refused.lastError.includes("wr0ng-pa55word"), refused.lastError);
    } finally {
      await ch.deleteExchange(exchange).catch(() => undefined);
      await model.close();
    }
  });

  test("NATS: JetStream gets the envelope with Nats-Msg-Id and the tidings headers; no stream is a failure", async () => {
    const stream = `tidings_api_${SUFFIX}`;
    const nc = await natsConnect({ servers: new URL(NATS_URL).host });
    const jsm = await jetstreamManager(nc);
    try {
      await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
      assert.equal((await subscribe(`nats-${SUFFIX}`, { type: "nats", url: NATS_URL, subject: `${stream}.{topic}` }, "invoices.v1")).status, 201);
      await send("invoices.v1", `nats-ok-${SUFFIX}`, { key: "inv 9" });
      assert.equal((await deliveryOf(`nats-ok-${SUFFIX}`)).state, "delivered");
      const stored = await jsm.streams.getMessage(stream, { seq: 1 });
      assert.ok(stored);
      assert.equal(stored.subject, `${stream}.invoices.v1`);
      assert.equal(stored.header.get("Nats-Msg-Id"), `nats-ok-${SUFFIX}`);
      assert.equal(stored.header.get("tidings-id"), `nats-ok-${SUFFIX}`);
      assert.equal(stored.header.get("tidings-key"), "inv 9");
      assert.equal(stored.header.get("tidings-attempt"), "1");
      assert.equal(stored.header.get("tidings-subscription"), `nats-${SUFFIX}`);
      assert.equal(stored.header.has("tidings-tag"), false, "no tag: no header");
      assert.equal(JSON.parse(stored.string()).id, `nats-ok-${SUFFIX}`);

      assert.equal((await subscribe(`nats-nostream-${SUFFIX}`, { type: "nats", url: NATS_URL, subject: `nostream_${SUFFIX}.x` }, "nostream")).status, 201);
      await send("nostream", `nats-nostream-${SUFFIX}`);
      const failed = await deliveryOf(`nats-nostream-${SUFFIX}`);
      assert.equal(failed.state, "dead");
      assert.ok(failed.lastError, "an error text");
    } finally {
      await jsm.streams.delete(stream).catch(() => undefined);
      await nc.close();
    }
  });

  test("Redis: XADD of the tidings fields and the envelope, trimmed with MAXLEN ~", async () => {
    const stream = `tidings_api_${SUFFIX}`;
    const redis = new Redis(REDIS_URL, { protocol: 2 });
    try {
      assert.equal((await subscribe(`redis-${SUFFIX}`, { type: "redis", url: REDIS_URL, stream, maxLen: 5 }, "carts")).status, 201);
      await send("carts", `redis-0-${SUFFIX}`, { tag: "t", key: "k" });
      assert.equal((await deliveryOf(`redis-0-${SUFFIX}`)).state, "delivered");
      const entries = (await redis.call("XRANGE", stream, "-", "+")) as [string, string[]][];
      const fields = entries[0]![1];
      const map = Object.fromEntries(fields.flatMap((_, i) => (i % 2 ? [] : [[fields[i], fields[i + 1]]])));
      assert.deepEqual(Object.keys(map), ["tidings-id", "tidings-topic", "tidings-tag", "tidings-key", "tidings-attempt", "tidings-subscription", "body"]);
      assert.equal(map["tidings-subscription"], `redis-${SUFFIX}`, "the subscription a consumer reports its outcome by");
      assert.equal(map["tidings-id"], `redis-0-${SUFFIX}`);
      assert.equal(JSON.parse(map.body!).key, "k");
      const batch = await admin.post("/v1/messages/batch", {
        messages: Array.from({ length: 300 }, (_, i) => ({ id: `redis-b${i}-${SUFFIX}`, topic: "carts", payload: i })),
      });
      assert.equal(batch.status, 201);
      const delivered = "select count(*)::int as n from deliveries d join messages m on m.id = d.message_id where m.topic = 'carts' and d.state = 'delivered'";
      await waitFor("300 deliveries", async () => (await sql.query(delivered)).rows[0].n === 301, 30_000);
      const length = await redis.xlen(stream);
      assert.ok(length < 301, `trimmed to about 5 (MAXLEN ~ trims whole nodes): ${length}`);
      assert.ok(!logs.includes("wr0ng-pa55word") && !logs.includes("s3cr3t-pw"), "no credentials in the logs");
    } finally {
      await redis.del(stream);
      redis.disconnect();
    }
  });
});
