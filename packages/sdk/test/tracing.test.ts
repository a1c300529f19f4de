// OpenTelemetry end to end, with the service running in this process (its spans land in the same
// in-memory exporter as the producer's and the consumer's): a producer's span, its send, the
// service's publish span, a failed and a successful delivery attempt and the SDK receiver's
// consumer spans are one trace with the right parents; an outbox row keeps its producer's trace
// through the relay; a Redis stream entry carries the attempt's traceparent to the SDK's Redis
// consumer; and a message sent again from another trace is still a repeat (200, not 409).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer as createHttpServer, type RequestListener, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { context, propagation, SpanKind, SpanStatusCode, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from "@opentelemetry/sdk-trace";
import { Redis } from "ioredis";
import pg from "pg";
import { waitFor } from "@tidings/testkit/wait";
import { consume, createReceiver, Inbox, nodeHandler, Outbox, type Consumer, type Executor } from "../src/index.ts";
import { openDatabase, type OpenDatabase } from "./support/databases.ts";
import { startTidings, type TestTidings } from "./support/tidings.ts";
import { TEST_REDIS_URL as REDIS_URL } from "@tidings/testkit/brokers";

const exporter = new InMemorySpanExporter();
const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
const producer = trace.getTracer("producer");

let database: OpenDatabase;
let tidings: TestTidings;
let server: HttpServer;
/** Receiver tries per message id: the first try of an id listed in `failFirst` throws, so the receiver answers 500. */
const tries = new Map<string, number>();
const failFirst = new Set<string>();

before(async () => {
  // What an app's OpenTelemetry setup registers: a context manager, the W3C propagator, a provider.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  database = await openDatabase("postgres", "tracing");
  await database.db.query("CREATE TABLE effects (message_id text NOT NULL)");
  tidings = await startTidings("tracing");
  let handler: RequestListener = (_req, res) => res.writeHead(503).end();
  server = createHttpServer((req, res) => handler(req, res));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const secret = await tidings.subscribe("traced", "t.traced", `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, {
    schedule: ["100ms"],
    maxAttempts: 5,
  });
  const receiver = createReceiver({
    secret,
    db: database.db,
    inbox: new Inbox({ consumer: "receiver" }),
    handle: async (m, tx: Executor) => {
      const n = (tries.get(m.id) ?? 0) + 1;
      tries.set(m.id, n);
      if (n === 1 && failFirst.has(m.id)) throw new Error("not yet");
      await tx.query("INSERT INTO effects (message_id) VALUES ($1)", [m.id]);
    },
  });
  handler = nodeHandler(receiver);
});
after(async () => {
  await new Promise((resolve) => server.close(resolve));
  await tidings.close();
  await database.close();
  await provider.shutdown();
  trace.disable();
  propagation.disable();
  context.disable();
});

const spans = () => exporter.getFinishedSpans();
const named = (name: string, traceId: string) => spans().filter((s) => s.name === name && s.spanContext().traceId === traceId);
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
const attempt = (s: ReadableSpan) => s.attributes["tidings.attempt"];

async function effects(id: string): Promise<number> {
  const rows = await database.db.query<{ n: number }>("SELECT count(*)::int AS n FROM effects WHERE message_id = $1", [id]);
  return rows[0]!.n;
}

/** Runs `work` in a new root span of the producer; resolves to what it resolved to and the span. */
async function inProducerSpan<T>(name: string, work: () => Promise<T>): Promise<{ value: T; span: ReadableSpan }> {
  let spanId = "";
  const value = await producer.startActiveSpan(name, { root: true }, async (span) => {
    spanId = span.spanContext().spanId;
    try {
      return await work();
    } finally {
      span.end();
    }
  });
  return { value, span: spans().find((s) => s.spanContext().spanId === spanId)! };
}

describe("one trace from the producer to the consumer", () => {
  test("producer span → send → publish span → attempt 1 (500, failed) → attempt 2 (200) → the receiver's consumer spans", async () => {
    const id = `order-${randomBytes(4).toString("hex")}`;
    failFirst.add(`${(await tidings.client.messages.send({ topic: "t.whoami", payload: {} })).app}/${id}`);
    const { value: sent, span: placed } = await inProducerSpan("place order", () =>
      tidings.client.messages.send({ id, topic: "t.traced", payload: { order: 1 } }),
    );
    const traceId = placed.spanContext().traceId;
    await waitFor("the message applied on the second try", async () => (await effects(`${sent.app}/${sent.id}`)) === 1, 20_000);
    const [publish, deliveries, consumed] = await waitFor("the spans of both attempts", () => {
      const attempts = named("deliver traced", traceId).sort((a, b) => Number(attempt(a)) - Number(attempt(b)));
      const processed = named("process t.traced", traceId);
      const published = named("publish t.traced", traceId);
      return attempts.length === 2 && processed.length === 2 && published.length === 1 ? ([published[0]!, attempts, processed] as const) : null;
    });

    // Every span of the message is in the producer's trace.
    assert.equal(publish.kind, SpanKind.SERVER);
    assert.equal(parentOf(publish), placed.spanContext().spanId, "the publish span is a child of the producer's span");
    const [first, second] = deliveries;
    for (const d of deliveries) {
      assert.equal(d.kind, SpanKind.CLIENT);
      assert.equal(parentOf(d), publish.spanContext().spanId, "each attempt is a child of the publish span");
      assert.equal(d.attributes["tidings.subscription"], "traced");
    }
    assert.deepEqual(
      [first!.attributes["tidings.attempt"], first!.attributes["http.response.status_code"], first!.attributes["tidings.outcome"], first!.status.code],
      [1, 500, "failed", SpanStatusCode.ERROR],
    );
    assert.deepEqual(
      [second!.attributes["tidings.attempt"], second!.attributes["http.response.status_code"], second!.attributes["tidings.outcome"], second!.status.code],
      [2, 200, "delivered", SpanStatusCode.UNSET],
    );
    // The receiver's consumer span of each attempt is a child of that attempt.
    const byParent = new Map(consumed.map((c) => [parentOf(c), c]));
    const failedTry = byParent.get(first!.spanContext().spanId);
    const appliedTry = byParent.get(second!.spanContext().spanId);
    assert.ok(failedTry && appliedTry, "a consumer span under each attempt");
    assert.equal(failedTry.kind, SpanKind.CONSUMER);
    assert.equal(failedTry.status.code, SpanStatusCode.ERROR);
    assert.equal(appliedTry.attributes["tidings.outcome"], "applied");
    assert.equal(appliedTry.attributes["tidings.attempt"], 2);
    assert.equal(appliedTry.status.code, SpanStatusCode.UNSET);
  });

  test("an outbox row keeps its producer's trace: the relay, in a trace of its own, sends it on", async () => {
    const outbox = new Outbox({ db: database.db, tidings: tidings.client, notify: false });
    const { value: id, span: placed } = await inProducerSpan("add to outbox", () =>
      database.db.transaction((tx) => outbox.add(tx, { topic: "t.traced", payload: { outbox: true } })),
    );
    const { span: relayed } = await inProducerSpan("relay", () => outbox.relayOnce());
    await waitFor("the outbox message applied", async () => (await effects(`${(await tidings.client.messages.get(id))!.app}/${id}`)) === 1, 20_000);
    const delivered = await waitFor("its attempt span", () => named("deliver traced", placed.spanContext().traceId)[0]);
    assert.equal(parentOf(delivered), placed.spanContext().spanId, "the attempt is a child of the span the row was added in");
    assert.equal(named("deliver traced", relayed.spanContext().traceId).length, 0, "nothing of the relay's trace");
  });

  test("a message sent again from another trace is still the same message (200), and keeps the trace it was stored with", async () => {
    const id = `again-${randomBytes(4).toString("hex")}`;
    const message = { id, topic: "t.untraced", payload: { n: 1 } };
    const { span: firstTrace } = await inProducerSpan("first", () => tidings.client.messages.send(message));
    const response = await producer.startActiveSpan("second", { root: true }, async (span) => {
      const headers: Record<string, string> = {};
      propagation.inject(context.active(), headers);
      try {
        return await fetch(`${tidings.url}/v1/messages`, {
          method: "POST",
          headers: { ...headers, authorization: `Bearer ${tidings.apiKey}`, "content-type": "application/json" },
          body: JSON.stringify(message),
        });
      } finally {
        span.end();
      }
    });
    assert.equal(response.status, 200, "a repeat, not a conflict");
    const sql = new pg.Client({ connectionString: tidings.databaseUrl });
    await sql.connect();
    try {
      const { rows } = await sql.query("SELECT traceparent FROM messages WHERE id LIKE $1", [`%/${id}`]);
      assert.equal(rows.length, 1);
      assert.equal(String(rows[0].traceparent).split("-")[1], firstTrace.spanContext().traceId);
    } finally {
      await sql.end();
    }
  });

  test("a traceparent that is not W3C trace context is refused, naming the field", async () => {
    const response = await fetch(`${tidings.url}/v1/messages/batch`, {
      method: "POST",
      headers: { authorization: `Bearer ${tidings.apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ messages: [{ topic: "t.untraced", payload: 1, traceparent: `00-${"0".repeat(32)}-${"1".repeat(16)}-01` }] }),
    });
    assert.equal(response.status, 400);
    const body = (await response.json()) as { error: { field?: string } };
    assert.equal(body.error.field, "messages[0].traceparent");
  });
});

describe("a broker delivery carries the trace", () => {
  const stream = `traced-${randomBytes(3).toString("hex")}`;
  let consumer: Consumer;
  const redis = new Redis(REDIS_URL, { protocol: 2 });

  before(async () => {
    await tidings.subscribe("traced-redis", "t.redis", "", { schedule: ["100ms"], maxAttempts: 5 }, { endpoint: { type: "redis", url: REDIS_URL, stream } });
    consumer = await consume.redis({
      url: REDIS_URL,
      stream,
      group: stream,
      blockMs: 200,
      db: database.db,
      inbox: new Inbox({ consumer: stream }),
      handle: async (m, tx) => {
        await tx.query("INSERT INTO effects (message_id) VALUES ($1)", [m.id]);
      },
    });
  });
  after(async () => {
    await consumer.close();
    await redis.del(stream);
    redis.disconnect();
  });

  test("the Redis stream entry has the attempt's traceparent, and the SDK's consumer span is its child", async () => {
    const { value: sent, span: placed } = await inProducerSpan("place order", () => tidings.client.messages.send({ topic: "t.redis", payload: { n: 1 } }));
    const traceId = placed.spanContext().traceId;
    await waitFor("the message consumed", async () => (await effects(`${sent.app}/${sent.id}`)) === 1, 20_000);
    const entries = (await redis.call("XRANGE", stream, "-", "+")) as [string, string[]][];
    const fields = Object.fromEntries(entries[0]![1].flatMap((v, i, all) => (i % 2 === 0 ? [[v, all[i + 1]!]] : []))) as Record<string, string>;
    const delivered = await waitFor("the attempt span", () => named("deliver traced-redis", traceId)[0]);
    assert.equal(delivered.kind, SpanKind.PRODUCER);
    assert.equal(fields.traceparent, `00-${traceId}-${delivered.spanContext().spanId}-01`);
    const processed = await waitFor("the consumer span", () => named("process t.redis", traceId)[0]);
    assert.equal(parentOf(processed), delivered.spanContext().spanId);
    assert.equal(processed.attributes["tidings.broker"], "redis");
  });
});
