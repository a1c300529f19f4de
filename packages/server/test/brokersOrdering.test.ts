// A subscription ordered by key whose endpoint is a real broker (the machine's shared Redis, NATS
// and RabbitMQ): messages of 20 keys are published while the broker refuses, now and then, every
// publish (Redis: the stream's key holds a string, so XADD fails with WRONGTYPE; NATS: no stream
// captures the subject; RabbitMQ: no queue is bound, so the message is unroutable), and the
// refused deliveries are retried on a short schedule. What the broker ends up holding, read in its
// order, must give every key its messages in the order they were published, none missing.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { connect as amqpConnect } from "amqplib";
import { connect as natsConnect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Redis } from "ioredis";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, startTestService, type RunningService } from "@tidings/testkit/service";
import { TEST_AMQP_URL, TEST_NATS_URL, TEST_REDIS_URL } from "@tidings/testkit/brokers";
import { waitFor } from "@tidings/testkit/wait";
import { api } from "./support/api.ts";

const KEYS = 20;
const CYCLES = 12;
const PER_HALF = 25; // each cycle publishes this many while the broker refuses, then as many while it takes them
const TOTAL = CYCLES * PER_HALF * 2;
/** Set to "none" to see the test catch what an unordered subscription does. */
const ORDERING = process.env.TIDINGS_BROKER_ORDERING ?? "key";
const SUFFIX = randomBytes(4).toString("hex");

let database: TestDatabase;
let service: RunningService;
let admin: ReturnType<typeof api>;
let sql: pg.Pool;

before(async () => {
  database = await createTestDatabase("brokers_ordering");
  service = await startTestService(database.url, { TIDINGS_DELIVERY_TIMEOUT: "3s" });
  admin = api(service.url, ADMIN_KEY);
  sql = new pg.Pool({ connectionString: database.url, max: 2 });
});
after(async () => {
  await service.close();
  await sql.end();
  await database.drop();
});

/** One message as the broker holds it. */
interface Arrival {
  id: string;
  key: string;
  n: number;
}

/** A broker that can be made to refuse every publish of the endpoint, and read back in its order. */
interface Gate {
  endpoint: Record<string, unknown>;
  /** What a refused attempt's error says (the reason an operator reads in lastError). */
  refusal: RegExp;
  refuse(): Promise<void>;
  accept(): Promise<void>;
  /** Everything the broker took, in the order it took it. */
  arrived(): Promise<Arrival[]>;
  close(): Promise<void>;
}

const fromEnvelope = (text: string): Arrival => {
  const envelope = JSON.parse(text);
  return { id: envelope.id, key: envelope.key, n: envelope.payload.n };
};

async function redisGate(): Promise<Gate> {
  const stream = `tidings_order_${SUFFIX}`;
  const redis = new Redis(TEST_REDIS_URL, { protocol: 2 });
  const taken: Arrival[] = [];
  const entries = (raw: unknown) => (raw as [string, string[]][]).map(([, fields]) => fromEnvelope(fields[fields.indexOf("body") + 1]!));
  return {
    endpoint: { type: "redis", url: TEST_REDIS_URL, stream },
    refusal: /WRONGTYPE/,
    // In one transaction: keep what the stream holds, then put a string in its place.
    async refuse() {
      const results = await redis.multi().xrange(stream, "-", "+").del(stream).set(stream, "refusing").exec();
      const [error, raw] = results![0]!;
      if (error) throw error;
      taken.push(...entries(raw));
    },
    async accept() {
      await redis.del(stream);
    },
    async arrived() {
      return [...taken, ...entries(await redis.xrange(stream, "-", "+"))];
    },
    async close() {
      await redis.del(stream);
      redis.disconnect();
    },
  };
}

async function natsGate(): Promise<Gate> {
  const stream = `tidings_order_${SUFFIX}`;
  const nc = await natsConnect({ servers: new URL(TEST_NATS_URL).host });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
  return {
    endpoint: { type: "nats", url: TEST_NATS_URL, subject: `${stream}.{topic}` },
    refusal: /^no JetStream stream captures subject "tidings_order_/,
    // The stream keeps what it holds but captures another subject: a publish finds no stream.
    async refuse() {
      await jsm.streams.update(stream, { subjects: [`${stream}_elsewhere.>`] });
    },
    async accept() {
      await jsm.streams.update(stream, { subjects: [`${stream}.>`] });
    },
    async arrived() {
      const { state } = await jsm.streams.info(stream);
      const all: Arrival[] = [];
      for (let seq = state.first_seq; seq <= state.last_seq; seq++) all.push(fromEnvelope((await jsm.streams.getMessage(stream, { seq }))!.string()));
      return all;
    },
    async close() {
      await jsm.streams.delete(stream).catch(() => undefined);
      await nc.close();
    },
  };
}

async function rabbitmqGate(): Promise<Gate> {
  const exchange = `tidings_order_${SUFFIX}`;
  const model = await amqpConnect(TEST_AMQP_URL);
  const ch = await model.createChannel();
  await ch.assertExchange(exchange, "topic", { durable: false });
  const { queue } = await ch.assertQueue("", { exclusive: true });
  await ch.bindQueue(queue, exchange, "#");
  return {
    endpoint: { type: "rabbitmq", url: TEST_AMQP_URL, exchange },
    refusal: /unroutable|NO_ROUTE|no queue/i,
    // No queue bound: the broker returns the mandatory message as unroutable.
    refuse: () => ch.unbindQueue(queue, exchange, "#").then(() => undefined),
    accept: () => ch.bindQueue(queue, exchange, "#").then(() => undefined),
    async arrived() {
      const all: Arrival[] = [];
      for (let got = await ch.get(queue, { noAck: true }); got; got = await ch.get(queue, { noAck: true })) all.push(fromEnvelope(got.content.toString()));
      return all;
    },
    async close() {
      await ch.deleteExchange(exchange).catch(() => undefined);
      await model.close();
    },
  };
}

/** The subscription's failed attempts (with the broker's reasons) and delivered deliveries so far. */
async function progress(name: string): Promise<{ failed: number; delivered: number; errors: string[] }> {
  const { rows } = await sql.query(
    `select (select count(*)::int from attempts a where a.subscription_id = s.id and a.outcome = 'failed') as failed,
            (select count(*)::int from deliveries d where d.subscription_id = s.id and d.state = 'delivered') as delivered,
            (select coalesce(array_agg(distinct left(a.error, 60)), '{}') from attempts a where a.subscription_id = s.id and a.outcome = 'failed') as errors
       from subscriptions s where s.name = $1`,
    [name],
  );
  return rows[0];
}

async function orderedThroughRefusals(kind: string, open: () => Promise<Gate>): Promise<void> {
  const gate = await open();
  const name = `ordered-${kind}`;
  const topic = `t.${name}`;
  try {
    const created = await admin.post("/v1/subscriptions", {
      name,
      topic,
      endpoint: gate.endpoint,
      ordering: ORDERING,
      retry: { schedule: ["20ms", "50ms", "100ms"], maxAttempts: 1000 },
      circuit: null, // every refused attempt goes on its retry schedule, not the breaker's probe
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    let next = 0;
    const publish = async (count: number) => {
      const messages = Array.from({ length: count }, (_, i) => {
        const n = next + i;
        return { id: `${kind}-${n}-${SUFFIX}`, topic, key: `k${n % KEYS}`, payload: { n } };
      });
      next += count;
      const r = await admin.post("/v1/messages/batch", { messages });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    };
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const before = await progress(name);
      await gate.refuse();
      await publish(PER_HALF);
      await waitFor(`${kind}: attempts refused in cycle ${cycle}`, async () => (await progress(name)).failed >= before.failed + 5);
      await gate.accept();
      await publish(PER_HALF);
      await waitFor(`${kind}: deliveries go through again in cycle ${cycle}`, async () => (await progress(name)).delivered >= before.delivered + 10);
    }
    await waitFor(`${kind}: all ${TOTAL} delivered`, async () => (await progress(name)).delivered === TOTAL, 60_000, 50);
    const { failed, errors } = await progress(name);
    assert.ok(failed >= CYCLES * 5, `${failed} refused attempts`);
    assert.ok(
      errors.some((e) => gate.refusal.test(e)),
      `a refused attempt says why (${gate.refusal}): ${errors.join("; ")}`,
    );

    const arrived = await gate.arrived();
    const firsts = new Map<string, number[]>();
    const seen = new Set<string>();
    for (const a of arrived) {
      if (seen.has(a.id)) continue;
      seen.add(a.id);
      firsts.set(a.key, [...(firsts.get(a.key) ?? []), a.n]);
    }
    assert.equal(seen.size, TOTAL, "every message reached the broker");
    for (let k = 0; k < KEYS; k++) {
      const expected = Array.from({ length: TOTAL / KEYS }, (_, i) => k + i * KEYS);
      assert.deepEqual(firsts.get(`k${k}`), expected, `key k${k}: first arrivals in publish order`);
    }
    console.log(
      `${kind}: ${TOTAL} messages over ${KEYS} keys in order through ${failed} refused attempts (${errors.join("; ")}); ${arrived.length - TOTAL} repeats`,
    );
  } finally {
    await gate.close();
  }
}

test("Redis: a key's deliveries reach the stream in publish order while XADD fails with WRONGTYPE now and then", { timeout: 120_000 }, () =>
  orderedThroughRefusals("redis", redisGate),
);
test("NATS: a key's deliveries reach the stream in publish order while no stream captures the subject now and then", { timeout: 120_000 }, () =>
  orderedThroughRefusals("nats", natsGate),
);
test("RabbitMQ: a key's deliveries reach the queue in publish order while they are unroutable now and then", { timeout: 120_000 }, () =>
  orderedThroughRefusals("rabbitmq", rabbitmqGate),
);
