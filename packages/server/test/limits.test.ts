import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, spawnService, type ServiceProcess } from "@tidings/testkit/service";
import { Receiver } from "@tidings/testkit/receiver";
import { waitFor } from "@tidings/testkit/wait";
import { api } from "./support/api.ts";

// A subscription's rateLimit and maxInFlight hold across service processes: two real processes
// on one database, each pushing the deliveries of the messages it accepted. Each process sends
// at most 2 deliveries at once: a maxInFlight of 3 reached proves both sent at the same time, and
// never exceeded (they could send 4 together) proves they count each other's.
const PER_PROCESS = 2;

let database: TestDatabase;
let nodes: ServiceProcess[];

before(async () => {
  database = await createTestDatabase("limits");
  const env = { DATABASE_URL: database.url, TIDINGS_LOG_LEVEL: "warn", TIDINGS_DELIVERY_CONCURRENCY: String(PER_PROCESS) };
  nodes = await Promise.all([spawnService(env), spawnService(env)]);
});
after(async () => {
  await Promise.all(nodes.map((n) => n.kill("SIGKILL")));
  await database.drop();
});

/** A process's own Prometheus text. */
const metricsOf = async (node: ServiceProcess): Promise<string> => (await fetch(`${node.url}/metrics`)).text();

/** Waits until every process has the subscription in its memory (its circuit gauge is listed). */
const knownToAll = (name: string) =>
  waitFor(`every process knows ${name}`, async () =>
    (await Promise.all(nodes.map(metricsOf))).every((m) => m.includes(`tidings_circuit_open{subscription="${name}"}`)),
  );

/** How many deliveries each process has seen acknowledged. */
const deliveredBy = async (): Promise<number[]> =>
  (await Promise.all(nodes.map(metricsOf))).map((m) => Number(/^tidings_deliveries_delivered_total (\d+)/m.exec(m)?.[1] ?? 0));

/** Sends `count` messages of `topic`, half through each process, in batches. */
async function sendThroughBoth(topic: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i += 100) {
    const node = nodes[(i / 100) % 2]!;
    const messages = Array.from({ length: Math.min(100, count - i) }, (_, j) => ({ topic, payload: { n: i + j } }));
    const answer = await api(node.url, ADMIN_KEY).post("/v1/messages/batch", { messages });
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    ids.push(...answer.body.items.map((m: { id: string }) => m.id));
  }
  return ids;
}

test("rateLimit: two processes together keep within 10% of the limit over a measured window", { timeout: 120_000 }, async () => {
  const RATE = 40;
  const receiver = await new Receiver().start();
  try {
    const admin = api(nodes[0]!.url, ADMIN_KEY);
    const created = await admin.post("/v1/subscriptions", {
      name: "rated",
      topic: "t.rated",
      endpoint: { type: "http", url: `${receiver.url}/rated` },
      rateLimit: RATE,
    });
    assert.equal(created.status, 201);
    assert.equal(created.body.rateLimit, RATE);
    // Every process is to know the subscription's limit before messages arrive there.
    await knownToAll("rated");
    const info = (await metricsOf(nodes[1]!)).split("\n").find((l) => l.startsWith("tidings_subscription_info{") && l.includes('subscription="rated"'));
    for (const label of ['rate_limit="40"', 'max_in_flight=""', 'ordering="none"', 'circuit="20 in a row"', 'enabled="true"'])
      assert.ok(info?.includes(label), `the policies in the metrics: ${info}`);
    const before = await deliveredBy();
    const ids = await sendThroughBoth("t.rated", 700);
    await waitFor("deliveries start", () => receiver.received.length > 0);
    const start = receiver.received[0]!.at + 2000;
    const WINDOW_MS = 10_000;
    await waitFor("the window to pass", () => Date.now() > start + WINDOW_MS, 30_000, 100);
    const inWindow = receiver.received.filter((r) => r.at >= start && r.at < start + WINDOW_MS).length;
    const rate = inWindow / (WINDOW_MS / 1000);
    console.log(`rateLimit ${RATE}/s: ${rate}/s measured over ${WINDOW_MS / 1000} s by two processes`);
    assert.ok(Math.abs(rate - RATE) <= RATE * 0.1, `measured ${rate}/s for a limit of ${RATE}/s`);
    await waitFor("all delivered", () => ids.every((id) => receiver.deliveredIds().has(id)), 60_000, 200);
    // Both processes sent (each pushes what it accepted, so each claims its share): the limit was shared, not held by one.
    const sent = (await deliveredBy()).map((n, i) => n - before[i]!);
    assert.ok(
      sent.every((n) => n >= 100),
      `deliveries by process: ${sent.join(", ")}`,
    );
  } finally {
    await receiver.stop();
  }
});

test("maxInFlight holds across two processes: never more requests open at the receiver at once", { timeout: 120_000 }, async () => {
  const MAX = PER_PROCESS + 1;
  let open = 0;
  let most = 0;
  const delivered = new Set<string>();
  const server: Server = createServer((req, res) => {
    open++;
    most = Math.max(most, open);
    req.resume();
    req.on("end", () =>
      setTimeout(() => {
        open--;
        delivered.add(String(req.headers["webhook-id"]));
        res.writeHead(200).end("ok");
      }, 50),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/slow`;
    const admin = api(nodes[0]!.url, ADMIN_KEY);
    assert.equal((await admin.post("/v1/subscriptions", { name: "capped", topic: "t.capped", endpoint: { type: "http", url }, maxInFlight: MAX })).status, 201);
    await knownToAll("capped");
    const before = await deliveredBy();
    const ids = await sendThroughBoth("t.capped", 200);
    await waitFor("all delivered", () => ids.every((id) => delivered.has(id)), 60_000, 100);
    const sent = (await deliveredBy()).map((n, i) => n - before[i]!);
    assert.ok(
      sent.every((n) => n >= 20),
      `deliveries by process: ${sent.join(", ")}`,
    );
    assert.ok(most <= MAX, `${most} requests open at once, maxInFlight ${MAX}`);
    assert.equal(most, MAX, `the limit is used: more than one process (each sends ${PER_PROCESS} at most) sent at once`);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});
