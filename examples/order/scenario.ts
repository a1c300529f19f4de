import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { fromPg, migrate, TidingsClient, type Executor, type MessageInfo } from "@tidings/sdk";
import { runTidings, type Child as TidingsChild } from "../recharge/processes.ts";
import { INVENTORY_SCHEMA, startInventoryServer, type InventoryServer } from "./inventoryService.ts";
import { ORDER_CREATED, ORDER_PAID, ORDER_SCHEMA, ORDER_TOPIC, type Crash } from "./orderService.ts";
import { runScript, type Child } from "./processes.ts";

const ORDER_SERVICE = fileURLToPath(new URL("./orderService.ts", import.meta.url));

export interface OrderScenarioOptions {
  /** A PostgreSQL the scenario may create (and drop) databases on. */
  postgresUrl: string;
  orders?: number;
  /** Orders per order-service process (each process is killed with SIGKILL when its orders are paid or stuck). */
  perProcess?: number;
  skus?: number;
  seed?: number;
  log?: (line: string) => void;
  /** Keep the databases afterwards (to look at them). */
  keep?: boolean;
}

export interface OrderScenarioResult {
  seed: number;
  orders: number;
  /** How many orders were planned to crash where. */
  crashes: Record<Crash, number>;
  kills: number;
  /** Orders the order service's database says are paid. */
  ordersPaid: number;
  messages: { committed: number; rolledBack: number; prepared: number; checkedBack: number };
  inventory: { deductions: number; applied: number; duplicates: number; calls: number; otherTags: number };
  /** ORDER-CREATED messages published on the same topic (the inventory does not subscribe to them). */
  created: number;
  /** SKUs whose stock went down by other than the quantity of their paid orders (expected: none). */
  wrongStock: Array<{ sku: string; expected: number; actual: number }>;
  skus: number;
  /** Paid orders with no deduction, and deductions of orders that are not paid (expected: none). */
  paidNotDeducted: string[];
  deductedNotPaid: string[];
  seconds: number;
}

/** A small seeded PRNG (mulberry32), so a run can be repeated. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function onAdmin(adminUrl: string, statements: string[]): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    for (const s of statements) await admin.query(s);
  } finally {
    await admin.end();
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, check: () => Promise<T | null | undefined | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(200);
  }
}

/**
 * The order → inventory scenario, for real: an order service (its own database, its own
 * process) pays orders with `tidings.transaction()`, and an inventory service (its own database)
 * deducts stock for each "order.paid" message through its inbox. Order-service processes are
 * killed with SIGKILL with a third of their orders stopped before the local commit and a third
 * after it (before the message commit); the next order-service process answers the service's
 * check-backs from the barrier table. At the end: orders paid = stock deducted, order by order.
 */
export async function runOrderScenario(options: OrderScenarioOptions): Promise<OrderScenarioResult> {
  const started = Date.now();
  const total = options.orders ?? 300;
  const perProcess = options.perProcess ?? 50;
  const skuCount = options.skus ?? 10;
  const seed = options.seed ?? randomBytes(4).readUInt32BE(0);
  const random = prng(seed);
  const log = options.log ?? (() => undefined);
  const suffix = randomBytes(4).toString("hex");
  const names = { service: `tidings_demo_service_${suffix}`, orders: `tidings_demo_orders_${suffix}`, inventory: `tidings_demo_inventory_${suffix}` };

  const children: Array<Child | TidingsChild> = [];
  const pools: pg.Pool[] = [];
  let inventory: InventoryServer | null = null;
  try {
    await onAdmin(
      options.postgresUrl,
      Object.values(names).map((n) => `CREATE DATABASE ${n}`),
    );
    const urls = {
      service: withDatabase(options.postgresUrl, names.service),
      orders: withDatabase(options.postgresUrl, names.orders),
      inventory: withDatabase(options.postgresUrl, names.inventory),
    };
    log(`databases: ${names.service} (Tidings), ${names.orders} (order service), ${names.inventory} (inventory service)`);

    const adminKey = `demo-admin-${randomBytes(12).toString("hex")}`;
    const service = await runTidings(
      ["serve"],
      {
        DATABASE_URL: urls.service,
        TIDINGS_PORT: "0",
        TIDINGS_ADMIN_KEY: adminKey,
        TIDINGS_LOG_LEVEL: "warn",
        TIDINGS_POLL_INTERVAL: "100ms",
        TIDINGS_CHECK_INTERVAL: "500ms",
      },
      /Tidings is running at (\S+)/,
    );
    children.push(service);
    const admin = new TidingsClient({ url: service.ready, apiKey: adminKey });
    log(`tidings serve: ${service.ready} (pid ${service.process.pid}); check-backs every 500 ms`);

    const orderPool = new pg.Pool({ connectionString: urls.orders, max: 4 });
    const inventoryPool = new pg.Pool({ connectionString: urls.inventory, max: 8 });
    pools.push(orderPool, inventoryPool);
    const orderDb: Executor = fromPg(orderPool);
    const inventoryDb: Executor = fromPg(inventoryPool);
    await migrate(orderDb);
    await orderDb.query(ORDER_SCHEMA);
    await migrate(inventoryDb);
    for (const ddl of INVENTORY_SCHEMA) await inventoryDb.query(ddl);

    const skus = Array.from({ length: skuCount }, (_, i) => `SKU-${String(i + 1).padStart(3, "0")}`);
    for (const sku of skus) await inventoryDb.query("INSERT INTO stock (sku, qty, initial) VALUES ($1, 100000, 100000)", [sku]);
    const plan = Array.from({ length: total }, (_, i) => {
      const r = random();
      const crash: Crash = r < 1 / 3 ? "before-local-commit" : r < 2 / 3 ? "after-local-commit" : "none";
      return { sn: `O${String(i + 1).padStart(6, "0")}`, sku: skus[Math.floor(random() * skus.length)]!, qty: 1 + Math.floor(random() * 5), crash };
    });
    for (let i = 0; i < plan.length; i += 500) {
      const chunk = plan.slice(i, i + 500);
      await orderDb.query(
        `INSERT INTO orders (sn, sku, qty) VALUES ${chunk.map((_, j) => `($${3 * j + 1}, $${3 * j + 2}, $${3 * j + 3})`).join(", ")}`,
        chunk.flatMap((o) => [o.sn, o.sku, o.qty]),
      );
    }
    log(`${total} new orders over ${skus.length} SKUs; stock 100000 each`);

    inventory = await startInventoryServer(inventoryDb);
    const subscription = await fetch(`${service.ready}/v1/subscriptions`, {
      method: "POST",
      headers: { authorization: `Bearer ${adminKey}`, "content-type": "application/json" },
      body: JSON.stringify({
        name: "inventory",
        topic: ORDER_TOPIC,
        tags: [ORDER_PAID],
        endpoint: { type: "http", url: inventory.url },
        retry: { schedule: ["100ms", "500ms", "1s"], maxAttempts: 50 },
      }),
    });
    if (!subscription.ok) throw new Error(`subscription: HTTP ${subscription.status} ${await subscription.text()}`);
    inventory.use(String(((await subscription.json()) as { secret: string }).secret));
    log(`inventory service receiver: ${inventory.url} (subscribed to ${ORDER_TOPIC}, tag ${ORDER_PAID})`);

    const port = await freePort();
    const app = await admin.apps.create({ name: "order", checkUrl: `http://127.0.0.1:${port}/tidings/check` });
    log(`app "order": check URL http://127.0.0.1:${port}/tidings/check (served by whichever order-service process is running)`);
    // Each order's creation goes out on the same topic with its own tag: the inventory is not told.
    const orderApp = new TidingsClient({ url: service.ready, apiKey: app.apiKey });
    for (let i = 0; i < plan.length; i += 500) {
      await orderApp.messages.sendBatch(
        plan
          .slice(i, i + 500)
          .map((o) => ({ id: `${o.sn}-created`, topic: ORDER_TOPIC, tag: ORDER_CREATED, key: o.sn, payload: { sn: o.sn, sku: o.sku, qty: o.qty } })),
      );
    }
    log(`${total} ${ORDER_TOPIC} / ${ORDER_CREATED} messages sent (no subscription takes that tag)`);
    const orderServiceEnv = {
      ORDER_DB_URL: urls.orders,
      TIDINGS_URL: service.ready,
      TIDINGS_API_KEY: app.apiKey,
      TIDINGS_SECRET: app.secret,
      PORT: String(port),
      CHECK_AFTER: "1s",
    };

    let kills = 0;
    for (let i = 0; i < plan.length; i += perProcess) {
      const batch = plan.slice(i, i + perProcess);
      const orderService = await runScript(
        ORDER_SERVICE,
        [],
        { ...orderServiceEnv, ORDERS: JSON.stringify(batch.map(({ sn, crash }) => ({ sn, crash }))) },
        /order service listening/,
      );
      children.push(orderService);
      const ready = await orderService.waitFor(/^ready: (.*)$/m, 60_000);
      await orderService.kill("SIGKILL");
      kills++;
      log(`order service pid ${orderService.process.pid}, orders ${batch[0]!.sn}…${batch.at(-1)!.sn}: ${ready[1]} — killed with SIGKILL`);
    }

    // One more order-service process, with nothing to pay: it answers the remaining check-backs.
    const last = await runScript(ORDER_SERVICE, [], { ...orderServiceEnv, ORDERS: "[]" }, /order service listening/);
    children.push(last);
    log(`order service pid ${last.process.pid} started to answer the check-backs`);

    const messages = await until(
      "every message committed or rolled back",
      async () => {
        const all: MessageInfo[] = [];
        for await (const m of admin.messages.listAll({ topic: ORDER_TOPIC, limit: 1000 })) if (m.tag === ORDER_PAID) all.push(m);
        return all.length === total && all.every((m) => m.state !== "prepared") ? all : null;
      },
      120_000,
    );
    const committed = messages.filter((m) => m.state === "committed").length;
    log(`all ${total} messages resolved: ${committed} committed, ${total - committed} rolled back`);
    await until(
      "the inventory to catch up",
      async () => Number((await inventoryDb.query<{ n: number }>("SELECT count(*)::int AS n FROM deductions"))[0]!.n) >= committed,
      120_000,
    );
    await sleep(500); // let any late duplicate arrive (the inbox must skip it)

    const paid = new Map(
      (await orderDb.query<{ sn: string; sku: string; qty: number }>("SELECT sn, sku, qty FROM orders WHERE status = 'paid'")).map((o) => [o.sn, o]),
    );
    const deductions = await inventoryDb.query<{ sn: string }>("SELECT sn FROM deductions");
    const deducted = new Set(deductions.map((d) => d.sn));
    const stock = await inventoryDb.query<{ sku: string; qty: number; initial: number }>("SELECT sku, qty, initial FROM stock ORDER BY sku");
    const wrongStock = stock
      .map((s) => ({ sku: s.sku, expected: [...paid.values()].filter((o) => o.sku === s.sku).reduce((n, o) => n + o.qty, 0), actual: s.initial - s.qty }))
      .filter((s) => s.expected !== s.actual);
    const crashes: Record<Crash, number> = { none: 0, "before-local-commit": 0, "after-local-commit": 0 };
    for (const o of plan) crashes[o.crash]++;

    return {
      seed,
      orders: total,
      crashes,
      kills,
      ordersPaid: paid.size,
      messages: {
        committed,
        rolledBack: messages.filter((m) => m.state === "rolled_back").length,
        prepared: messages.filter((m) => m.state === "prepared").length,
        checkedBack: messages.filter((m) => (m.checks ?? 0) > 0).length,
      },
      inventory: {
        deductions: deductions.length,
        applied: inventory.stats.applied,
        duplicates: inventory.stats.duplicates,
        calls: inventory.stats.calls,
        otherTags: inventory.stats.otherTags,
      },
      created: total,
      wrongStock,
      skus: stock.length,
      paidNotDeducted: [...paid.keys()].filter((sn) => !deducted.has(sn)),
      deductedNotPaid: [...deducted].filter((sn) => !paid.has(sn)),
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    for (const child of children.reverse()) await child.kill("SIGTERM").catch(() => undefined);
    await inventory?.close();
    for (const pool of pools) await pool.end().catch(() => undefined);
    if (!options.keep)
      await onAdmin(
        options.postgresUrl,
        Object.values(names).map((n) => `DROP DATABASE IF EXISTS ${n} WITH (FORCE)`),
      ).catch(() => undefined);
    else log(`kept databases ${Object.values(names).join(", ")}`);
  }
}
