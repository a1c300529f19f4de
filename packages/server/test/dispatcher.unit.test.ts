import { test } from "node:test";
import assert from "node:assert/strict";
import { Dispatcher, envelope, type DispatcherOps, type DispatcherOptions } from "../src/delivery/dispatcher.ts";
import { ResultWriter } from "../src/delivery/resultWriter.ts";
import type { SendResult } from "../src/transports/transport.ts";
import type { AttemptOutcome, AttemptResult, Lease, LeasedDelivery } from "../src/domain/delivery.ts";
import type { SubscriptionRow } from "../src/domain/subscription.ts";
import { deferred, recordingLogger, recordingResults, settle, until, type Deferred } from "./support/fakes.ts";

// The dispatcher's loop driven by fake operations: every send and claim is a promise the test
// settles, so what runs at once, and when, is decided here rather than by a receiver's speed.

const NODE = "node-a";
const OK: SendResult = { ok: true, statusCode: 200, error: null };
const FAILED: SendResult = { ok: false, statusCode: 500, error: "HTTP 500: boom" };

function subscription(id: number, extra: Partial<SubscriptionRow> = {}): SubscriptionRow {
  return {
    id,
    name: `sub-${id}`,
    topic: "order.paid",
    tags: null,
    endpoint: { type: "http", url: `http://127.0.0.1:9000/hooks/${id}` },
    secret: "whsec_dGVzdHNlY3JldA==",
    retry: { schedule: [5000], maxAttempts: 2, windowMs: null },
    enabled: true,
    maxInFlight: null,
    ordering: "none",
    onDead: "block",
    circuit: null,
    rateLimit: null,
    pendingAgeAlertMs: null,
    createdAt: "2026-01-01T00:00:00.000Z",
    updatedAt: "2026-01-01T00:00:00.000Z",
    ...extra,
  };
}

let nextDeliveryId = 1;
function delivery(subscriptionId: number, extra: Partial<LeasedDelivery> = {}): LeasedDelivery {
  const id = nextDeliveryId++;
  return {
    deliveryId: id,
    messageDay: "2026-01-01",
    subscriptionId,
    attempt: 1,
    attemptInCycle: 1,
    firstAttemptAt: null,
    message: {
      id: `shop/order-${id}-paid`,
      topic: "order.paid",
      tag: null,
      key: String(id),
      createdAt: "2026-01-01T00:00:00.000Z",
      payloadJson: `{"sn":${id}}`,
      headersJson: "{}",
    },
    lease: `${NODE}/${id}`,
    ...extra,
  };
}

const many = (n: number, subscriptionId: number, extra?: Partial<LeasedDelivery>) => Array.from({ length: n }, () => delivery(subscriptionId, extra));

interface SendCall {
  delivery: LeasedDelivery;
  body: string;
  signal: AbortSignal;
  reply: Deferred<SendResult>;
}

interface ClaimCall {
  limit: number;
  skip: number[];
  idle: number;
  reply: Deferred<LeasedDelivery[]>;
}

/**
 * A dispatcher over fake operations. Claims come back empty at once unless `holdClaims`: then
 * each waits for the test to answer it.
 */
function harness(options: Partial<DispatcherOptions> = {}, subscriptions: SubscriptionRow[] = [subscription(1)], holdClaims = false) {
  const subs = new Map(subscriptions.map((s) => [s.id, s]));
  const sends: SendCall[] = [];
  const claims: ClaimCall[] = [];
  const released: Lease[] = [];
  let open = 0;
  let mostOpen = 0;
  const ops: DispatcherOps = {
    nodeId: NODE,
    claim(limit, skip, idle) {
      const reply = deferred<LeasedDelivery[]>();
      claims.push({ limit, skip: [...skip], idle, reply });
      if (!holdClaims) reply.resolve([]);
      return reply.promise;
    },
    async release(leases) {
      released.push(...leases);
    },
    subscription: (id) => subs.get(id),
    send(_subscription, d, body, signal) {
      const reply = deferred<SendResult>();
      sends.push({ delivery: d, body, signal, reply });
      open++;
      mostOpen = Math.max(mostOpen, open);
      // As a transport does: shutdown's signal cuts the attempt short.
      signal.addEventListener("abort", () => reply.resolve({ ok: false, statusCode: null, error: "aborted", aborted: true }), { once: true });
      return reply.promise.finally(() => open--);
    },
  };
  const written: AttemptResult[] = [];
  const log = recordingLogger();
  const results = recordingResults(written, log);
  const dispatcher = new Dispatcher(
    ops,
    results,
    {
      concurrency: 4,
      // Polls happen only when the test starts one or the dispatcher asks for more at once.
      pollIntervalMs: 60_000,
      maxQueued: 100,
      maxInFlightPerSubscription: 4,
      leaseMs: 30_000,
      attemptMs: 10_000,
      ...options,
    },
    log,
  );
  return {
    dispatcher,
    subs,
    sends,
    claims,
    released,
    written,
    log,
    get mostOpen() {
      return mostOpen;
    },
    running: () => sends.filter((s) => !s.reply.settled),
    sentIds: () => sends.map((s) => s.delivery.deliveryId),
    releasedIds: () => released.map((l) => l.deliveryId).sort((a, b) => a - b),
    writtenIds: () => written.map((r) => r.deliveryId).sort((a, b) => a - b),
    runningOf: (subscriptionId: number) => sends.filter((s) => !s.reply.settled && s.delivery.subscriptionId === subscriptionId).length,
  };
}

type Harness = ReturnType<typeof harness>;

/** Answers the attempts in flight one at a time, newest first, checking each time that the freed slot is used again. */
async function answerAll(h: Harness, total: number, most: number, reply: SendResult = OK): Promise<void> {
  for (let answered = 0; answered < total; answered++) {
    const expected = Math.min(most, total - answered);
    await until(`${expected} attempts in flight`, () => h.running().length === expected);
    h.running().at(-1)!.reply.resolve(reply);
  }
  await until("every result written", () => h.written.length >= total);
}

const ids = (deliveries: readonly LeasedDelivery[]) => deliveries.map((d) => d.deliveryId).sort((a, b) => a - b);

test("a pushed delivery is sent at once, without waiting for a poll, as the envelope of its message", async () => {
  const h = harness();
  const d = delivery(1);
  h.dispatcher.push([d]);
  assert.equal(h.sends.length, 1, "sent in the same turn as the push");
  assert.equal(h.claims.length, 0, "no claim was needed");
  assert.equal(h.sends[0]!.body, envelope(d));
  assert.deepEqual(JSON.parse(h.sends[0]!.body), {
    id: `shop/order-${d.deliveryId}-paid`,
    topic: "order.paid",
    tag: null,
    key: String(d.deliveryId),
    payload: { sn: d.deliveryId },
    headers: {},
    createdAt: "2026-01-01T00:00:00.000Z",
  });
  h.sends[0]!.reply.resolve(OK);
  await until("the result written", () => h.written.length === 1);
  assert.equal(h.written[0]!.outcome, "delivered");
  assert.equal(h.written[0]!.statusCode, 200);
  await h.dispatcher.stop(0);
});

test("never more attempts in flight than its concurrency, and a freed slot is used at once", async () => {
  const h = harness({ concurrency: 3, maxInFlightPerSubscription: 3 }, [subscription(1), subscription(2)]);
  const work = [...many(6, 1), ...many(6, 2)];
  h.dispatcher.push(work);
  assert.equal(h.running().length, 3);
  await answerAll(h, 12, 3);
  assert.equal(h.mostOpen, 3);
  assert.deepEqual(h.writtenIds(), ids(work));
  assert.ok(h.written.every((r) => r.outcome === "delivered"));
  await h.dispatcher.stop(0);
});

test("saturated once the deliveries held in memory reach maxQueued, and not once they drain", async () => {
  const h = harness({ concurrency: 2, maxQueued: 4 });
  h.dispatcher.push(many(2, 1));
  assert.equal(h.dispatcher.saturated, false, "in flight is not held in memory");
  h.dispatcher.push(many(3, 1));
  assert.equal(h.dispatcher.saturated, false);
  h.dispatcher.push(many(1, 1));
  assert.equal(h.dispatcher.saturated, true);
  h.running()[0]!.reply.resolve(OK);
  await until("a queued delivery to start", () => h.sends.length === 3);
  assert.equal(h.dispatcher.saturated, false);
  await h.dispatcher.stop(0);
});

test("a claim says how many could start at once: free slots less what waits in memory", async () => {
  const h = harness({ concurrency: 3, maxQueued: 4 }, undefined, true);
  h.dispatcher.push(many(1, 1)); // one in flight
  h.dispatcher.start();
  assert.equal(h.claims.length, 1);
  assert.deepEqual([h.claims[0]!.limit, h.claims[0]!.idle], [4 + 3 - 1, 3 - 1]);
  h.claims[0]!.reply.resolve([]);
  await h.dispatcher.stop(0);
});

test("deliveries waiting for their own subscription's slots do not count against what could start at once", async () => {
  const h = harness({ concurrency: 4, maxQueued: 20 }, [subscription(1, { maxInFlight: 1 }), subscription(2)], true);
  h.dispatcher.push(many(6, 1)); // one in flight, five waiting in subscription 1's lane
  h.dispatcher.start();
  assert.equal(h.claims.length, 1);
  assert.equal(h.claims[0]!.idle, 3, "three slots free for other subscriptions");
  h.claims[0]!.reply.resolve([]);
  await h.dispatcher.stop(0);
});

test("a claim asks for at most the room left, and one that came back full claims again as soon as the queue runs low", async () => {
  const h = harness({ concurrency: 2, maxQueued: 4 }, undefined, true);
  h.dispatcher.push(many(3, 1)); // two in flight, one queued
  h.dispatcher.start();
  assert.equal(h.claims.length, 1);
  assert.equal(h.claims[0]!.limit, 4 + 2 - 1 - 2, "maxQueued + concurrency - queued - in flight");
  assert.equal(h.claims[0]!.idle, 0, "nothing more could start at once: both slots busy");
  h.claims[0]!.reply.resolve(many(3, 1));
  await until("the claim's deliveries queued", () => h.dispatcher.saturated);
  await settle();
  assert.equal(h.claims.length, 1, "no room: no claim until the queue drains");

  // Answering the attempts drains the queue; below half of maxQueued the next claim goes out
  // without waiting for the (minute-long) poll interval.
  for (const s of h.running()) s.reply.resolve(OK);
  await until("two more started", () => h.sends.length === 4);
  for (const s of h.running()) s.reply.resolve(OK);
  await until("a claim as the queue ran low", () => h.claims.length === 2);
  assert.equal(h.claims[1]!.limit, 4 + 2 - 1 - 2, "asked when one was left queued and two in flight");
  h.claims[1]!.reply.resolve([]);
  await h.dispatcher.stop(0);
});

test("a claim that filled a whole round trip's worth is followed by another at once", async () => {
  const h = harness({ concurrency: 2, maxQueued: 2000, maxInFlightPerSubscription: 2 }, undefined, true);
  h.dispatcher.start();
  assert.equal(h.claims[0]!.limit, 500, "one claim takes at most 500");
  h.claims[0]!.reply.resolve(many(500, 1));
  await until("the next claim", () => h.claims.length === 2);
  assert.equal(h.claims[1]!.limit, 500);
  h.claims[1]!.reply.resolve([]);
  await settle();
  assert.equal(h.claims.length, 2, "a claim that came back short waits for the poll interval");
  await h.dispatcher.stop(0);
});

test("a claim that read a full batch but took fewer (deliveries of ordered keys parked) is followed by another at once", async () => {
  const h = harness({ concurrency: 2, maxQueued: 2000, maxInFlightPerSubscription: 2 }, undefined, true);
  h.dispatcher.start();
  const parkedMost = Object.assign(many(3, 1), { more: true });
  h.claims[0]!.reply.resolve(parkedMost);
  await until("the next claim", () => h.claims.length === 2);
  h.claims[1]!.reply.resolve(Object.assign(many(1, 1), { more: false }));
  await settle();
  assert.equal(h.claims.length, 2, "a claim that read less than it could waits for the poll interval");
  await h.dispatcher.stop(0);
});

test("a subscription's own maxInFlight is a hard limit, with slots to spare and fast attempts", async () => {
  const h = harness({ concurrency: 8, maxInFlightPerSubscription: 8 }, [subscription(1, { maxInFlight: 2 })]);
  const work = many(6, 1);
  h.dispatcher.push(work);
  assert.equal(h.running().length, 2);
  await answerAll(h, 6, 2);
  assert.equal(h.mostOpen, 2);
  assert.deepEqual(h.writtenIds(), ids(work));
  await h.dispatcher.stop(0);
});

test("alone, a subscription with fast attempts uses every slot; one not yet measured leaves a share free", async () => {
  const h = harness({ concurrency: 8, maxInFlightPerSubscription: 2 });
  h.dispatcher.push(many(8, 1));
  assert.equal(h.running().length, 6, "unmeasured: the last share of slots stays free");
  for (const s of h.running()) s.reply.resolve(OK);
  await until("the two held back to start", () => h.sends.length === 8);
  for (const s of h.running()) s.reply.resolve(OK);
  await until("all written", () => h.written.length === 8);

  h.dispatcher.push(many(8, 1));
  assert.equal(h.running().length, 8, "its attempts take milliseconds: it may use the reserve too");
  for (const s of h.running()) s.reply.resolve(OK);
  await until("all written", () => h.written.length === 16);
  await h.dispatcher.stop(0);
});

test("a subscription with slow attempts leaves a share of the slots free, and another subscription gets them past its waiting deliveries", async () => {
  const h = harness({ concurrency: 8, maxInFlightPerSubscription: 2 }, [subscription(1), subscription(2)]);
  // Measure subscription 1 as slow: its attempts take over 100 ms.
  h.dispatcher.push(many(6, 1));
  const began = Date.now();
  await until("attempts slower than 100 ms", () => Date.now() - began > 110);
  for (const s of h.running()) s.reply.resolve(OK);
  await until("the slow attempts written", () => h.written.length === 6);

  h.dispatcher.push(many(10, 1));
  assert.equal(h.runningOf(1), 6, "the slow one holds all but a share");
  h.dispatcher.push(many(2, 2));
  assert.equal(h.runningOf(2), 2, "the other goes past the slow one's waiting deliveries");
  assert.equal(h.running().length, 8);
  await h.dispatcher.stop(0);
});

test("deliveries held back by one subscription's cap do not hold up another's", async () => {
  const h = harness({ concurrency: 10 }, [subscription(1, { maxInFlight: 1 }), subscription(2)]);
  const capped = many(3, 1);
  const other = many(2, 2);
  h.dispatcher.push([...capped, ...other]);
  assert.deepEqual(h.sentIds(), [capped[0]!.deliveryId, ...other.map((d) => d.deliveryId)]);
  for (let i = 1; i < 3; i++) {
    h.running()
      .find((s) => s.delivery.subscriptionId === 1)!
      .reply.resolve(OK);
    await until("the next capped delivery", () => h.sends.length === 3 + i);
    assert.equal(h.sends.at(-1)!.delivery.deliveryId, capped[i]!.deliveryId, "in order");
  }
  for (const s of h.running()) s.reply.resolve(OK);
  await until("all written", () => h.written.length === 5);
  await h.dispatcher.stop(0);
});

test("claims leave out a subscription with a cap's worth waiting, and take it again once that runs low", async () => {
  const h = harness({ concurrency: 4 }, [subscription(1, { maxInFlight: 1 }), subscription(2)], true);
  h.dispatcher.push(many(2, 1));
  h.dispatcher.start();
  assert.deepEqual(h.claims[0]!.skip, [1]);
  h.claims[0]!.reply.resolve([]);
  await settle();
  h.running()[0]!.reply.resolve(OK);
  await until("a claim once its lane ran low", () => h.claims.length === 2);
  assert.deepEqual(h.claims[1]!.skip, []);
  h.claims[1]!.reply.resolve([]);
  await h.dispatcher.stop(0);
});

test("a subscription's lane holds a bounded number of deliveries; more are given back at once", async () => {
  // Lane bound: max(4 caps, a quarter of maxQueued) = max(4, 2) = 4.
  const h = harness({ concurrency: 4, maxQueued: 8 }, [subscription(1, { maxInFlight: 1 })]);
  const work = many(7, 1);
  h.dispatcher.push(work);
  assert.equal(h.sends.length, 1);
  await until("the surplus released", () => h.released.length === 2);
  assert.deepEqual(h.releasedIds(), ids(work.slice(5)));
  assert.deepEqual(
    h.released.map((l) => l.lease),
    work.slice(5).map((d) => d.lease),
  );
  await h.dispatcher.stop(0);
});

test("a delivery held back past the time it had to start by is given back, not sent", async () => {
  // startBy = push + max(lease - attempt - 1 s, lease / 2) = push + 20 ms.
  const h = harness({ leaseMs: 40, attemptMs: 20 }, [subscription(1, { maxInFlight: 1 })]);
  const [first, late] = many(2, 1);
  const pushedAt = Date.now();
  h.dispatcher.push([first!, late!]);
  assert.equal(h.sends.length, 1);
  await until("its start-by time to pass", () => Date.now() - pushedAt > 25);
  h.sends[0]!.reply.resolve(OK);
  await until("the late one released", () => h.released.length === 1);
  assert.deepEqual(h.released, [{ deliveryId: late!.deliveryId, messageDay: late!.messageDay, lease: late!.lease }]);
  assert.equal(h.sends.length, 1, "not sent: its lease may run out during the attempt");
  await until("the first one's result", () => h.written.length === 1);
  await h.dispatcher.stop(0);
});

test("a delivery that waited in the queue past the time it had to start by is given back, not sent", async () => {
  // All slots busy (no subscription cap involved): a node working through a large claim.
  // startBy = push + max(lease - attempt - 1 s, lease / 2) = push + 20 ms.
  const h = harness({ concurrency: 1, leaseMs: 40, attemptMs: 20 });
  const [first, late] = many(2, 1);
  const pushedAt = Date.now();
  h.dispatcher.push([first!, late!]);
  assert.equal(h.sends.length, 1);
  await until("its start-by time to pass", () => Date.now() - pushedAt > 25);
  h.sends[0]!.reply.resolve(OK);
  await until("the late one released", () => h.released.length === 1);
  assert.deepEqual(h.released, [{ deliveryId: late!.deliveryId, messageDay: late!.messageDay, lease: late!.lease }]);
  assert.equal(h.sends.length, 1, "not sent: its lease may run out during the attempt, and another node may send it too");
  await h.dispatcher.stop(0);
});

test("deliveries of a paused or removed subscription are given back, also those waiting behind its cap", async () => {
  const h = harness({}, [subscription(1, { enabled: false }), subscription(2, { maxInFlight: 1 }), subscription(3, { maxInFlight: 1 })]);
  const paused = delivery(1);
  const removed = delivery(99);
  h.dispatcher.push([paused, removed]);
  await until("both released", () => h.released.length === 2);
  assert.deepEqual(h.releasedIds(), ids([paused, removed]));
  assert.equal(h.sends.length, 0);

  const [a1, a2] = many(2, 2);
  const [b1, b2] = many(2, 3);
  h.dispatcher.push([a1!, a2!, b1!, b2!]);
  assert.equal(h.sends.length, 2);
  h.subs.set(2, subscription(2, { maxInFlight: 1, enabled: false }));
  h.subs.delete(3);
  for (const s of h.running()) s.reply.resolve(OK);
  await until("the waiting ones released", () => h.released.length === 4);
  assert.deepEqual(h.releasedIds(), ids([paused, removed, a2!, b2!]));
  assert.equal(h.sends.length, 2);
  await h.dispatcher.stop(0);
});

test("results and releases carry the lease token and the day each delivery is held under", async () => {
  const h = harness();
  const claimed = delivery(1, { lease: `${NODE}/claim-17`, messageDay: "2026-03-01" });
  const pushed = delivery(1, { lease: undefined, messageDay: "2026-03-02" }); // leased to this node when it was created
  const gone = delivery(99, { lease: undefined, messageDay: "2026-03-03" });
  h.dispatcher.push([claimed, pushed, gone]);
  for (const s of h.running()) s.reply.resolve(OK);
  await until("both written", () => h.written.length === 2);
  await until("the other released", () => h.released.length === 1);
  const heldAs = new Map(h.written.map((r) => [r.deliveryId, `${r.lease} ${r.messageDay}`]));
  assert.equal(heldAs.get(claimed.deliveryId), `${NODE}/claim-17 2026-03-01`);
  assert.equal(heldAs.get(pushed.deliveryId), `${NODE} 2026-03-02`);
  assert.deepEqual(h.released, [{ deliveryId: gone.deliveryId, messageDay: "2026-03-03", lease: NODE }]);
  await h.dispatcher.stop(0);
});

test("a failed attempt is written with its next attempt's time, and the last one allowed as dead", async () => {
  const h = harness(); // retry: 5 s after the first failure, two attempts at most
  const first = delivery(1);
  const last = delivery(1, { attempt: 2, attemptInCycle: 2, firstAttemptAt: new Date(Date.now() - 5000) });
  h.dispatcher.push([first, last]);
  for (const s of h.running()) s.reply.resolve(FAILED);
  await until("both written", () => h.written.length === 2);
  const byId = new Map(h.written.map((r) => [r.deliveryId, r]));
  const failed = byId.get(first.deliveryId)!;
  assert.equal(failed.outcome, "failed");
  assert.equal(failed.error, "HTTP 500: boom");
  assert.equal(failed.statusCode, 500);
  const wait = failed.nextAttemptAt!.getTime() - failed.startedAt.getTime();
  assert.ok(wait >= 5000 && wait <= 5000 + failed.latencyMs, `next attempt ${wait} ms after this one started`);
  assert.equal(failed.firstAttemptAt!.getTime(), failed.startedAt.getTime(), "the first attempt starts the retry window");
  const dead = byId.get(last.deliveryId)!;
  assert.equal(dead.outcome, "dead");
  assert.equal(dead.deadReason, "gave up after 2 attempts");
  assert.equal(dead.nextAttemptAt, null);
  assert.equal(dead.attempt, 2);
  assert.ok(h.log.lines.some((l) => l.level === "warn" && l.msg === "delivery is dead" && l.fields.messageId === last.message.id));
  await h.dispatcher.stop(0);
});

test("stop gives back what waits in memory and lets the attempts in flight finish within the grace", async () => {
  const h = harness({ concurrency: 2, maxInFlightPerSubscription: 2 }, [subscription(1, { maxInFlight: 1 }), subscription(2)]);
  const [a1, a2] = many(2, 1);
  const [b1, b2] = many(2, 2);
  h.dispatcher.push([a1!, a2!, b1!, b2!]); // a1, b1 in flight; a2 behind its cap; b2 queued
  assert.deepEqual(h.sentIds(), [a1!.deliveryId, b1!.deliveryId]);
  const began = Date.now();
  const stopping = h.dispatcher.stop(5000);
  for (const s of h.running()) s.reply.resolve(OK);
  await stopping;
  assert.ok(Date.now() - began < 1000, "stop returned once the attempts ended, not after the grace");
  await until("their results written", () => h.written.length === 2);
  assert.deepEqual(h.writtenIds(), ids([a1!, b1!]));
  assert.deepEqual(h.releasedIds(), ids([a2!, b2!]));
  assert.ok(h.sends.every((s) => !s.signal.aborted));
  assert.equal(h.sends.length, 2, "nothing started after stop");
});

test("stop aborts the attempts still running after the grace and gives their leases back, recording no attempt", async () => {
  const h = harness({}, [subscription(1), subscription(2)]);
  const work = [delivery(1), delivery(2, { lease: undefined })];
  h.dispatcher.push(work);
  await h.dispatcher.stop(20);
  assert.ok(
    h.sends.every((s) => s.signal.aborted),
    "the sends saw the shutdown signal",
  );
  assert.deepEqual(
    [...h.released].sort((a, b) => a.deliveryId - b.deliveryId),
    [
      { deliveryId: work[0]!.deliveryId, messageDay: work[0]!.messageDay, lease: work[0]!.lease },
      { deliveryId: work[1]!.deliveryId, messageDay: work[1]!.messageDay, lease: NODE },
    ],
  );
  await settle();
  assert.equal(h.written.length, 0);
  assert.ok(h.log.lines.some((l) => l.msg === "aborting deliveries in flight for shutdown" && l.fields.inFlight === 2));
});

test("a claim that comes back while stopping has its leases given back", async () => {
  const h = harness({}, undefined, true);
  h.dispatcher.start();
  const stopping = h.dispatcher.stop(20);
  const late = many(2, 1);
  h.claims[0]!.reply.resolve(late);
  await stopping;
  await settle();
  assert.equal(h.sends.length, 0);
  assert.deepEqual(h.releasedIds(), ids(late));
});

// The result writer behind the dispatcher: attempt results gathered into one statement per batch.

function result(deliveryId: number, extra: Partial<AttemptResult> = {}): AttemptResult {
  const startedAt = new Date();
  return {
    deliveryId,
    messageDay: "2026-01-01",
    lease: `${NODE}/${deliveryId}`,
    messageId: `shop/order-${deliveryId}-paid`,
    subscriptionId: 1,
    attempt: 1,
    outcome: "delivered",
    startedAt,
    latencyMs: 3,
    statusCode: 200,
    error: null,
    nextAttemptAt: null,
    deadReason: null,
    firstAttemptAt: startedAt,
    ...extra,
  };
}

const sqlError = (code: string, message: string) => Object.assign(new Error(message), { code });
/** What PostgreSQL answers for a NUL in a text parameter. */
const NUL_REFUSED = () => sqlError("22P05", "unsupported Unicode escape sequence");
const hasNul = (batch: readonly AttemptResult[]) => batch.some((r) => r.error?.includes("\u0000") || r.deadReason?.includes("\u0000"));

/** A ResultWriter over a fake statement: `refuse` decides which batches fail and how; `holds` keep the next writes running. */
function writer(refuse: (batch: readonly AttemptResult[]) => unknown = () => undefined, maxBatch?: number) {
  const calls: AttemptResult[][] = [];
  const stored: AttemptResult[] = [];
  const notified: Array<{ counts: Record<AttemptOutcome, number>; size: number }> = [];
  const holds: Array<Deferred<void>> = [];
  const log = recordingLogger();
  const w = new ResultWriter(
    async (batch) => {
      calls.push([...batch]);
      const hold = holds.shift();
      if (hold) await hold.promise;
      const error = refuse(batch);
      if (error) throw error;
      stored.push(...batch);
      const counts: Record<AttemptOutcome, number> = { delivered: 0, failed: 0, dead: 0 };
      for (const r of batch) counts[r.outcome]++;
      return counts;
    },
    (counts, batch) => notified.push({ counts, size: batch.length }),
    log,
    maxBatch,
  );
  const storedIds = () => stored.map((r) => r.deliveryId).sort((a, b) => a - b);
  return { w, calls, stored, storedIds, notified, holds, log };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

test("results added together are written in one batch, one write at a time, at most maxBatch each", async () => {
  const t = writer(undefined, 3);
  const hold = deferred<void>();
  t.holds.push(hold);
  for (const id of range(1, 5)) t.w.add(result(id, id === 5 ? { outcome: "failed", statusCode: 500, error: "HTTP 500" } : {}));
  await until("the first write", () => t.calls.length === 1);
  assert.deepEqual(
    t.calls[0]!.map((r) => r.deliveryId),
    [1, 2, 3],
  );
  t.w.add(result(6));
  t.w.add(result(7));
  await settle();
  assert.equal(t.calls.length, 1, "one write at a time");
  hold.resolve();
  await t.w.drain();
  assert.deepEqual(
    t.calls.map((c) => c.map((r) => r.deliveryId)),
    [[1, 2, 3], [4, 5, 6], [7]],
  );
  assert.deepEqual(t.storedIds(), range(1, 7));
  assert.deepEqual(t.notified, [
    { counts: { delivered: 3, failed: 0, dead: 0 }, size: 3 },
    { counts: { delivered: 2, failed: 1, dead: 0 }, size: 3 },
    { counts: { delivered: 1, failed: 0, dead: 0 }, size: 1 },
  ]);
  assert.equal(t.w.size, 0);
});

test("a batch refused for its data is halved down to the culprit, written without its texts; the rest are written once", async () => {
  const t = writer((batch) => (hasNul(batch) ? NUL_REFUSED() : undefined));
  for (const id of range(1, 8)) {
    t.w.add(id === 6 ? result(id, { outcome: "dead", statusCode: 400, error: "bad \u0000 answer", deadReason: "gave up \u0000" }) : result(id));
  }
  await t.w.drain();
  assert.deepEqual(t.storedIds(), range(1, 8), "each result written exactly once");
  const culprit = t.stored.find((r) => r.deliveryId === 6)!;
  assert.equal(culprit.error, "the attempt's error text could not be stored");
  assert.equal(culprit.deadReason, "dead");
  assert.equal(culprit.outcome, "dead");
  assert.equal(culprit.statusCode, 400);
  const warned = t.log.lines.filter((l) => l.level === "warn");
  assert.equal(warned.length, 1);
  assert.equal(warned[0]!.fields.deliveryId, 6);
  assert.equal(warned[0]!.fields.code, "22P05");
});

test("a result refused even without its texts is dropped alone, with an error logged", async () => {
  // E.g. its delivery was deleted meanwhile: a foreign key violation, whatever the texts.
  const t = writer((batch) => (batch.some((r) => r.deliveryId === 3) ? sqlError("23503", "violates foreign key constraint") : undefined));
  for (const id of range(1, 5)) t.w.add(result(id));
  await t.w.drain();
  assert.deepEqual(t.storedIds(), [1, 2, 4, 5]);
  const errors = t.log.lines.filter((l) => l.level === "error");
  assert.equal(errors.length, 1);
  assert.equal(errors[0]!.fields.deliveryId, 3);
  assert.match(errors[0]!.msg, /dropped/);
});

test("a write that fails because the database is away is retried until it succeeds", async () => {
  let down = 1;
  const t = writer(() => (down-- > 0 ? sqlError("08006", "connection terminated unexpectedly") : undefined));
  for (const id of range(1, 3)) t.w.add(result(id));
  await until("the first try", () => t.calls.length === 1);
  t.w.add(result(4)); // arrives during the failed try or its backoff: goes with the next try
  await t.w.drain();
  assert.deepEqual(t.storedIds(), range(1, 4), "each result written exactly once");
  assert.equal(t.calls.length, 2, "the failed try, then one with everything");
  assert.equal(t.log.lines.filter((l) => l.msg === "writing delivery results failed; retrying").length, 1);
});

test("a connection lost while looking for the culprit loses no result and writes none twice", async () => {
  let lost = false;
  const t = writer((batch) => {
    if (!lost && batch.length === 2 && batch[0]!.deliveryId === 1) {
      lost = true;
      return sqlError("57P01", "terminating connection due to administrator command");
    }
    return hasNul(batch) ? NUL_REFUSED() : undefined;
  });
  for (const id of range(1, 4)) t.w.add(result(id, id === 4 ? { error: "\u0000" } : {}));
  await t.w.drain();
  assert.ok(lost);
  assert.deepEqual(t.storedIds(), range(1, 4));
  assert.equal(t.stored.find((r) => r.deliveryId === 4)!.error, "the attempt's error text could not be stored");
});
