import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createReceiver, nodeHandler, type Envelope, type Executor, type Inbox } from "@tidings/sdk";
import type { Recharge } from "./rechargeService.ts";

/**
 * The account service's own database: balances, and a journal of every credit. The journal has
 * no unique key on purpose: a message applied twice would show there as two rows.
 */
export const ACCOUNT_SCHEMA = [
  `CREATE TABLE IF NOT EXISTS accounts (id text PRIMARY KEY, balance bigint NOT NULL DEFAULT 0)`,
  `CREATE TABLE IF NOT EXISTS credits (seq bigserial PRIMARY KEY, message_id text NOT NULL, account text NOT NULL, amount integer NOT NULL)`,
];

/** Credits one recharge, in the inbox's transaction. */
export async function credit(message: Envelope, tx: Executor): Promise<void> {
  const r = message.payload as Recharge;
  await tx.query("INSERT INTO accounts (id, balance) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET balance = accounts.balance + EXCLUDED.balance", [
    r.account,
    r.amount,
  ]);
  await tx.query("INSERT INTO credits (message_id, account, amount) VALUES ($1, $2, $3)", [message.id, r.account, r.amount]);
}

export interface FlakyStats {
  calls: number;
  /** The handler threw after its update, before commit: rolled back, answered 500. */
  failedBeforeCommit: number;
  /** Committed, then answered 500 as if the reply were lost: the redelivery is a duplicate. */
  failedAfterCommit: number;
  applied: number;
  duplicates: number;
  /** Calls answered 503 while the account service was down. */
  refusedWhileDown: number;
}

export interface AccountServer {
  readonly url: string;
  readonly stats: FlakyStats;
  /** Takes the account service down (every call answered 503) or brings it back. */
  setDown(down: boolean): void;
  close(): Promise<void>;
}

/**
 * The account service's webhook endpoint, failing `failureRate` of its calls at random, half of
 * them before the business transaction commits and half after it. It listens first (the
 * subscription needs its URL) and is given the subscription's signing secret with `use`.
 */
export async function startAccountServer(options: {
  db: Executor;
  inbox: Inbox;
  failureRate: number;
  random: () => number;
}): Promise<AccountServer & { use(secret: string): void }> {
  const stats: FlakyStats = { calls: 0, failedBeforeCommit: 0, failedAfterCommit: 0, applied: 0, duplicates: 0, refusedWhileDown: 0 };
  let down = false;
  const failures = new Map<string, "before" | "after">();
  let handler: ReturnType<typeof nodeHandler> | null = null;
  const use = (secret: string) => (handler = nodeHandler(receiverFor(secret)));
  const receiverFor = (secret: string) =>
    createReceiver({
      secret,
      db: options.db,
      inbox: options.inbox,
      async handle(message, tx) {
        await credit(message, tx);
        if (failures.get(message.id) === "before") throw new Error("injected failure before commit");
      },
      onEvent(event) {
        if (event.type === "applied") stats.applied++;
        if (event.type === "duplicate") stats.duplicates++;
      },
    });
  const server: Server = createServer((req, res) => {
    if (!handler) return void res.writeHead(503).end("not ready");
    if (down) {
      stats.refusedWhileDown++;
      return void res.writeHead(503).end("down");
    }
    stats.calls++;
    const id = String(req.headers["webhook-id"]);
    const r = options.random();
    const fail = r < options.failureRate ? (r < options.failureRate / 2 ? "before" : "after") : null;
    if (fail === "before") {
      failures.set(id, "before");
      stats.failedBeforeCommit++;
    } else failures.delete(id);
    if (fail === "after") {
      stats.failedAfterCommit++;
      // Let the receiver commit, then throw its answer away and say 500.
      const writeHead = res.writeHead.bind(res);
      res.writeHead = ((_status: number, ...rest: unknown[]) => writeHead(500, ...(rest as []))) as typeof res.writeHead;
    }
    handler(req, res);
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    use,
    setDown: (value) => {
      down = value;
    },
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/recharge`,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
