import { test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { Agent, request } from "undici";
import { HaUnavailableError, startHaCluster, type HaCluster } from "@tidings/testkit/haCluster";
import { ADMIN_KEY, spawnService, startTestService, type ServiceProcess } from "@tidings/testkit/service";
import { Receiver } from "@tidings/testkit/receiver";
import { createTestDatabase, withDatabase } from "@tidings/testkit/db";
import { waitFor } from "@tidings/testkit/wait";
import { api } from "./support/api.ts";
import pino from "pino";
import { updateSubscription } from "../src/store/subscriptions.ts";
import { SubscriptionCache } from "../src/delivery/subscriptionCache.ts";
import { createPool } from "../src/store/db.ts";

/** Publishes a second: steady, not a flood (the point is what each request sees during the switch). */
const RATE = 150;
/** Each publish request's own deadline: past it the client gives up (which must never be needed). */
const DEADLINE_MS = 4000;

interface Outcome {
  id: string;
  start: number;
  end: number;
  /** HTTP status, or 0: no answer (connection refused/reset), -1: the client's deadline passed. */
  status: number;
  retryAfter: string | null;
  error?: string;
}

/**
 * Open loop: a request every 1000/RATE ms whatever the previous ones do (a closed loop would slow
 * down with the service and hide the outage), each with its own deadline.
 */
function publishSteadily(url: string, agent: Agent, outcomes: Outcome[]): { stop(): Promise<void> } {
  let i = 0;
  let stopped = false;
  const inFlight = new Set<Promise<void>>();
  const one = async (id: string) => {
    const start = Date.now();
    try {
      const res = await request(`${url}/v1/messages`, {
        method: "POST",
        dispatcher: agent,
        headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" },
        body: JSON.stringify({ id, topic: "t", payload: { id } }),
        signal: AbortSignal.timeout(DEADLINE_MS),
      });
      await res.body.dump();
      const retryAfter = res.headers["retry-after"];
      outcomes.push({ id, start, end: Date.now(), status: res.statusCode, retryAfter: typeof retryAfter === "string" ? retryAfter : null });
    } catch (error) {
      const timedOut = (error as Error).name === "TimeoutError" || (error as Error).name === "AbortError";
      outcomes.push({ id, start, end: Date.now(), status: timedOut ? -1 : 0, retryAfter: null, error: String((error as Error).message) });
    }
  };
  const timer = setInterval(() => {
    if (stopped) return;
    const p = one(`f-${i++}`);
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  }, 1000 / RATE);
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all(inFlight);
    },
  };
}

/** The service's LISTEN session on whichever node HAProxy reaches now: its backend pid, or null. */
async function listener(admin: pg.Pool): Promise<number | null> {
  const { rows } = await admin.query("select pid from pg_stat_activity where application_name = 'tidings' and query like 'listen %'");
  return rows.length === 1 ? (rows[0].pid as number) : null;
}

test("the primary's machine dies: Tidings serves again within seconds of the standby's promotion, loses no acknowledged message, and listens again", {
  timeout: 180_000,
}, async (t) => {
  let cluster: HaCluster;
  try {
    cluster = await startHaCluster();
  } catch (error) {
    if (error instanceof HaUnavailableError) {
      t.skip(`patroni, etcd and haproxy are needed (Debian: patroni etcd-server haproxy): ${error.message}`);
      return;
    }
    throw error;
  }
  const receiver = await new Receiver().start();
  const agent = new Agent({ connections: 64 });
  let service: ServiceProcess | null = null;
  let passed = false;
  const admin = new pg.Pool({ connectionString: withDatabase(cluster.url, "tidings"), max: 2, connectionTimeoutMillis: 2000 });
  admin.on("error", () => {});
  try {
    const boot = new pg.Client({ connectionString: cluster.url });
    await boot.connect();
    await boot.query("create database tidings");
    await boot.end();
    service = await spawnService({
      DATABASE_URL: withDatabase(cluster.url, "tidings"),
      // Only a notification can make a subscription change prompt: no poll, no reload of the
      // subscriptions for two minutes (longer than this test).
      TIDINGS_POLL_INTERVAL: "120s",
      TIDINGS_DB_CONNECT_TIMEOUT: "2s",
      TIDINGS_DB_STATEMENT_TIMEOUT: "5s",
    });
    const s = await api(service.url, ADMIN_KEY).post("/v1/subscriptions", { name: "s", topic: "t", endpoint: { type: "http", url: `${receiver.url}/s` } });
    assert.equal(s.status, 201);
    const before = await waitFor("the service's LISTEN session on the primary", () => listener(admin));

    const outcomes: Outcome[] = [];
    const publisher = publishSteadily(service.url, agent, outcomes);
    await waitFor("a steady stream of acknowledged messages", () => outcomes.filter((o) => o.status === 201).length >= RATE * 3, 20_000, 50);

    // Only a synchronous standby is sure to hold every acknowledged message when it is promoted.
    const standby = (await cluster.nodes()).find((n) => n.role !== "leader")!;
    assert.equal(standby.role, "sync_standby");
    const { node: killed, at: killedAt } = await cluster.killPrimary();
    const survivor = (await cluster.nodes()).find((n) => n.name !== killed.name)!;
    assert.equal(survivor.name, standby.name);
    const promotedAt = await waitFor("the standby's promotion", async () => ((await cluster.isPrimary(survivor)) ? Date.now() : 0), 60_000, 50);
    const servedAgain = await waitFor(
      "a 201 for a request started after the promotion",
      () => outcomes.find((o) => o.status === 201 && o.start >= promotedAt)?.end,
      30_000,
      50,
    );
    // A few seconds of steady service after the switch.
    const after = outcomes.length;
    await waitFor("steady service after the switch", () => outcomes.slice(after).filter((o) => o.status === 201).length >= RATE * 2, 20_000, 50);
    await publisher.stop();

    const acked = outcomes.filter((o) => o.status === 201);
    const refused = outcomes.filter((o) => o.status !== 201);
    // Time without a 201: the longest stretch between two requests' acknowledgements around the kill.
    const ends = acked.map((o) => o.end).sort((a, b) => a - b);
    let gap = 0;
    for (let k = 1; k < ends.length; k++) if (ends[k]! > killedAt) gap = Math.max(gap, ends[k]! - ends[k - 1]!);
    const slowest = Math.max(...refused.map((o) => o.end - o.start), 0);
    const statuses = new Map<string, number>();
    for (const o of refused) statuses.set(String(o.status), (statuses.get(String(o.status)) ?? 0) + 1);
    console.log(
      `failover: kill -> promotion ${promotedAt - killedAt} ms; promotion -> first 201 ${servedAgain - promotedAt} ms; ` +
        `longest time without a 201 ${gap} ms; ${acked.length} acknowledged, ${refused.length} refused ` +
        `(${[...statuses].map(([k, v]) => `${k === "0" ? "connection error" : k === "-1" ? "client deadline" : k}: ${v}`).join(", ")}); slowest refusal ${slowest} ms`,
    );

    // During the switch: 503 with Retry-After, or a connection error, quickly -- never a request left hanging.
    assert.deepEqual(
      refused.filter((o) => o.status === -1),
      [],
      `no request may wait past its ${DEADLINE_MS} ms deadline`,
    );
    for (const o of refused) {
      assert.ok(
        o.status === 0 || (o.status === 503 && o.retryAfter !== null),
        `a refusal is a 503 with Retry-After or a connection error: ${JSON.stringify(o)}`,
      );
    }
    // The service follows Patroni: serving again within seconds of the promotion.
    assert.ok(servedAgain - promotedAt < 10_000, `served again ${servedAgain - promotedAt} ms after the promotion`);

    // Synchronous replication: every 201, before, during and after the switch, is delivered.
    await waitFor("every acknowledged message delivered", () => acked.every((o) => receiver.counts.has(o.id)), 30_000, 100);
    const sent = receiver.received.filter((r) => r.id.startsWith("f-"));
    console.log(
      `failover: ${new Set(sent.map((r) => r.id)).size} messages delivered, ${sent.length} deliveries (the difference: sent again after their result was lost)`,
    );

    // LISTEN is re-established on the new primary (a new session: the old one died with its machine) ...
    const relistened = await waitFor("the service's LISTEN session on the new primary", () => listener(admin), 20_000, 100);
    assert.notEqual(relistened, before);
    // ... and works: a change another node makes reaches this one by notification only (nothing
    // polls for two minutes). Twice, so that the reload that follows re-listening cannot be what
    // carried it.
    for (const path of ["/s2", "/s3"]) {
      assert.ok(await updateSubscription(admin, "s", { endpoint: { type: "http", url: `${receiver.url}${path}` } }));
      const changedAt = Date.now();
      // A message every 100 ms until one goes to the new address (the notification is handled
      // asynchronously: the first may still go by the old one).
      let n = 0;
      await waitFor(
        `a message published after the change delivered to ${path}`,
        async () => {
          assert.equal((await api(service!.url, ADMIN_KEY).post("/v1/messages", { id: `after-${path.slice(1)}-${n++}`, topic: "t", payload: {} })).status, 201);
          return receiver.received.some((r) => r.path === path);
        },
        5000,
        100,
      );
      console.log(`failover: subscription change by another node took effect ${Date.now() - changedAt} ms after it`);
    }
    assert.equal(await listener(admin), relistened, "the same LISTEN session all along");
    passed = true;
  } finally {
    // The service's own account, when something went wrong.
    if (!passed) console.log(service?.output().slice(-20_000));
    await service?.kill("SIGKILL");
    await agent.close();
    await receiver.stop();
    await admin.end();
    await cluster.stop();
  }
});

// What the service meets in the few hundred ms between HAProxy's routing to the new primary (Patroni
// says "primary" once it holds the leader key) and the end of its promotion: a server that takes
// connections but refuses writes (SQLSTATE 25006) and LISTEN. Shown here without a cluster, on a
// database whose sessions are read-only (for writes the same refusal; LISTEN needs a standby, so
// a LISTEN the server refuses otherwise stands in for it).

test("a database that refuses writes (a standby still being promoted) gets 503 with Retry-After, not 500", async () => {
  const database = await createTestDatabase("failover_read_only");
  const service = await startTestService(database.url);
  const admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  try {
    // From now on every new session is read-only; the service's present ones are ended.
    await admin.query(`alter database ${database.name} set default_transaction_read_only = on`);
    await admin.query("select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()");
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${service.url}/v1/messages`, {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" },
        body: JSON.stringify({ id: `read-only-${i}`, topic: "t", payload: {} }),
      });
      assert.equal(res.status, 503, await res.text());
      assert.equal(res.headers.get("retry-after"), "1");
    }
  } finally {
    await admin.end();
    await service.close();
    await database.drop();
  }
});

test("a LISTEN the server refuses gives its connection back: retrying once a second does not drain the pool", { timeout: 60_000 }, async () => {
  const database = await createTestDatabase("failover_listen");
  const db = createPool(database.url, 3, { connectTimeoutMs: 2000, statementTimeoutMs: 5000 });
  const warnings: string[] = [];
  const log = pino({ level: "warn" }, { write: (line: string) => void warnings.push(line) });
  // "listen select": a syntax error, the server refusing LISTEN on a live connection.
  const cache = new SubscriptionCache(db, log, 60_000, { select: () => {} });
  try {
    await cache.start();
    // More refused attempts than the pool has connections.
    await waitFor("4 refused LISTENs", () => warnings.filter((w) => w.includes("could not listen")).length >= 4, 15_000, 50);
    // Between attempts (the next is a second away) nothing may be checked out.
    assert.equal(db.totalCount - db.idleCount, 0, "no connection kept checked out");
    await cache.reload();
  } finally {
    await cache.stop();
    // Bounded: a pool waits for its checked-out connections to come back before it ends.
    await Promise.race([db.end(), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
    await database.drop();
  }
});

/**
 * A TCP relay to PostgreSQL that can go silent: its open connections stop passing bytes either
 * way without closing (a machine that died, a network that dropped everything), while new
 * connections pass again.
 */
async function silentRelay(target: URL): Promise<{ url: string; connections(): number; silence(): void; close(): Promise<void> }> {
  const net = await import("node:net");
  const open = new Set<{ silent: boolean; sockets: import("node:net").Socket[] }>();
  let count = 0;
  const server = net.createServer((client) => {
    count++;
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    const pair = { silent: false, sockets: [client, upstream] };
    open.add(pair);
    client.on("data", (d) => void (pair.silent || upstream.write(d)));
    upstream.on("data", (d) => void (pair.silent || client.write(d)));
    const end = () => {
      open.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end).on("error", end);
    upstream.on("close", end).on("error", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as import("node:net").AddressInfo).port;
  const url = new URL(target.toString());
  url.hostname = "127.0.0.1";
  url.port = String(port);
  return {
    url: url.toString(),
    connections: () => count,
    silence: () => {
      for (const pair of open) pair.silent = true;
    },
    close: async () => {
      for (const pair of open) for (const s of pair.sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

test("a LISTEN connection that goes silent without closing is found by the refresh's check and replaced", { timeout: 60_000 }, async () => {
  const database = await createTestDatabase("failover_silent_listen");
  const relay = await silentRelay(new URL(database.url));
  const db = createPool(database.url, 3, { connectTimeoutMs: 2000, statementTimeoutMs: 5000 });
  const listenDb = createPool(relay.url, 1, { connectTimeoutMs: 2000, statementTimeoutMs: 0 });
  const warnings: string[] = [];
  const log = pino({ level: "warn" }, { write: (line: string) => void warnings.push(line) });
  // A channel of the test's own: its notifications reach the cache only through a live LISTEN.
  let pings = 0;
  const cache = new SubscriptionCache(db, log, 300, { tidings_test_ping: () => pings++ }, listenDb);
  const admin = new pg.Client({ connectionString: database.url });
  await admin.connect();
  // Notifies until one is heard (one sent before the new connection's LISTEN would be lost).
  const ping = async () => {
    const before = pings;
    await waitFor(
      "the notification heard",
      async () => {
        if (pings > before) return true;
        await admin.query("select pg_notify('tidings_test_ping', '')");
        return false;
      },
      10_000,
      50,
    );
  };
  try {
    await cache.start();
    assert.equal(relay.connections(), 1);
    await ping();
    relay.silence();
    // The check on a refresh waits 5 s for an answer, then listens anew on a new connection.
    await waitFor("a new LISTEN connection", () => relay.connections() >= 2, 15_000, 50);
    assert.ok(
      warnings.some((w) => w.includes("the LISTEN connection is gone")),
      warnings.join("\n"),
    );
    // Heard again: the new connection LISTENs (the silent one would never pass it on).
    await ping();
  } finally {
    await admin.end();
    await cache.stop();
    await relay.close();
    await Promise.race([Promise.all([db.end(), listenDb.end()]), new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
    await database.drop();
  }
});
