import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import pg from "pg";
import { createTestDatabase, TEST_PG_URL, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, startTestService, type RunningService } from "@tidings/testkit/service";
import { Receiver } from "@tidings/testkit/receiver";
import { waitFor } from "@tidings/testkit/wait";
import { loadConfig } from "@tidings/server";
import { api } from "./support/api.ts";
import { startPgBouncer, withoutPgBouncer, type PgBouncer } from "./support/pgbouncer.ts";

/** PgBouncer's server connections per database: far fewer than the service's pool (16 a node). */
const POOL_SIZE = 3;

describe("behind PgBouncer in transaction mode", { skip: withoutPgBouncer() }, () => {
  let bouncer: PgBouncer;
  let database: TestDatabase;
  let nodes: RunningService[] = [];
  let receiver: Receiver;
  let direct: pg.Pool;
  const checker = createServer((req, res) => {
    req.resume();
    req.on("end", () => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ status: "commit" })));
  });
  /** Node 1's app key and the admin of each node. */
  let app: ReturnType<typeof api>;
  let admins: ReturnType<typeof api>[];

  /** The LISTEN connections' name, so that the test can find them on PostgreSQL itself. */
  const LISTEN_APP = "tidings-listen";

  before(async () => {
    bouncer = await startPgBouncer(POOL_SIZE);
    database = await createTestDatabase("pgbouncer");
    const listenUrl = new URL(database.url);
    listenUrl.searchParams.set("application_name", LISTEN_APP);
    const env = {
      TIDINGS_DB_POOLING: "transaction",
      DATABASE_LISTEN_URL: listenUrl.toString(),
      TIDINGS_CHECK_INTERVAL: "100ms",
      TIDINGS_POLL_INTERVAL: "100ms",
    };
    nodes = [await startTestService(bouncer.url(database.name), env), await startTestService(bouncer.url(database.name), env)];
    admins = nodes.map((n) => api(n.url, ADMIN_KEY));
    receiver = await new Receiver().start();
    await new Promise<void>((resolve) => checker.listen(0, "127.0.0.1", resolve));
    const created = await admins[0]!.post("/v1/apps", { name: "shop", checkUrl: `http://127.0.0.1:${(checker.address() as AddressInfo).port}/check` });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    app = api(nodes[1]!.url, created.body.apiKey);
    direct = new pg.Pool({ connectionString: database.url, max: 2 });
  });

  after(async () => {
    for (const node of nodes) await node.close();
    await receiver?.stop();
    checker.closeAllConnections();
    checker.close();
    await direct?.end();
    await bouncer?.stop();
    await database?.drop();
  });

  test("singles, a batch and a prepared message settled by its check-back are published and delivered, and listed", async () => {
    const sub = await admins[0]!.post("/v1/subscriptions", {
      name: "billing",
      topic: "order.paid",
      endpoint: { type: "http", url: `${receiver.url}/billing` },
    });
    assert.equal(sub.status, 201, JSON.stringify(sub.body));
    const singles = await Promise.all(Array.from({ length: 30 }, (_, i) => app.post("/v1/messages", { id: `s-${i}`, topic: "order.paid", payload: { i } })));
    assert.deepEqual(new Set(singles.map((r) => r.status)), new Set([201]));
    const batch = await app.post("/v1/messages/batch", {
      messages: Array.from({ length: 20 }, (_, i) => ({ id: `b-${i}`, topic: "order.paid", payload: { i } })),
    });
    assert.equal(batch.status, 201, JSON.stringify(batch.body));
    const prepared = await app.post("/v1/messages", { id: "p-1", topic: "order.paid", payload: { p: 1 }, prepare: true, checkAfter: "100ms" });
    assert.equal(prepared.body.state, "prepared");

    const ids = [...singles.map((_, i) => `shop/s-${i}`), ...Array.from({ length: 20 }, (_, i) => `shop/b-${i}`), "shop/p-1"];
    await waitFor("every message delivered", () => ids.every((id) => receiver.deliveredIds().has(id)));
    // The check-back said committed: the prepared message was committed, and its check is on record.
    const p1 = await app.get("/v1/messages/p-1");
    assert.equal(p1.body.state, "committed");
    assert.equal((await app.get("/v1/messages/p-1/checks")).body.items.length >= 1, true);

    // The lists, as the console shows them, from either node.
    for (const admin of admins) {
      const listed = await admin.get("/v1/messages?topic=order.paid&limit=100");
      assert.equal(listed.status, 200);
      assert.equal(listed.body.items.length, 51);
      const deliveries = await admin.get("/v1/deliveries?subscription=billing&state=delivered&limit=100");
      assert.equal(deliveries.status, 200);
      await waitFor(
        "the delivered ones listed",
        async () => (await admin.get("/v1/deliveries?subscription=billing&state=delivered&limit=100")).body.items.length === 51,
      );
      const stats = await admin.get("/v1/stats");
      assert.equal(stats.status, 200);
      assert.equal(stats.body.messages.delivered ?? stats.body.deliveries.total.delivered, 51);
      assert.equal((await admin.get("/v1/audit")).status, 200);
      assert.equal((await admin.get("/v1/subscriptions")).body.items.length, 1);
    }
  });

  test("many more concurrent requests than PgBouncer's server connections share those connections", async (t) => {
    const before = (await bouncer.admin("show stats")).find((r) => r.database === database.name);
    const requests = 120;
    const answers = await Promise.all(
      Array.from({ length: requests }, (_, i) =>
        i % 2 === 0
          ? app.post("/v1/messages", { topic: "shared.test", payload: { i } })
          : admins[i % 4 === 1 ? 0 : 1]!.get("/v1/messages?topic=order.paid&limit=5"),
      ),
    );
    assert.deepEqual(new Set(answers.map((a) => a.status).filter((s) => s >= 300)), new Set(), "no request failed");
    const pool = (await bouncer.admin("show pools")).find((r) => r.database === database.name && r.pool_mode === "transaction");
    assert.ok(pool, `a pool of ${database.name} in ${JSON.stringify(await bouncer.admin("show pools"))}`);
    const clients = Number(pool.cl_active) + Number(pool.cl_waiting);
    const servers = Number(pool.sv_active) + Number(pool.sv_idle) + Number(pool.sv_used) + Number(pool.sv_tested) + Number(pool.sv_login);
    assert.ok(clients > POOL_SIZE, `clients connected to PgBouncer: ${clients}`);
    assert.ok(servers <= POOL_SIZE, `server connections: ${servers}`);
    // PostgreSQL itself sees only PgBouncer's few connections besides the two direct LISTEN ones.
    const { rows } = await direct.query<{ app: string; n: number }>(
      `select application_name = $2 as listen, count(*)::int as n from pg_stat_activity
        where datname = $1 and pid <> pg_backend_pid() group by 1`,
      [database.name, LISTEN_APP],
    );
    const count = (listen: boolean) => rows.find((r) => (r as unknown as { listen: boolean }).listen === listen)?.n ?? 0;
    // The direct pool of this test holds one more connection than the query's own at most.
    assert.ok(count(false) <= POOL_SIZE + 1, `non-LISTEN sessions on PostgreSQL: ${JSON.stringify(rows)}`);
    assert.equal(count(true), 2, "one direct LISTEN connection per node");
    const stats = (await bouncer.admin("show stats")).find((r) => r.database === database.name);
    const transactions = Number(stats?.total_xact_count) - Number(before?.total_xact_count ?? 0);
    // Each list is a transaction of its own; single publishes arriving together share one statement.
    assert.ok(transactions >= requests / 2, `transactions through PgBouncer during the burst: ${transactions}`);
    t.diagnostic(`${requests} requests: ${clients} clients on PgBouncer, ${servers} server connections, ${transactions} transactions`);
  });

  test("a subscription created on one node is seen by the other at once: LISTEN goes directly to PostgreSQL", async () => {
    const { rows } = await direct.query("select query from pg_stat_activity where datname = $1 and application_name = $2", [database.name, LISTEN_APP]);
    assert.equal(rows.length, 2);
    for (const row of rows) assert.match(row.query, /^listen /i);
    const started = Date.now();
    assert.equal(
      (await admins[0]!.post("/v1/subscriptions", { name: "fresh", topic: "order.new", endpoint: { type: "http", url: `${receiver.url}/fresh` } })).status,
      201,
    );
    await waitFor(
      "node 2 knows the new subscription",
      async () => (await (await fetch(`${nodes[1]!.url}/metrics`)).text()).includes('subscription="fresh"'),
      8000,
    );
    // Its safety-net reload runs every 10 s: seen well before, it came by NOTIFY.
    assert.ok(Date.now() - started < 8000);
    await app.post("/v1/messages", { id: "n-1", topic: "order.new", payload: {} });
    await waitFor("delivery of the new subscription's first message", () => receiver.received.some((r) => r.path === "/fresh" && r.id === "shop/n-1"));
  });

  test("a pooler whose server connections are all taken: requests answer 503 after its query_wait_timeout, and the service lives on", async (t) => {
    const narrow = await startPgBouncer(1, { query_wait_timeout: 1 });
    const listenUrl = new URL(database.url);
    const node = await startTestService(narrow.url(database.name), { TIDINGS_DB_POOLING: "transaction", DATABASE_LISTEN_URL: listenUrl.toString() });
    const holder = new pg.Client({ connectionString: narrow.url(database.name) });
    try {
      const client = api(node.url, ADMIN_KEY);
      // An open transaction keeps PgBouncer's only server connection to itself.
      await holder.connect();
      await holder.query("begin");
      await holder.query("select 1");
      const started = Date.now();
      const [list, batch] = await Promise.all([
        client.get("/v1/messages?topic=order.paid"),
        client.post("/v1/messages/batch", { messages: [{ topic: "wait.test", payload: {} }] }),
      ]);
      assert.equal(list.status, 503, JSON.stringify(list.body));
      assert.equal(batch.status, 503, JSON.stringify(batch.body));
      t.diagnostic(`answered 503 after ${Date.now() - started} ms`);
      await holder.query("commit");
      await waitFor(
        "the service answering again",
        async () => (await client.post("/v1/messages/batch", { messages: [{ topic: "wait.test", payload: {} }] })).status === 201,
      );
      assert.equal((await client.get("/v1/messages?topic=wait.test")).status, 200);
    } finally {
      await holder.end().catch(() => {});
      await node.close();
      await narrow.stop();
    }
  });

  test("without TIDINGS_DB_POOLING=transaction the service refuses to start behind PgBouncer, saying what to set", async () => {
    const started = Date.now();
    await assert.rejects(startTestService(bouncer.url(database.name), { TIDINGS_DB_CONNECT_TIMEOUT: "10s" }), (error: Error) => {
      assert.match(error.message, /TIDINGS_DB_POOLING=transaction/);
      assert.match(error.message, /DATABASE_LISTEN_URL/);
      return true;
    });
    assert.ok(Date.now() - started < 5000, `refused after ${Date.now() - started} ms`);
  });
});

test("TIDINGS_DB_POOLING=transaction without DATABASE_LISTEN_URL is a configuration error naming it", () => {
  const load = (env: Record<string, string>) => () => loadConfig({ DATABASE_URL: TEST_PG_URL, TIDINGS_ADMIN_KEY: ADMIN_KEY, ...env });
  assert.throws(load({ TIDINGS_DB_POOLING: "transaction" }), /DATABASE_LISTEN_URL/);
  assert.throws(load({ TIDINGS_DB_POOLING: "statement" }), /TIDINGS_DB_POOLING must be none or transaction/);
  assert.throws(load({ TIDINGS_DB_POOLING: "transaction", DATABASE_LISTEN_URL: "mysql://x" }), /DATABASE_LISTEN_URL must be a postgres/);
  assert.throws(load({ DATABASE_READ_URL: "http://replica" }), /DATABASE_READ_URL must be a postgres/);
  assert.throws(() => loadConfig({ DATABASE_READ_URL: TEST_PG_URL }), /DATABASE_READ_URL needs DATABASE_URL/);
  const config = loadConfig({ DATABASE_URL: TEST_PG_URL, TIDINGS_DB_POOLING: "transaction", DATABASE_LISTEN_URL: TEST_PG_URL });
  assert.equal(config.dbPooling, "transaction");
  assert.equal(loadConfig({ DATABASE_URL: TEST_PG_URL }).dbPooling, "none");
});
