import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Agent } from "undici";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, spawnService, type ServiceProcess } from "@tidings/testkit/service";
import { Receiver } from "@tidings/testkit/receiver";
import { api } from "./support/api.ts";
import { sendUntilAcknowledged } from "./support/producer.ts";
import { waitFor } from "@tidings/testkit/wait";

const TOTAL = Number(process.env.TIDINGS_CRASH_MESSAGES ?? 10_000);
const CONCURRENCY = 32;
// Short leases so that the deliveries a killed process held are taken over quickly.
const ENV = { TIDINGS_LEASE: "2s", TIDINGS_POLL_INTERVAL: "200ms" };

let receiver: Receiver;
const agent = new Agent({ connections: CONCURRENCY });

before(async () => {
  receiver = await new Receiver().start();
});
after(async () => {
  await receiver.stop();
  await agent.close();
});

async function subscribeTwo(url: string, tag: string): Promise<void> {
  const admin = api(url, ADMIN_KEY);
  for (const path of ["a", "b"]) {
    const r = await admin.post("/v1/subscriptions", {
      name: `${tag}-${path}`,
      topic: `t.${tag}`,
      endpoint: { type: "http", url: `${receiver.url}/${tag}/${path}` },
    });
    assert.equal(r.status, 201);
  }
}

/** Sends message `i` until the service acknowledges it (a producer retrying with its idempotency key). */
const sendMessage = (baseUrl: () => string, tag: string, i: number) =>
  sendUntilAcknowledged(baseUrl, { id: `${tag}-${i}`, topic: `t.${tag}`, key: String(i), payload: { i } }, agent);

async function sendAll(total: number, baseUrl: (i: number) => string, tag: string, onAck: (acked: number) => void): Promise<void> {
  let next = 0;
  let acked = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < total) {
        const i = next++;
        await sendMessage(() => baseUrl(i), tag, i);
        onAck(++acked);
      }
    }),
  );
}

/** Asserts every message reached both subscriptions; returns how many arrived more than once. */
function report(tag: string, total: number): { duplicates: number } {
  let duplicates = 0;
  for (const path of ["a", "b"]) {
    const prefix = `/${tag}/${path}`;
    const got = receiver.received.filter((r) => r.path === prefix && r.status === 200);
    const distinct = new Set(got.map((r) => r.id));
    assert.equal(distinct.size, total, `${prefix} got ${distinct.size} of ${total}`);
    duplicates += got.length - distinct.size;
  }
  return { duplicates };
}

const allDelivered = (tag: string, total: number) => () =>
  ["a", "b"].every((path) => new Set(receiver.received.filter((r) => r.path === `/${tag}/${path}`).map((r) => r.id)).size === total);

test(`${TOTAL} messages sent while the service is killed with SIGKILL twice all reach both subscriptions`, { timeout: 240_000 }, async () => {
  const database: TestDatabase = await createTestDatabase("crash");
  const env = { ...ENV, DATABASE_URL: database.url };
  let current: ServiceProcess = await spawnService(env);
  let url = current.url;
  const port = new URL(url).port;
  try {
    await subscribeTwo(url, "crash");
    const killAt = [Math.floor(TOTAL * 0.3), Math.floor(TOTAL * 0.65)];
    let kills = 0;
    let restarting = false;
    await sendAll(
      TOTAL,
      () => url,
      "crash",
      (acked) => {
        if (kills < killAt.length && acked >= killAt[kills]! && !restarting) {
          kills++;
          restarting = true;
          void (async () => {
            await current.kill("SIGKILL");
            // Back on the same port, as a restarted service would be.
            current = await spawnService({ ...env, TIDINGS_PORT: port });
            url = current.url;
            restarting = false;
          })();
        }
      },
    );
    assert.equal(kills, 2);
    await waitFor("every message at both subscriptions", allDelivered("crash", TOTAL), 120_000, 100);
    const { duplicates } = report("crash", TOTAL);
    console.log(`crash: ${TOTAL} messages x 2 subscriptions delivered after 2 SIGKILLs; ${duplicates} duplicate deliveries`);
  } finally {
    await current.kill("SIGKILL");
    await database.drop();
  }
});

test(`two service processes on one database deliver ${TOTAL} messages to both subscriptions`, { timeout: 240_000 }, async () => {
  const database: TestDatabase = await createTestDatabase("twonodes");
  const env = { ...ENV, DATABASE_URL: database.url };
  const nodes = await Promise.all([spawnService(env), spawnService(env)]);
  try {
    await subscribeTwo(nodes[0].url, "two");
    await sendAll(
      TOTAL,
      (i) => nodes[i % 2]!.url,
      "two",
      () => {},
    );
    await waitFor("every message at both subscriptions", allDelivered("two", TOTAL), 120_000, 100);
    const { duplicates } = report("two", TOTAL);
    console.log(`two nodes: ${TOTAL} messages x 2 subscriptions delivered; ${duplicates} duplicate deliveries`);
  } finally {
    await Promise.all(nodes.map((n) => n.kill("SIGKILL")));
    await database.drop();
  }
});
