// The broker consumers against the real brokers of the test machine (scripts/with-services.sh):
// messages applied once through the inbox, duplicates skipped, a handler that fails once retried,
// one that always fails given up on when its retry schedule runs out (RabbitMQ dead-letter exchange,
// JetStream MaxDeliver, Redis pending entries claimed and then moved to a dead stream), and a body
// that is not an envelope dead-lettered at once.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { connect as amqpConnect } from "amqplib";
import { connect as natsConnect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Redis } from "ioredis";
import {
  consume,
  Inbox,
  rabbitmqDeadLetter,
  rabbitmqRetryQueue,
  type BrokerDelivery,
  type ConsumeEvent,
  type Consumer,
  type Envelope,
  type Executor,
} from "../src/index.ts";
import { stillAfter, waitFor } from "@tidings/testkit/wait";
import { openDatabase, type OpenDatabase } from "./support/databases.ts";
import { TEST_AMQP_URL as AMQP_URL, TEST_NATS_URL as NATS_URL, TEST_REDIS_URL as REDIS_URL } from "@tidings/testkit/brokers";

let database: OpenDatabase;
before(async () => {
  database = await openDatabase("postgres", "consume");
  await database.db.query("CREATE TABLE consumed (id text NOT NULL)");
});
after(() => database.close());

const envelope = (id: string, mode: "ok" | "flaky" | "bad") =>
  JSON.stringify({ id, topic: "t.consume", tag: null, key: id, payload: { mode }, headers: {}, createdAt: new Date().toISOString() });

/** A handler that records effects, fails once for "flaky" and always for "bad"; and the events seen. */
function harness() {
  const seen = new Map<string, number>();
  const events: ConsumeEvent[] = [];
  return {
    events,
    seen,
    handle: async (message: Envelope, tx: Executor) => {
      const n = (seen.get(message.id) ?? 0) + 1;
      seen.set(message.id, n);
      const { mode } = message.payload as { mode: string };
      await tx.query("INSERT INTO consumed (id) VALUES ($1)", [message.id]);
      if (mode === "bad" || (mode === "flaky" && n === 1)) throw new Error(`handler refuses ${message.id} (try ${n})`);
    },
    onEvent: (e: ConsumeEvent) => void events.push(e),
    count: (type: ConsumeEvent["type"], id: string) => events.filter((e) => e.type === type && "message" in e && e.message.id === id).length,
  };
}

async function effects(prefix: string): Promise<Record<string, number>> {
  const rows = await database.db.query<{ id: string; n: number }>("SELECT id, count(*)::int AS n FROM consumed WHERE id LIKE $1 GROUP BY id", [`${prefix}%`]);
  return Object.fromEntries(rows.map((r) => [r.id, r.n]));
}

describe("consume.rabbitmq", () => {
  test("applies once, skips duplicates, retries a failure through a retry queue, and dead-letters when the schedule runs out", async () => {
    const name = `tidings_consume_${randomBytes(4).toString("hex")}`;
    const h = harness();
    const inbox = new Inbox({ consumer: name });
    const consumer: Consumer = await consume.rabbitmq({
      url: AMQP_URL,
      queue: name,
      exchange: name,
      db: database.db,
      inbox,
      retry: { schedule: ["20ms"], maxAttempts: 3 },
      ...h,
    });
    const model = await amqpConnect(AMQP_URL);
    const ch = await model.createConfirmChannel();
    try {
      const publish = (routingKey: string, body: string) =>
        new Promise<void>((resolve, reject) =>
          ch.publish(name, routingKey, Buffer.from(body), { persistent: true }, (e: unknown) => (e ? reject(e) : resolve())),
        );
      const p = `${name}-`;
      await publish("t.consume", envelope(`${p}ok`, "ok"));
      await publish("t.consume", envelope(`${p}ok`, "ok")); // the service sent it twice
      await publish("t.consume", envelope(`${p}flaky`, "flaky"));
      await publish("t.consume", envelope(`${p}bad`, "bad"));
      await publish("t.consume", "this is not an envelope");
      const dead = rabbitmqDeadLetter(name).queue;
      const deadBodies: string[] = [];
      await waitFor("two messages in the dead-letter queue", async () => {
        const got = await ch.get(dead, { noAck: true });
        if (got) deadBodies.push(got.content.toString());
        return deadBodies.length === 2 && h.count("applied", `${p}flaky`) === 1;
      });
      assert.deepEqual(await effects(p), { [`${p}ok`]: 1, [`${p}flaky`]: 1 });
      assert.equal(h.count("duplicate", `${p}ok`), 1);
      assert.equal(h.count("failed", `${p}bad`), 3, "tried maxAttempts times");
      assert.ok(deadBodies.some((b) => b.includes(`${p}bad`)) && deadBodies.includes("this is not an envelope"));
      const flaky = h.events.find((e) => e.type === "applied" && e.message.id === `${p}flaky`) as { delivery: BrokerDelivery } | undefined;
      assert.equal(flaky?.delivery.redelivered, true);
      assert.equal((await inbox.get(database.db, `${p}bad`))?.status, "failed");
      assert.deepEqual({ ...consumer.stats }, { received: 8, applied: 2, duplicates: 1, failed: 4, invalid: 1, redeliveries: 3 });
    } finally {
      await consumer.close();
      for (const q of [name, rabbitmqDeadLetter(name).queue, rabbitmqRetryQueue(name, 20)]) await ch.deleteQueue(q).catch(() => undefined);
      for (const x of [name, rabbitmqDeadLetter(name).exchange]) await ch.deleteExchange(x).catch(() => undefined);
      await model.close();
    }
  });
});

describe("consume.nats", () => {
  test("applies once, skips duplicates, retries a failure, and stops at MaxDeliver", async () => {
    const name = `tidings_consume_${randomBytes(4).toString("hex")}`;
    const h = harness();
    const inbox = new Inbox({ consumer: name });
    const consumer = await consume.nats({
      url: NATS_URL,
      stream: name,
      subjects: [`${name}.>`],
      durable: name,
      db: database.db,
      inbox,
      retry: { schedule: ["20ms"], maxAttempts: 3 },
      ...h,
    });
    const nc = await natsConnect({ servers: new URL(NATS_URL).host });
    const js = jetstream(nc);
    try {
      const p = `${name}-`;
      await js.publish(`${name}.t`, envelope(`${p}ok`, "ok"), { msgID: `${p}ok` });
      await js.publish(`${name}.t`, envelope(`${p}ok`, "ok")); // no msg id: JetStream keeps both
      await js.publish(`${name}.t`, envelope(`${p}flaky`, "flaky"), { msgID: `${p}flaky` });
      await js.publish(`${name}.t`, envelope(`${p}bad`, "bad"), { msgID: `${p}bad` });
      const dup = await js.publish(`${name}.t`, envelope(`${p}bad`, "bad"), { msgID: `${p}bad` });
      assert.equal(dup.duplicate, true, "Nats-Msg-Id de-duplicates within the window");
      await js.publish(`${name}.t`, "this is not an envelope");
      await waitFor("MaxDeliver reached", () => h.count("failed", `${p}bad`) === 3 && h.count("applied", `${p}flaky`) === 1 && consumer.stats.invalid === 1);
      // Redelivered every 20 ms until then: a quiet 300 ms shows MaxDeliver stopped it.
      await stillAfter("no fourth delivery of the hopeless message", () => h.count("failed", `${p}bad`) === 3, 300);
      assert.deepEqual(await effects(p), { [`${p}ok`]: 1, [`${p}flaky`]: 1 });
      assert.equal(h.count("duplicate", `${p}ok`), 1);
      const info = await (await jetstreamManager(nc)).consumers.info(name, name);
      assert.equal(info.num_ack_pending, 0, "nothing left unacknowledged (the last delivery of the hopeless one was terminated)");
      assert.equal((await inbox.get(database.db, `${p}bad`))?.status, "failed");
    } finally {
      await consumer.close();
      await (await jetstreamManager(nc)).streams.delete(name).catch(() => undefined);
      await nc.close();
    }
  });
});

describe("consume.redis", () => {
  test("applies once, skips duplicates, claims a failed entry again after its step of the retry schedule, and moves the hopeless to the dead stream", async () => {
    const name = `tidings_consume_${randomBytes(4).toString("hex")}`;
    const h = harness();
    const inbox = new Inbox({ consumer: name });
    const consumer = await consume.redis({
      url: REDIS_URL,
      stream: name,
      group: name,
      db: database.db,
      inbox,
      retry: { schedule: ["200ms"], maxAttempts: 3 },
      blockMs: 200,
      ...h,
    });
    const redis = new Redis(REDIS_URL, { protocol: 2 });
    try {
      const p = `${name}-`;
      const add = (body: string) => redis.call("XADD", name, "*", "tidings-id", "x", "body", body);
      await add(envelope(`${p}ok`, "ok"));
      await add(envelope(`${p}ok`, "ok"));
      await add(envelope(`${p}flaky`, "flaky"));
      await add(envelope(`${p}bad`, "bad"));
      await add("this is not an envelope");
      await waitFor("the dead stream to hold two entries", async () => (await redis.xlen(`${name}:dead`)) === 2 && h.count("applied", `${p}flaky`) === 1);
      assert.deepEqual(await effects(p), { [`${p}ok`]: 1, [`${p}flaky`]: 1 });
      assert.equal(h.count("duplicate", `${p}ok`), 1);
      assert.equal(h.count("failed", `${p}bad`), 3, "tried maxAttempts times");
      const flaky = h.events.find((e) => e.type === "applied" && e.message.id === `${p}flaky`) as { delivery: BrokerDelivery } | undefined;
      assert.equal(flaky?.delivery.redelivered, true, "claimed again after its step of the schedule");
      const dead = (await redis.call("XRANGE", name, "-", "+")) as unknown[];
      assert.equal(dead.length, 5, "the stream itself keeps its entries");
      const pending = (await redis.call("XPENDING", name, name)) as [number, ...unknown[]];
      assert.equal(pending[0], 0, "nothing left pending");
      assert.ok(h.events.some((e) => e.type === "dead" && e.deliveryCount === 3));
    } finally {
      await consumer.close();
      await redis.del(name, `${name}:dead`);
      redis.disconnect();
    }
  });

  test("an entry whose handler outlasts the schedule's step is not handed to the handler again while it runs", async () => {
    const name = `tidings_consume_${randomBytes(4).toString("hex")}`;
    const h = harness();
    const consumer = await consume.redis({
      url: REDIS_URL,
      stream: name,
      group: name,
      db: database.db,
      inbox: new Inbox({ consumer: name }),
      retry: { schedule: ["100ms"], maxAttempts: 3 },
      blockMs: 200,
      ...h,
      handle: async (message, tx) => {
        // Five of the claim loop's rounds, each of which finds the entry idle past its step.
        await new Promise((r) => setTimeout(r, 500));
        await h.handle(message, tx);
      },
    });
    const redis = new Redis(REDIS_URL, { protocol: 2 });
    try {
      const id = `${name}-slow`;
      await redis.call("XADD", name, "*", "tidings-id", "x", "body", envelope(id, "ok"));
      await waitFor(
        "the slow entry applied and acked",
        async () => h.count("applied", id) === 1 && ((await redis.call("XPENDING", name, name)) as [number])[0] === 0,
      );
      // A second handling, had the claim loop taken the entry, would be waiting on the first's inbox row and end just after it.
      await stillAfter("no second handling of the entry", () => h.count("duplicate", id) === 0 && h.count("applied", id) === 1, 700);
      assert.equal(h.seen.get(id), 1, "handed to the handler once");
      assert.equal(h.count("duplicate", id), 0);
    } finally {
      await consumer.close();
      await redis.del(name, `${name}:dead`);
      redis.disconnect();
    }
  });
});
