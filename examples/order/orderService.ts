// The order service, as its own process: it owns the orders database, serves the app's check-back
// URL, and pays orders with a transactional message (topic TRADE-ORDER, tag ORDER-PAID) through
// tidings.transaction().
//
// The demo runs it with the orders to pay and where to crash (ORDERS, JSON), then kills it with
// SIGKILL once every order is paid or stuck at its crash point, and starts the next one on the
// same port: the restarted service answers the check-backs of the messages its predecessor left
// prepared. The crash points are injected here, not in the SDK:
//   "before-local-commit": inside the local transaction, order updated, not committed;
//   "after-local-commit":  the local transaction committed, the message commit never sent.
import { createServer } from "node:http";
import pg from "pg";
import { fromPg, TidingsClient, type Executor } from "@tidings/sdk";

/**
 * One topic for the order's life, a tag per event, as a RocketMQ producer does: consumers
 * subscribe to the topic and the tags they care for (the inventory: ORDER-PAID only).
 */
export const ORDER_TOPIC = "TRADE-ORDER";
export const ORDER_PAID = "ORDER-PAID";
export const ORDER_CREATED = "ORDER-CREATED";

export const ORDER_SCHEMA = `CREATE TABLE IF NOT EXISTS orders (
  sn         varchar(40) PRIMARY KEY,
  sku        varchar(40) NOT NULL,
  qty        integer NOT NULL,
  status     varchar(10) NOT NULL DEFAULT 'new',
  message_id varchar(200),
  paid_at    timestamptz
)`;

export type Crash = "none" | "before-local-commit" | "after-local-commit";

/** Marks the order paid in the local transaction of its TRADE-ORDER / ORDER-PAID message. */
export async function payOrder(tidings: TidingsClient, db: Executor, sn: string, beforeCommit?: () => Promise<void>): Promise<void> {
  const [order] = await db.query<{ sku: string; qty: number }>("SELECT sku, qty FROM orders WHERE sn = $1", [sn]);
  if (!order) throw new Error(`no order ${sn}`);
  await tidings.transaction(
    db,
    { topic: ORDER_TOPIC, tag: ORDER_PAID, key: sn, payload: { sn, sku: order.sku, qty: order.qty } },
    async (tx, { messageId }) => {
      const paid = await tx.query("UPDATE orders SET status = 'paid', paid_at = now(), message_id = $2 WHERE sn = $1 AND status = 'new' RETURNING sn", [
        sn,
        messageId,
      ]);
      if (paid.length === 0) throw new Error(`order ${sn} is not new`);
      await beforeCommit?.();
    },
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const env = (name: string) => {
    const value = process.env[name];
    if (!value) throw new Error(`${name} is required`);
    return value;
  };
  const orders = JSON.parse(process.env.ORDERS ?? "[]") as Array<{ sn: string; crash: Crash }>;
  const crashOf = new Map(orders.map((o) => [o.sn, o.crash]));
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const tally = { paid: 0, failed: 0, "before-local-commit": 0, "after-local-commit": 0 };
  /** Counts one order as settled (paid, failed, or stopped at its crash point); says "ready" after the last. */
  const settle = (how: keyof typeof tally) => {
    tally[how]++;
    if (tally.paid + tally.failed + tally["before-local-commit"] + tally["after-local-commit"] === orders.length) {
      say(
        `ready: ${tally.paid} paid, ${tally["before-local-commit"]} stopped before the local commit, ${tally["after-local-commit"]} after it, ${tally.failed} failed`,
      );
    }
  };
  const stopHere = (crash: "before-local-commit" | "after-local-commit"): Promise<never> => {
    settle(crash);
    return new Promise<never>(() => undefined); // until SIGKILL
  };
  const pool = new pg.Pool({ connectionString: env("ORDER_DB_URL"), max: orders.filter((o) => o.crash === "before-local-commit").length + 6 });
  pool.on("error", () => undefined);
  const db = fromPg(pool);
  /** Message id → order number, to find the order a message commit is about. */
  const orderOfMessage = new Map<string, string>();
  const tidings = new TidingsClient({
    url: env("TIDINGS_URL"),
    apiKey: env("TIDINGS_API_KEY"),
    secret: env("TIDINGS_SECRET"),
    // One request per message commit (not several transactions' together), so that the crash
    // injection below can stop one transaction's commit alone.
    transactions: { checkAfter: process.env.CHECK_AFTER ?? "2s", combineCalls: false },
    // Crash injection "after-local-commit": the commit of the message is never sent.
    fetch: (async (url: string, init?: RequestInit) => {
      const path = new URL(url).pathname;
      if (path === "/v1/messages" && init?.method === "POST") {
        const body = JSON.parse(String(init.body)) as { id: string; key: string };
        orderOfMessage.set(body.id, body.key);
      }
      const commit = /^\/v1\/messages\/([^/]+)\/commit$/.exec(path);
      if (commit && crashOf.get(orderOfMessage.get(decodeURIComponent(commit[1]!)) ?? "") === "after-local-commit") return stopHere("after-local-commit");
      return fetch(url, init);
    }) as typeof fetch,
  });

  // The app's check URL: answered from the barrier table, no code of ours.
  const server = createServer(tidings.checkBackHandler(db).node);
  await new Promise<void>((resolve) => server.listen(Number(env("PORT")), "127.0.0.1", resolve));
  say(`order service listening on ${Number(env("PORT"))}`);

  if (orders.length === 0) say("ready: nothing to pay");
  for (const { sn, crash } of orders) {
    payOrder(tidings, db, sn, crash === "before-local-commit" ? () => stopHere("before-local-commit") : undefined).then(
      () => settle("paid"),
      (error: unknown) => {
        say(`order ${sn} failed: ${(error as Error).message}`);
        settle("failed");
      },
    );
  }
  process.on("SIGTERM", () => {
    server.close();
    void pool.end().finally(() => process.exit(0));
  });
}
