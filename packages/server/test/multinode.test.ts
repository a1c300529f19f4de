import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { Agent, request } from "undici";
import { createTestDatabase } from "@tidings/testkit/db";
import { readMetric } from "@tidings/testkit/metrics";
import { Receiver } from "@tidings/testkit/receiver";
import { ADMIN_KEY, spawnService, type ServiceProcess } from "@tidings/testkit/service";
import { waitFor } from "@tidings/testkit/wait";
import { api } from "./support/api.ts";
import { sendUntilAcknowledged } from "./support/producer.ts";

// Several `tidings serve` processes on one database, as the docs promise: every message delivered,
// none twice while all live, the work shared; and one of them SIGKILLed under load.

const MESSAGES = Number(process.env.TIDINGS_MULTINODE_MESSAGES ?? 3_000);
const KILL_MESSAGES = Number(process.env.TIDINGS_MULTINODE_KILL_MESSAGES ?? 4_000);
const BATCH = 100;
const PRODUCERS = 16;
const DELIVERED = "tidings_deliveries_delivered_total";

let receiver: Receiver;
const agent = new Agent({ connections: PRODUCERS * 2 });

before(async () => {
  receiver = await new Receiver().start();
});
after(async () => {
  await receiver.stop();
  await agent.close();
});

/** POSTs to a node with the admin key; any answer but 201/200 fails the test. */
async function post(url: string, path: string, body: unknown): Promise<void> {
  const res = await request(`${url}${path}`, {
    method: "POST",
    dispatcher: agent,
    headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.body.text();
  assert.ok(res.statusCode === 201 || res.statusCode === 200, `${path} answered ${res.statusCode}: ${text.slice(0, 300)}`);
}

/** Creates the subscription through the first node and waits until every node has it in its cache. */
async function subscribe(nodes: readonly ServiceProcess[], name: string): Promise<void> {
  const created = await api(nodes[0]!.url, ADMIN_KEY).post("/v1/subscriptions", {
    name,
    topic: `t.${name}`,
    endpoint: { type: "http", url: `${receiver.url}/${name}` },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  for (const node of nodes) {
    await waitFor(`${node.url} to know ${name}`, async () => (await readMetric(node.url, "tidings_subscription_info", { subscription: name })) === 1, 10_000);
  }
}

const message = (name: string, i: number) => ({ id: `${name}-${i}`, topic: `t.${name}`, key: String(i), payload: { i } });

/**
 * Publishes `total` messages spread over the nodes' APIs: the first half in batches of BATCH, the
 * second one by one, PRODUCERS at a time; batch or message number j goes to node j mod N.
 */
async function publishSpread(nodes: readonly ServiceProcess[], name: string, total: number): Promise<void> {
  const half = Math.floor(total / 2);
  const batches = Math.ceil(half / BATCH);
  let next = 0;
  await Promise.all(
    Array.from({ length: PRODUCERS }, async () => {
      while (next < batches) {
        const b = next++;
        const ids = Array.from({ length: Math.min(BATCH, half - b * BATCH) }, (_, k) => b * BATCH + k);
        await post(nodes[b % nodes.length]!.url, "/v1/messages/batch", { messages: ids.map((i) => message(name, i)) });
      }
    }),
  );
  let single = half;
  await Promise.all(
    Array.from({ length: PRODUCERS }, async () => {
      while (single < total) {
        const i = single++;
        await post(nodes[i % nodes.length]!.url, "/v1/messages", message(name, i));
      }
    }),
  );
}

/** 2xx answers the receiver gave on one path, and the distinct ids among them. */
function arrivals(name: string): { total: number; ids: Set<string> } {
  const got = receiver.received.filter((r) => r.path === `/${name}` && r.status >= 200 && r.status < 300);
  return { total: got.length, ids: new Set(got.map((r) => r.id)) };
}

for (const n of [1, 2, 3]) {
  test(`${n} service process${n > 1 ? "es" : ""} on one database deliver ${MESSAGES} messages once each, every node its share`, { timeout: 120_000 }, async () => {
    const database = await createTestDatabase(`multinode${n}`);
    const nodes = await Promise.all(Array.from({ length: n }, () => spawnService({ DATABASE_URL: database.url })));
    const name = `shared${n}`;
    try {
      await subscribe(nodes, name);
      const started = performance.now();
      await publishSpread(nodes, name, MESSAGES);
      await waitFor(`all ${MESSAGES} delivered`, () => arrivals(name).ids.size === MESSAGES, 60_000, 50);
      const seconds = (performance.now() - started) / 1000;
      // Each process counts the deliveries it recorded; the receiver may be a moment ahead of the records.
      const counts = await waitFor(
        "every delivery recorded by the node that made it",
        async () => {
          const each = await Promise.all(nodes.map(async (node) => (await readMetric(node.url, DELIVERED)) ?? 0));
          return each.reduce((a, b) => a + b, 0) >= MESSAGES ? each : null;
        },
        10_000,
      );
      const { total, ids } = arrivals(name);
      assert.equal(ids.size, MESSAGES);
      assert.equal(total, MESSAGES, `${total - MESSAGES} deliveries arrived twice with every node alive`);
      assert.equal(
        counts.reduce((a, b) => a + b, 0),
        MESSAGES,
        `the nodes recorded ${counts.join(" + ")} deliveries for ${MESSAGES} messages`,
      );
      // Each node sends from memory what it committed, so the shares follow the producers' spread;
      // a quarter of an even share is far from luck and far from an exact split.
      for (const [i, count] of counts.entries()) {
        assert.ok(count >= MESSAGES / n / 4, `node ${i} delivered ${count}, less than a quarter of its share (${counts.join(", ")})`);
      }
      console.log(`multinode: ${n} node(s), ${MESSAGES} messages in ${seconds.toFixed(1)} s; delivered per node ${counts.join(" / ")}`);
    } finally {
      await Promise.all(nodes.map((node) => node.kill("SIGKILL")));
      await database.drop();
    }
  });
}
