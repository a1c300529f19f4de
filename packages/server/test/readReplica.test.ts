import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import pg from "pg";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, startTestService, type RunningService } from "@tidings/testkit/service";
import { waitFor } from "@tidings/testkit/wait";
import { api } from "./support/api.ts";

// The "replica" is a database of its own, so that what the service reads from it differs
// observably from the primary: like a replica that lags, it lacks what was written since.
let primary: TestDatabase;
let replica: TestDatabase;
let service: RunningService;
let admin: ReturnType<typeof api>;
let primaryDb: pg.Pool;
let replicaDb: pg.Pool;
const READ_APP = "tidings-read";

/** The replica's URL as an operator would give it: read-only sessions, named for pg_stat_activity. */
function readUrl(url: string): string {
  const u = new URL(url);
  u.searchParams.set("options", "-c default_transaction_read_only=on");
  u.searchParams.set("application_name", READ_APP);
  return u.toString();
}

before(async () => {
  [primary, replica] = await Promise.all([createTestDatabase("read_primary"), createTestDatabase("read_replica")]);
  // What the replica already has: one message, published by a service of its own.
  const old = await startTestService(replica.url);
  assert.equal((await api(old.url, ADMIN_KEY).post("/v1/messages", { id: "old", topic: "r.test", payload: { on: "replica" } })).status, 201);
  await old.close();
  service = await startTestService(primary.url, { DATABASE_READ_URL: readUrl(replica.url) });
  admin = api(service.url, ADMIN_KEY);
  primaryDb = new pg.Pool({ connectionString: primary.url, max: 1 });
  replicaDb = new pg.Pool({ connectionString: replica.url, max: 1 });
});

after(async () => {
  await service?.close();
  await primaryDb?.end();
  await replicaDb?.end();
  await primary?.drop();
  await replica?.drop();
});

test("lists, search and stats are read from DATABASE_READ_URL; writes and look-ups of one's own writes go to the primary", async () => {
  const fresh = await admin.post("/v1/messages", { id: "fresh", topic: "r.test", payload: { on: "primary" } });
  assert.equal(fresh.status, 201);
  // Reading back what was just written: the primary's.
  assert.equal((await admin.get("/v1/messages/fresh")).body.payload.on, "primary");
  assert.deepEqual(
    (await admin.get("/v1/messages?id=fresh")).body.items.map((m: { id: string }) => m.id),
    ["fresh"],
  );
  // Lists and search: the replica's (it has not got "fresh" yet).
  const listed = await admin.get("/v1/messages?topic=r.test");
  assert.equal(listed.status, 200);
  assert.deepEqual(
    listed.body.items.map((m: { id: string }) => m.id),
    ["old"],
  );
  const stats = await admin.get("/v1/stats");
  assert.equal(stats.status, 200);
  assert.equal(Object.values(stats.body.messages as Record<string, number>).reduce((a, b) => a + b, 0) - (stats.body.messages.in_doubt ?? 0), 1);
  for (const path of ["/v1/deliveries", "/v1/alerts", "/v1/audit", "/v1/reconciliations"]) {
    const answer = await admin.get(path);
    assert.equal(answer.status, 200, `${path}: ${JSON.stringify(answer.body)}`);
  }
  // The writes are on the primary only; the replica is read through read-only sessions of their own name.
  assert.equal((await primaryDb.query("select count(*)::int as n from messages where id like '%fresh'")).rows[0].n, 1);
  assert.equal((await replicaDb.query("select count(*)::int as n from messages where id like '%fresh'")).rows[0].n, 0);
  await waitFor("only the read pool on the replica", async () => {
    const { rows } = await replicaDb.query("select application_name from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()", [replica.name]);
    return rows.length > 0 && rows.every((r) => r.application_name === READ_APP);
  });
  const readOnly = new pg.Client({ connectionString: readUrl(replica.url) });
  await readOnly.connect();
  try {
    await assert.rejects(readOnly.query("delete from messages"), (error: { code?: string }) => error.code === "25006");
  } finally {
    await readOnly.end();
  }
});

test("a read URL that is down: its routes answer 503 while publishing, look-ups and readiness still work", async () => {
  const port = await new Promise<number>((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
  const down = new URL(replica.url);
  down.port = String(port);
  const broken = await startTestService(primary.url, { DATABASE_READ_URL: down.toString(), TIDINGS_DB_CONNECT_TIMEOUT: "2s" });
  try {
    const client = api(broken.url, ADMIN_KEY);
    for (const path of ["/v1/messages?topic=r.test", "/v1/stats", "/v1/deliveries", "/v1/alerts", "/v1/audit", "/v1/reconciliations"]) {
      const answer = await client.get(path);
      assert.equal(answer.status, 503, `${path}: ${JSON.stringify(answer.body)}`);
      assert.equal(answer.body.error.code, "unavailable");
    }
    assert.equal((await client.post("/v1/messages", { id: "while-down", topic: "r.test", payload: {} })).status, 201);
    assert.equal((await client.get("/v1/messages/while-down")).status, 200);
    assert.equal((await client.get("/v1/messages?id=while-down")).body.items.length, 1);
    assert.equal((await client.get("/v1/subscriptions")).status, 200);
    assert.equal((await fetch(`${broken.url}/readyz`)).status, 200);
  } finally {
    await broken.close();
  }
});
