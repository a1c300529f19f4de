// Delivery into real brokers, end to end with real processes: for each broker a private instance
// this test owns (non-default port, temporary data folder), the service, and an SDK consumer in a
// child process applying messages into PostgreSQL through the inbox. Along the way the consumer is
// SIGKILLed once, and the broker is SIGKILLed and kept down for several retry steps while messages
// are published, then started again on its data. At the end every message must be applied exactly
// once; redeliveries and duplicates skipped are printed.
import { test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, startTestService } from "@tidings/testkit/service";
import { api } from "./support/api.ts";
import { stillAfter, waitFor } from "@tidings/testkit/wait";
import { privateBroker, type BrokerKind, type PrivateBroker } from "../../../scripts/brokers/privateBrokers.ts";
import { brokerName, endpointFor, type ConsumerSpec } from "../../../scripts/brokers/consumerSpec.ts";
import { newTally, spawnConsumer, type ConsumerProcess } from "../../../scripts/brokers/consumerProcess.ts";

const TOTAL = Number(process.env.TIDINGS_BROKER_MESSAGES ?? 10_000);
const KINDS = (process.env.TIDINGS_BROKERS ?? "redis,nats,rabbitmq").split(",").filter(Boolean) as BrokerKind[];
// Retries 200ms, 400ms, 800ms, 1.6s, then every 2s: an outage of OUTAGE_MS spans at least 4 retry steps.
const RETRY = { schedule: ["200ms", "400ms", "800ms", "1600ms", "2s"], maxAttempts: 1000 };
const OUTAGE_MS = 4000;
const TOPIC = "t.brokers";

async function publish(baseUrl: string, from: number, to: number, prefix: string): Promise<void> {
  const admin = api(baseUrl, ADMIN_KEY);
  const batches: Promise<void>[] = [];
  for (let start = from; start < to; start += 500) {
    const messages = [];
    for (let i = start; i < Math.min(to, start + 500); i++) messages.push({ id: `${prefix}-${i}`, topic: TOPIC, key: String(i), payload: { i } });
    batches.push(admin.post("/v1/messages/batch", { messages }).then((r) => assert.equal(r.status, 201, JSON.stringify(r.body))));
  }
  await Promise.all(batches);
}

async function scenario(kind: BrokerKind, cleanups: (() => Promise<unknown>)[]): Promise<string> {
  const started = Date.now();
  const broker: PrivateBroker = privateBroker(kind);
  cleanups.push(() => broker.destroy());
  const bootMs = await broker.start();
  const serviceDb: TestDatabase = await createTestDatabase(`brokers_${kind}`);
  cleanups.push(() => serviceDb.drop());
  const consumerDb: TestDatabase = await createTestDatabase(`brokers_${kind}_consumer`, { empty: true });
  cleanups.push(() => consumerDb.drop());
  const service = await startTestService(serviceDb.url, { TIDINGS_POLL_INTERVAL: "100ms", TIDINGS_LEASE: "20s" });
  cleanups.push(() => service.close());
  const servicePg = new pg.Pool({ connectionString: serviceDb.url, max: 2 });
  const consumerPg = new pg.Pool({ connectionString: consumerDb.url, max: 2 });
  cleanups.push(
    () => servicePg.end(),
    () => consumerPg.end(),
  );

  const spec: ConsumerSpec = {
    broker: kind,
    url: broker.url,
    pgUrl: consumerDb.url,
    name: brokerName(`tidings_test_${kind}`),
    concurrency: 16,
    redeliverAfterMs: 2000,
    perMessageLines: true,
  };
  const tally = newTally();
  let consumer: ConsumerProcess = await spawnConsumer(spec, tally);
  cleanups.push(() => consumer.kill());
  const created = await api(service.url, ADMIN_KEY).post("/v1/subscriptions", {
    name: `brokers-${kind}`,
    topic: TOPIC,
    endpoint: endpointFor(spec),
    retry: RETRY,
    // This test follows deliveries retried on their schedule through the outage; with the circuit
    // breaker they would wait for its probe instead (health.test.ts covers that path).
    circuit: null,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));

  // A: the first 40%; the consumer is SIGKILLed in the middle of them and started again.
  const a = Math.floor(TOTAL * 0.4);
  const b = Math.floor(TOTAL * 0.5);
  await publish(service.url, 0, a, kind);
  await waitFor("the consumer to apply some messages", () => tally.applied >= a * 0.4, 60_000);
  await consumer.kill("SIGKILL");
  const appliedAtKill = tally.applied;
  consumer = await spawnConsumer(spec, tally);

  // B: the broker crashes; the next 10% are published while it is down, and retried with backoff.
  await broker.stop("SIGKILL");
  const downAt = Date.now();
  await publish(service.url, a, b, kind);
  const failing = async () => {
    const { rows } = await servicePg.query(`select count(*)::int as n from attempts where outcome = 'failed' and message_id = $1`, [`${kind}-${a}`]);
    return rows[0].n >= 4 && Date.now() - downAt >= OUTAGE_MS;
  };
  await waitFor("four failed attempts while the broker is down", failing, 30_000, 100);
  const restartMs = await broker.start();
  const downMs = Date.now() - downAt;

  // C: the rest, after the broker is back.
  await publish(service.url, b, TOTAL, kind);
  const applied = async () => {
    const { rows } = await consumerPg.query("select count(distinct message_id)::int as n from broker_effects");
    return rows[0].n === TOTAL;
  };
  await waitFor(`all ${TOTAL} messages applied`, applied, 180_000, 200);
  await waitFor(
    "every delivery recorded as delivered",
    async () => (await servicePg.query("select count(*)::int as n from deliveries where state <> 'delivered'")).rows[0].n === 0,
    30_000,
    100,
  );
  // exactly once: one effect row per message, and still so a moment later (a late redelivery,
  // if any, is skipped by the inbox)
  const effects = async () => (await consumerPg.query("select count(*)::int as rows, count(distinct message_id)::int as ids from broker_effects")).rows[0];
  await stillAfter(`${kind}: one effect row per message`, async () => (await effects()).rows === TOTAL, 500, 100);
  assert.deepEqual(await effects(), { rows: TOTAL, ids: TOTAL }, `${kind}: effects rows vs distinct ids`);
  const inbox = (await consumerPg.query("select count(*)::int as n from tidings_inbox where status = 'applied'")).rows[0].n;
  assert.equal(inbox, TOTAL);
  // the outage: messages sent while the broker was down failed several times, with growing gaps, then went through
  const { rows: outage } = await servicePg.query(
    `select array_agg(outcome order by attempt) as outcomes, array_agg(extract(epoch from started_at) * 1000 order by attempt) as at,
            array_agg(latency_ms order by attempt) as latency
       from attempts where message_id = $1 group by message_id`,
    [`${kind}-${a}`],
  );
  const outcomes: string[] = outage[0].outcomes;
  const at: number[] = outage[0].at.map(Number);
  assert.equal(outcomes.at(-1), "delivered", outcomes.join(","));
  const failures = outcomes.filter((o) => o === "failed").length;
  assert.ok(failures >= 4, `${failures} failed attempts`);
  const latency: number[] = outage[0].latency.map(Number);
  // the wait between the end of one attempt and the start of the next
  const gaps = at.slice(1).map((t, i) => Math.round(t - at[i]! - latency[i]!));
  // Each retry waited at least its step of the schedule (more under load: steps are earliest times).
  const steps = [200, 400, 800, 1600, 2000];
  for (const [i, gap] of gaps.entries()) assert.ok(gap >= (steps[i] ?? 2000) - 50, `retry ${i + 1} came after ${gap} ms, before its step: ${gaps.join(",")}`);
  const failedAttempts = (await servicePg.query("select count(*)::int as n from attempts where outcome = 'failed'")).rows[0].n;
  const { rows: errors } = await servicePg.query(
    "select left(error, 70) as error, count(*)::int as n from attempts where outcome = 'failed' group by 1 order by 2 desc limit 4",
  );

  await consumer.kill("SIGTERM");
  const line =
    `${kind}: ${TOTAL} messages applied exactly once in ${((Date.now() - started) / 1000).toFixed(1)} s` +
    ` (broker boot ${bootMs} ms, restart ${restartMs} ms, down ${downMs} ms);` +
    ` consumer killed after ${appliedAtKill} applied; redeliveries ${tally.redeliveries}, duplicates skipped ${tally.duplicates},` +
    ` handler failures ${tally.failed}; service: ${failedAttempts} failed attempts during the outage, gaps of one message ${gaps.join("/")} ms`;
  console.log(line);
  console.log(`${kind}: failed attempts by error: ${errors.map((e) => `${e.n} × ${e.error}`).join("; ")}`);
  return line;
}

for (const kind of KINDS) {
  test(`${kind}: ${TOTAL} messages through a restarted broker to a SIGKILLed consumer are applied exactly once`, { timeout: 300_000 }, async () => {
    const cleanups: (() => Promise<unknown>)[] = [];
    try {
      await scenario(kind, cleanups);
    } finally {
      for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    }
  });
}
