// npm run demo:order -- [--orders 300] [--per-process 50] [--seed N] [--embedded] [--keep]
//
// The order → inventory demo of transactional messages: an order paid in one service's database
// and its stock deducted in another's, exactly once, with no distributed transaction. It runs on
// the given PostgreSQL (DATABASE_URL, else TIDINGS_TEST_PG_URL, else postgres://postgres@127.0.0.1:5432/postgres),
// or on the embedded one (`--embedded`, or when that server does not answer; its data in
// TIDINGS_DATA_DIR, default ./.tidings, shared with `npm start`). It creates three databases (the
// service's, the order service's, the inventory service's), runs `tidings serve` and the order
// service as real processes, kills the order service with SIGKILL again and again with orders
// stopped before and after their local commit, and prints the final check: orders paid = stock deducted.
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import pg from "pg";
import { runOrderScenario } from "./scenario.ts";

const { values } = parseArgs({
  options: {
    orders: { type: "string", default: "300" },
    "per-process": { type: "string", default: "50" },
    seed: { type: "string" },
    embedded: { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
  },
});

const t0 = Date.now();
const log = (line: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${line}`);

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on("error", () => undefined);
  try {
    await client.connect();
    await client.query("select 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

const given = process.env.DATABASE_URL ?? process.env.TIDINGS_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
let postgresUrl = given;
let stopEmbedded: (() => Promise<void>) | null = null;
if (values.embedded || !(await answers(given))) {
  const { startEmbeddedDb } = await import("../../packages/server/src/runtime/embeddedDb.ts");
  const dataDir = resolve(process.env.TIDINGS_DATA_DIR || "./.tidings");
  log(
    values.embedded
      ? `starting the embedded PostgreSQL in ${dataDir}`
      : `${given.replace(/:[^:@/]*@/, ":***@")} does not answer: starting the embedded PostgreSQL in ${dataDir}`,
  );
  const quiet = { info: () => undefined, debug: () => undefined, warn: (o: unknown, m?: string) => log(`embedded PostgreSQL: ${m ?? JSON.stringify(o)}`) };
  const embedded = await startEmbeddedDb(dataDir, quiet as unknown as Parameters<typeof startEmbeddedDb>[1]);
  postgresUrl = embedded.url;
  stopEmbedded = embedded.stop;
}

let ok = false;
try {
  const result = await runOrderScenario({
    postgresUrl,
    orders: Number(values.orders),
    perProcess: Number(values["per-process"]),
    seed: values.seed === undefined ? undefined : Number(values.seed),
    keep: values.keep,
    log,
  });
  const c = result.crashes;
  const m = result.messages;
  const inv = result.inventory;
  console.log(`
orders                        ${result.orders} (seed ${result.seed})
order service SIGKILLed       ${result.kills}x, with ${c["before-local-commit"]} orders stopped before their local commit, ${c["after-local-commit"]} after it (before the message commit), ${c.none} not stopped
messages                      ${m.committed} committed, ${m.rolledBack} rolled back, ${m.prepared} prepared; ${m.checkedBack} settled by a check-back
orders paid                   ${result.ordersPaid}
stock deducted                ${inv.deductions} orders (receiver: ${inv.applied} applied, ${inv.duplicates} duplicates skipped, ${inv.calls} calls)
tags                          ${result.created} TRADE-ORDER / ORDER-CREATED messages beside them; ${inv.otherTags} reached the inventory (subscribed to ORDER-PAID)
stock per SKU                 ${result.skus - result.wrongStock.length}/${result.skus} SKUs went down by exactly the quantity of their paid orders
`);
  for (const w of result.wrongStock) console.log(`  WRONG ${w.sku}: expected -${w.expected}, got -${w.actual}`);
  if (result.paidNotDeducted.length) console.log(`  paid, not deducted: ${result.paidNotDeducted.slice(0, 10).join(", ")}`);
  if (result.deductedNotPaid.length) console.log(`  deducted, not paid: ${result.deductedNotPaid.slice(0, 10).join(", ")}`);
  ok =
    result.ordersPaid === inv.deductions &&
    result.ordersPaid === m.committed &&
    m.prepared === 0 &&
    inv.otherTags === 0 &&
    result.wrongStock.length === 0 &&
    result.paidNotDeducted.length === 0 &&
    result.deductedNotPaid.length === 0;
  console.log(
    ok ? `CHECK PASSED: orders paid = stock deducted = ${result.ordersPaid}, order by order and SKU by SKU (${result.seconds.toFixed(1)} s)` : "CHECK FAILED",
  );
} finally {
  await stopEmbedded?.();
}
process.exit(ok ? 0 : 1);
