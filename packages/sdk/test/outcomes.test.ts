// Consumer outcomes end to end, with the service, PostgreSQL and the brokers of the test machine:
// an HTTP receiver's outcomes (applied, duplicate, failed) show on the deliveries, a message every
// consumer applied is completed and announced on the completed topic; a RabbitMQ, NATS and Redis consumer whose
// handler always fails gives up after its short schedule, the delivery shows among the dead
// letters, and a re-send from there after the handler is fixed is applied exactly once; and
// reporting to a service that does not answer never holds up the handling.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { connect as amqpConnect } from "amqplib";
import { connect as natsConnect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Redis } from "ioredis";
import { Webhook } from "standardwebhooks";
import { waitFor } from "@tidings/testkit/wait";
import {
  consume,
  createReceiver,
  Inbox,
  nodeHandler,
  OutcomeReporter,
  rabbitmqDeadLetter,
  rabbitmqRetryQueue,
  type ConsumeOptions,
  type Consumer,
  type Envelope,
  type Executor,
  type OutcomeReporterEvent,
  type OutcomeReporterOptions,
} from "../src/index.ts";
import { openDatabase, type OpenDatabase } from "./support/databases.ts";
import { ADMIN_KEY, startTidings, type TestTidings } from "./support/tidings.ts";
import { TEST_AMQP_URL as AMQP_URL, TEST_NATS_URL as NATS_URL, TEST_REDIS_URL as REDIS_URL } from "@tidings/testkit/brokers";

const COMPLETED_TOPIC = "tidings.message.completed";

let database: OpenDatabase;
let tidings: TestTidings;
before(async () => {
  database = await openDatabase("postgres", "outcomes");
  await database.db.query("CREATE TABLE effects (message_id text NOT NULL)");
  tidings = await startTidings("outcomes", { TIDINGS_COMPLETED_TOPIC: COMPLETED_TOPIC });
});
after(async () => {
  await tidings.close();
  await database.close();
});

async function get<T = Record<string, unknown>>(path: string): Promise<T> {
  const response = await fetch(tidings.url + path, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
  assert.equal(response.status, 200, `GET ${path}`);
  return (await response.json()) as T;
}
async function post(path: string, body: unknown, key = ADMIN_KEY): Promise<Record<string, unknown>> {
  const response = await fetch(tidings.url + path, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = (await response.json()) as Record<string, unknown>;
  assert.ok(response.ok, `POST ${path}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

interface DeliveryView {
  id: number;
  subscription: string;
  state: string;
  deadReason: string | null;
  outcome: string | null;
  outcomeAt: string | null;
  outcomeError: string | null;
}
type MessageView = { id: string; completedAt: string | null; deliveries: DeliveryView[] };
const message = (fullId: string) => get<MessageView>(`/v1/messages/${encodeURIComponent(fullId)}`);
const deliveryOf = async (fullId: string, subscription: string) => (await message(fullId)).deliveries.find((d) => d.subscription === subscription);

async function effects(id: string): Promise<number> {
  const rows = await database.db.query<{ n: number }>("SELECT count(*)::int AS n FROM effects WHERE message_id = $1", [id]);
  return rows[0]!.n;
}

/** A consumer app that reads (consumes) `topics`, and a reporter with its key (to the service, or through `via`). */
async function consumerApp(topics: string[], options: Partial<OutcomeReporterOptions> = {}): Promise<OutcomeReporter> {
  const created = await tidings.admin.apps.create({ name: `consumer-${randomBytes(3).toString("hex")}`, readTopics: topics });
  return new OutcomeReporter({ url: tidings.url, apiKey: created.apiKey, flushIntervalMs: 50, ...options });
}

describe("outcomes of an HTTP receiver", () => {
  let server: HttpServer;
  let reporter: OutcomeReporter;
  let topic: string;
  const announced: Envelope[] = [];
  const tries = new Map<string, number>();

  before(async () => {
    server = createHttpServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    topic = `t.receiver.${randomBytes(3).toString("hex")}`;
    const producerApp = (await tidings.client.messages.send({ topic: "t.whoami", payload: {} })).app;
    const secrets = [
      await tidings.subscribe("orders-a", topic, url, { schedule: ["100ms"], maxAttempts: 3 }),
      await tidings.subscribe("orders-b", topic, url, { schedule: ["100ms"], maxAttempts: 3 }),
    ];
    // The producer hears of its completed messages: the announcements carry its app's name as their tag.
    const completions = await post("/v1/subscriptions", { name: "completions", topic: COMPLETED_TOPIC, tags: [producerApp], endpoint: { type: "http", url } });
    secrets.push(String(completions.secret));
    reporter = await consumerApp([topic, COMPLETED_TOPIC]);
    const receiver = createReceiver({
      secret: secrets,
      db: database.db,
      inbox: new Inbox({ consumer: "receiver" }),
      outcomes: reporter,
      handle: async (m: Envelope, tx: Executor) => {
        if (m.topic === COMPLETED_TOPIC) {
          announced.push(m);
          return;
        }
        const n = (tries.get(m.id) ?? 0) + 1;
        tries.set(m.id, n);
        const { mode } = m.payload as { mode: string };
        if (mode === "bad" || (mode === "flaky" && n === 1)) throw new Error(`refused ${m.id} (try ${n})`);
        await tx.query("INSERT INTO effects (message_id) VALUES ($1)", [m.id]);
      },
    });
    server.on("request", nodeHandler(receiver));
  });
  after(async () => {
    await reporter.close();
    server.close();
  });

  test("applied and duplicate show on the deliveries, and the message is completed and announced to its producer", async () => {
    const sent = await tidings.client.messages.send({ topic, payload: { mode: "ok" } });
    const fullId = `${sent.app}/${sent.id}`;
    const done = await waitFor("the message completed", async () => ((await message(fullId)).completedAt ? await message(fullId) : null));
    const outcomes = Object.fromEntries(done.deliveries.map((d) => [d.subscription, d.outcome]));
    // One inbox behind both subscriptions: whichever came second found the message applied.
    assert.deepEqual(Object.values(outcomes).sort(), ["applied", "duplicate"]);
    assert.ok(done.deliveries.every((d) => d.outcomeAt !== null && d.outcomeError === null));
    assert.equal(await effects(fullId), 1);
    const listed = await get<{ items: { payload: { messageId: string; app: string; topic: string; type: string }; tag: string | null }[] }>(
      `/v1/messages?topic=${COMPLETED_TOPIC}`,
    );
    const announcement = listed.items.find((m) => m.payload.messageId === fullId);
    assert.deepEqual(announcement && { ...announcement.payload, tag: announcement.tag }, {
      type: "message.completed",
      messageId: fullId,
      app: sent.app,
      topic,
      completedAt: done.completedAt,
      tag: sent.app,
    });
    assert.equal(listed.items.filter((m) => m.payload.messageId === fullId).length, 1, "announced once");
    await waitFor("the announcement delivered to the producer's subscription", () =>
      announced.find((m) => (m.payload as { messageId: string }).messageId === fullId),
    );
  });

  test("a failed outcome shows its error, a later success replaces it, and a message still failing is not completed", async () => {
    const flaky = await tidings.client.messages.send({ topic, payload: { mode: "flaky" } });
    const bad = await tidings.client.messages.send({ topic, payload: { mode: "bad" } });
    const flakyId = `${flaky.app}/${flaky.id}`;
    const badId = `${bad.app}/${bad.id}`;
    const failed = await waitFor("the hopeless message's failed outcomes", async () => {
      const m = await message(badId);
      return m.deliveries.every((d) => d.outcome === "failed" && d.state === "dead") ? m : null;
    });
    assert.ok(
      failed.deliveries.every((d) => /refused .* \(try \d\)/.test(d.outcomeError ?? "")),
      JSON.stringify(failed.deliveries),
    );
    assert.equal(failed.completedAt, null);
    const recovered = await waitFor("the flaky message completed", async () => ((await message(flakyId)).completedAt ? await message(flakyId) : null));
    assert.ok(recovered.deliveries.every((d) => (d.outcome === "applied" || d.outcome === "duplicate") && d.outcomeError === null));
    assert.equal(await effects(flakyId), 1);
  });
});

/** A broker as the give-up test needs it: the subscription's endpoint, a consumer, its dead letter, and the cleanup. */
interface BrokerWorld {
  endpoint(name: string): Record<string, unknown>;
  start(name: string, options: Omit<ConsumeOptions, "db" | "inbox">): Promise<Consumer>;
  /** Whether the broker's dead letter holds message `fullId` now. */
  deadLettered(name: string, fullId: string): Promise<boolean>;
  cleanup(name: string): Promise<void>;
}

const BROKERS: Record<"rabbitmq" | "nats" | "redis", BrokerWorld> = {
  rabbitmq: {
    endpoint: (name) => ({ type: "rabbitmq", url: AMQP_URL, exchange: name }),
    start: (name, options) =>
      consume.rabbitmq({ ...options, url: AMQP_URL, queue: name, exchange: name, db: database.db, inbox: new Inbox({ consumer: name }) }),
    async deadLettered(name, fullId) {
      const model = await amqpConnect(AMQP_URL);
      try {
        const got = await (await model.createChannel()).get(rabbitmqDeadLetter(name).queue, { noAck: true });
        return got !== false && JSON.parse(got.content.toString()).id === fullId;
      } finally {
        await model.close();
      }
    },
    async cleanup(name) {
      const model = await amqpConnect(AMQP_URL);
      const ch = await model.createChannel();
      for (const q of [name, rabbitmqDeadLetter(name).queue, rabbitmqRetryQueue(name, 100), rabbitmqRetryQueue(name, 200)])
        await ch.deleteQueue(q).catch(() => undefined);
      for (const x of [name, rabbitmqDeadLetter(name).exchange]) await ch.deleteExchange(x).catch(() => undefined);
      await model.close();
    },
  },
  nats: {
    endpoint: (name) => ({ type: "nats", url: NATS_URL, subject: `${name}.{topic}` }),
    start: (name, options) =>
      consume.nats({ ...options, url: NATS_URL, stream: name, subjects: [`${name}.>`], durable: name, db: database.db, inbox: new Inbox({ consumer: name }) }),
    // JetStream's dead letter: the last delivery terminated, nothing left pending.
    async deadLettered(name) {
      const nc = await natsConnect({ servers: new URL(NATS_URL).host });
      try {
        const info = await (await jetstreamManager(nc)).consumers.info(name, name);
        return info.num_ack_pending === 0 && info.num_pending === 0 && info.delivered.stream_seq >= 1;
      } finally {
        await nc.close();
      }
    },
    async cleanup(name) {
      const nc = await natsConnect({ servers: new URL(NATS_URL).host });
      await (await jetstreamManager(nc)).streams.delete(name).catch(() => undefined);
      await nc.close();
    },
  },
  redis: {
    endpoint: (name) => ({ type: "redis", url: REDIS_URL, stream: name }),
    start: (name, options) =>
      consume.redis({ ...options, url: REDIS_URL, stream: name, group: name, blockMs: 200, db: database.db, inbox: new Inbox({ consumer: name }) }),
    async deadLettered(name, fullId) {
      const redis = new Redis(REDIS_URL, { protocol: 2 });
      try {
        const entries = (await redis.call("XRANGE", `${name}:dead`, "-", "+")) as [string, string[]][];
        return entries.some(([, fields]) => fields.includes(fullId));
      } finally {
        redis.disconnect();
      }
    },
    async cleanup(name) {
      const redis = new Redis(REDIS_URL, { protocol: 2 });
      await redis.del(name, `${name}:dead`);
      redis.disconnect();
    },
  },
};

for (const [kind, world] of Object.entries(BROKERS)) {
  describe(`a ${kind} consumer that gives up`, () => {
    test("ends among the dead letters, and a re-send from there after the fix is applied exactly once", async () => {
      const name = `tidings_outcomes_${randomBytes(4).toString("hex")}`;
      const topic = `t.${kind}.${randomBytes(3).toString("hex")}`;
      const reporter = await consumerApp([topic]);
      let broken = true;
      const handled: string[] = [];
      // Started first: it declares the queue, stream or group the subscription delivers into.
      const consumer = await world.start(name, {
        retry: { schedule: ["100ms", "200ms"] },
        outcomes: reporter,
        handle: async (m, tx) => {
          handled.push(m.id);
          if (broken) throw new Error("the ledger is read-only");
          await tx.query("INSERT INTO effects (message_id) VALUES ($1)", [m.id]);
        },
      });
      try {
        await post("/v1/subscriptions", { name, topic, endpoint: world.endpoint(name) });
        const sent = await tidings.client.messages.send({ topic, payload: { amount: 7 } });
        const fullId = `${sent.app}/${sent.id}`;
        const dead = await waitFor("the delivery among the dead letters", async () => {
          const page = await get<{ items: (DeliveryView & { messageId: string })[] }>(`/v1/deliveries?state=dead&subscription=${name}`);
          return page.items.find((d) => d.messageId === fullId) ?? null;
        });
        assert.equal(dead.deadReason, "consumer gave up: the ledger is read-only");
        assert.equal(dead.outcome, "failed");
        assert.equal(handled.length, 3, "tried once and after each of the schedule's two steps");
        await waitFor("the message in the broker's dead letter", () => world.deadLettered(name, fullId));

        broken = false;
        const resent = await post(`/v1/messages/${encodeURIComponent(fullId)}/resend`, { subscription: name });
        assert.equal(resent.resent, 1);
        const applied = await waitFor("the re-sent message applied", async () => {
          const d = await deliveryOf(fullId, name);
          return d?.outcome === "applied" ? d : null;
        });
        assert.equal(applied.state, "delivered");
        assert.equal(applied.deadReason, null);
        assert.equal(await effects(fullId), 1);
        assert.ok((await message(fullId)).completedAt, "its only delivery applied: completed");
        // A second re-send reaches the consumer again, and the inbox makes it harmless.
        await post(`/v1/messages/${encodeURIComponent(fullId)}/resend`, { subscription: name });
        await waitFor("the second re-send reported", async () => (await deliveryOf(fullId, name))?.outcome === "duplicate");
        assert.equal(await effects(fullId), 1, "applied exactly once");
      } finally {
        await consumer.close();
        await reporter.close();
        await world.cleanup(name);
      }
    });
  });
}

/**
 * A TCP door to the service: open, it forwards each connection to the service; shut, it resets
 * every connection at once (a service that is down).
 */
class Door {
  open = false;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  url = "";

  async start(target: string): Promise<this> {
    const { hostname, port } = new URL(target);
    this.server = createServer((socket) => {
      if (!this.open) return void socket.resetAndDestroy();
      const upstream = connect(Number(port), hostname);
      for (const s of [socket, upstream]) {
        this.sockets.add(s);
        s.on("error", () => undefined);
        s.on("close", () => this.sockets.delete(s));
      }
      socket.pipe(upstream).pipe(socket);
    });
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

describe("a give-up reported while the service cannot be reached", () => {
  test("is kept and sent again: once the service answers, the delivery is dead and among the dead letters", async () => {
    const world = BROKERS.redis;
    const door = await new Door().start(tidings.url);
    const name = `tidings_outcomes_${randomBytes(4).toString("hex")}`;
    const topic = `t.kept.${randomBytes(3).toString("hex")}`;
    const events: OutcomeReporterEvent[] = [];
    const reporter = await consumerApp([topic], { url: door.url, retryMs: 50, timeoutMs: 2000, onEvent: (e) => void events.push(e) });
    const consumer = await world.start(name, {
      retry: { schedule: ["100ms", "200ms"] },
      outcomes: reporter,
      handle: async () => {
        throw new Error("the ledger is read-only");
      },
    });
    try {
      await post("/v1/subscriptions", { name, topic, endpoint: world.endpoint(name) });
      const sent = await tidings.client.messages.send({ topic, payload: { amount: 7 } });
      const fullId = `${sent.app}/${sent.id}`;
      await waitFor("the consumer to give up", () => world.deadLettered(name, fullId));
      await waitFor("the give-up report refused twice and kept", () => reporter.stats.retried >= 2 && reporter.waiting.kept === 1);
      const meanwhile = await deliveryOf(fullId, name);
      assert.equal(meanwhile?.state, "delivered", "the service has not heard of the give-up");
      const waits = events.flatMap((e) => (e.type === "retrying" ? [e.inMs] : []));
      assert.deepEqual(waits.slice(0, 2), [50, 100], "sent again after a growing wait");

      door.open = true;
      const dead = await waitFor("the delivery among the dead letters", async () => {
        const page = await get<{ items: (DeliveryView & { messageId: string })[] }>(`/v1/deliveries?state=dead&subscription=${name}`);
        return page.items.find((d) => d.messageId === fullId) ?? null;
      });
      assert.equal(dead.deadReason, "consumer gave up: the ledger is read-only");
      assert.deepEqual(reporter.waiting, { kept: 0, queued: 0 });
    } finally {
      await consumer.close();
      await reporter.close();
      await door.stop();
      await world.cleanup(name);
    }
  });

  test("the kept give-ups are bounded, the other reports of a failed call are dropped, and close() gives up within its deadline", async () => {
    const door = await new Door().start(tidings.url); // shut throughout
    const events: OutcomeReporterEvent[] = [];
    const reporter = new OutcomeReporter({
      url: door.url,
      apiKey: "k",
      maxKept: 5,
      retryMs: 10,
      flushIntervalMs: 10,
      closeTimeoutMs: 1000,
      onEvent: (e) => void events.push(e),
    });
    try {
      const giveUp = (i: number) => reporter.report({ subscription: "s", messageId: `m-${i}`, outcome: "failed", error: "no", gaveUp: true });
      for (let i = 0; i < 8; i++) giveUp(i);
      reporter.report({ subscription: "s", messageId: "a-1", outcome: "applied" });
      reporter.report({ subscription: "s", messageId: "a-2", outcome: "duplicate" });
      assert.deepEqual(reporter.waiting, { kept: 5, queued: 2 });
      assert.equal(reporter.stats.dropped, 3, "give-ups past maxKept are dropped");
      await waitFor("three calls refused", () => reporter.stats.retried >= 15);
      assert.deepEqual(reporter.waiting, { kept: 5, queued: 0 }, "the give-ups kept, still bounded");
      assert.equal(reporter.stats.lost, 2, "the applied and duplicate reports of the failed call are dropped");
      giveUp(99);
      assert.equal(reporter.stats.dropped, 4);
      const waits = events.flatMap((e) => (e.type === "retrying" ? [e.inMs] : []));
      assert.deepEqual(waits.slice(0, 3), [10, 20, 40]);
      const closing = Date.now();
      await reporter.close();
      assert.ok(Date.now() - closing < 2000, "close() keeps to its deadline");
      assert.deepEqual(reporter.waiting, { kept: 0, queued: 0 });
      assert.equal(reporter.stats.lost, 7, "what the service never took is counted lost");
      assert.equal(reporter.stats.sent, 0);
    } finally {
      await reporter.close();
      await door.stop();
    }
  });
});

describe("reporting to a service that does not answer", () => {
  let silent: Server;
  const sockets: Socket[] = [];
  before(async () => {
    // Takes connections and never answers: each report call waits for its deadline.
    silent = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  });
  after(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });

  test("never holds up the handling: the reports are lost after the call's deadline", async () => {
    const reporter = new OutcomeReporter({
      url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`,
      apiKey: "k",
      flushIntervalMs: 10,
      timeoutMs: 2000, // longer than handling the 20 messages takes on a loaded machine
      closeTimeoutMs: 2500,
    });
    const secret = `whsec_${randomBytes(24).toString("base64")}`;
    const signer = new Webhook(secret);
    const receiver = createReceiver({ secret, db: database.db, inbox: new Inbox({ consumer: "silent" }), outcomes: reporter, handle: async () => undefined });
    const ids = Array.from({ length: 20 }, (_, i) => `silent-${randomBytes(3).toString("hex")}-${i}`);
    for (const id of ids) {
      const body = JSON.stringify({ id, topic: "t.silent", tag: null, key: null, payload: {}, headers: {}, createdAt: new Date().toISOString() });
      const at = new Date();
      const answer = await receiver.receive({
        body,
        headers: {
          "webhook-id": id,
          "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
          "webhook-signature": signer.sign(id, at, body),
          "tidings-subscription": "orders",
        },
      });
      assert.equal(answer.status, 200);
      if (id === ids[0]) await waitFor("the first report call to be waiting on the silent service", () => sockets.length > 0);
    }
    // Every message was handled and answered while the first call still waited for its answer.
    assert.deepEqual({ sent: reporter.stats.sent, lost: reporter.stats.lost }, { sent: 0, lost: 0 });
    await reporter.close();
    assert.equal(reporter.stats.sent, 0);
    assert.equal(reporter.stats.lost + reporter.stats.dropped, ids.length, "every report lost, none waited for");
  });
});
