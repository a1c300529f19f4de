import { test } from "node:test";
import assert from "node:assert/strict";
import { Dispatcher, type DispatcherOps } from "../src/delivery/dispatcher.ts";
import type { SendResult } from "../src/transports/transport.ts";
import type { AttemptResult, Lease, LeasedDelivery } from "../src/domain/delivery.ts";
import type { SubscriptionRow } from "../src/domain/subscription.ts";
import { recordingLogger, recordingResults, until } from "./support/fakes.ts";

// The dispatcher's side of the circuit breaker and the limits, driven by fake operations: what it
// lets start, what it gives back, and what a probe's failure becomes.

const SUB: SubscriptionRow = {
  id: 1,
  name: "sub-1",
  topic: "order.paid",
  tags: null,
  endpoint: { type: "http", url: "http://127.0.0.1:9000/hooks" },
  secret: "whsec_dGVzdHNlY3JldA==",
  retry: { schedule: [5000], maxAttempts: 2, windowMs: null },
  enabled: true,
  maxInFlight: null,
  rateLimit: null,
  ordering: "none",
  onDead: "block",
  circuit: { failures: 5, ratio: null, probeEveryMs: 30_000, pauseAfterMs: null },
  pendingAgeAlertMs: null,
  createdAt: "2026-01-01T00:00:00.000Z",
  updatedAt: "2026-01-01T00:00:00.000Z",
};

let nextId = 1;
function delivery(extra: Partial<LeasedDelivery> = {}): LeasedDelivery {
  const id = nextId++;
  return {
    deliveryId: id,
    messageDay: "2026-01-01",
    subscriptionId: 1,
    attempt: 1,
    attemptInCycle: 1,
    firstAttemptAt: null,
    message: { id: `m-${id}`, topic: "order.paid", tag: null, key: null, createdAt: "2026-01-01T00:00:00.000Z", payloadJson: "{}", headersJson: "{}" },
    lease: `node-a/${id}`,
    ...extra,
  };
}

function harness(sub: SubscriptionRow, gate: Pick<DispatcherOps, "admit" | "claimsOnly">, answer: SendResult) {
  const sent: LeasedDelivery[] = [];
  const released: Lease[] = [];
  let claims = 0;
  const written: AttemptResult[] = [];
  const log = recordingLogger();
  const ops: DispatcherOps = {
    nodeId: "node-a",
    claim: async () => {
      claims++;
      return [];
    },
    release: async (leases) => void released.push(...leases),
    subscription: (id) => (id === sub.id ? sub : undefined),
    send: async (_s, d) => {
      sent.push(d);
      return answer;
    },
    ...gate,
  };
  const results = recordingResults(written, log);
  const dispatcher = new Dispatcher(
    ops,
    results,
    { concurrency: 4, pollIntervalMs: 60_000, maxQueued: 100, maxInFlightPerSubscription: 4, leaseMs: 30_000, attemptMs: 10_000 },
    log,
  );
  return { dispatcher, sent, released, written, claims: () => claims };
}

test("a delivery its subscription's circuit holds is given back unsent; a probe goes", async () => {
  const h = harness(SUB, { admit: (_s, d) => d.probe === true }, { ok: true, statusCode: 200, error: null });
  const held = delivery();
  const probe = delivery({ probe: true });
  h.dispatcher.push([held, probe]);
  await until("the held one given back", () => h.released.length === 1);
  assert.deepEqual(
    h.released.map((l) => l.deliveryId),
    [held.deliveryId],
  );
  assert.deepEqual(
    h.sent.map((d) => d.deliveryId),
    [probe.deliveryId],
  );
  await h.dispatcher.stop(0);
});

test("a probe that fails at its last attempt stays pending for the next probe instead of dying", async () => {
  const h = harness(SUB, { admit: () => true }, { ok: false, statusCode: 503, error: "HTTP 503" });
  const before = Date.now();
  h.dispatcher.push([delivery({ probe: true, attempt: 2, attemptInCycle: 2 }), delivery({ attempt: 2, attemptInCycle: 2 })]);
  await until("both results written", () => h.written.length === 2);
  const [probe, plain] = h.written;
  assert.equal(probe!.outcome, "failed");
  assert.ok(probe!.nextAttemptAt!.getTime() >= before + 30_000, "due again after a probe interval");
  assert.equal(plain!.outcome, "dead", "an ordinary delivery at its last attempt dies as before");
  await h.dispatcher.stop(0);
});

test("a 429's Retry-After is reported with its result, for the whole subscription to wait", async () => {
  const h = harness(SUB, { admit: () => true }, { ok: false, statusCode: 429, error: "HTTP 429", retryAfterMs: 2000 });
  h.dispatcher.push([delivery()]);
  await until("the result written", () => h.written.length === 1);
  assert.equal(h.written[0]!.retryAfterMs, 2000);
  await h.dispatcher.stop(0);
});

test("a limited subscription's delivery pushed from memory is given back and claimed; a claimed one goes", async () => {
  const h = harness({ ...SUB, rateLimit: 10 }, { claimsOnly: (s) => s.rateLimit !== null }, { ok: true, statusCode: 200, error: null });
  const pushed = delivery({ lease: undefined });
  const claimed = delivery();
  h.dispatcher.push([pushed, claimed]);
  await until("the pushed one given back", () => h.released.length === 1);
  assert.equal(h.released[0]!.deliveryId, pushed.deliveryId);
  assert.deepEqual(
    h.sent.map((d) => d.deliveryId),
    [claimed.deliveryId],
  );
  await until("a claim after the release", () => h.claims() >= 1);
  await h.dispatcher.stop(0);
});
