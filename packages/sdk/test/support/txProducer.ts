// A producer process for the crash matrix: runs one transaction() per planned order, all at once,
// and stops each at its planned point, then says "ready" and waits to be killed with SIGKILL.
//
//   TIDINGS_CRASH_PLAN='{"driver":"pg","databaseUrl":"...","serviceUrl":"...","apiKey":"...","topic":"...",
//                        "checkAfter":"1s","orders":[{"sn":"...","fate":"normal"}, ...]}'
//
// Fates: "normal" (finishes), "before-begin" (message prepared, stopped before the local BEGIN),
// "before-commit" (inside the local transaction, business change made, barrier key held, not
// committed), "after-commit" (local transaction committed, stopped before the message commit).
// Lines on stdout: "done <sn>", "parked <sn>", "failed <sn> <error>", then "ready".
import mysql from "mysql2/promise";
import pg from "pg";
import postgres from "postgres";
import { fromMysql2, fromPg, fromPostgresJs, TidingsClient, type Executor } from "../../src/index.ts";
import { payOrder } from "./txCommon.ts";

export type Fate = "normal" | "before-begin" | "before-commit" | "after-commit";
export interface CrashPlan {
  driver: "pg" | "postgres.js" | "mysql2";
  databaseUrl: string;
  serviceUrl: string;
  apiKey: string;
  topic: string;
  checkAfter: string;
  orders: Array<{ sn: string; fate: Fate }>;
  /**
   * Send concurrent prepares and commits together (the client's default). Only with fates that
   * stop inside the callback ("before-commit", "normal"): the others are stopped by intercepting
   * one transaction's own request, which needs one request per call.
   */
  combine?: boolean;
}

const plan = JSON.parse(process.env.TIDINGS_CRASH_PLAN ?? "null") as CrashPlan | null;
if (!plan) throw new Error("TIDINGS_CRASH_PLAN is required");

// Connections for the parked transactions and a dozen more, so that the others rarely wait for
// the pool between their prepare and their local BEGIN: wait past checkAfter and the check-back
// rolls them back first — correct, but not the fate this producer was given.
const poolSize = plan.orders.filter((o) => o.fate === "before-commit").length + 12;
let db: Executor;
if (plan.driver === "pg") db = fromPg(new pg.Pool({ connectionString: plan.databaseUrl, max: poolSize }));
else if (plan.driver === "postgres.js") db = fromPostgresJs(postgres(plan.databaseUrl, { max: poolSize, onnotice: () => undefined }));
else db = fromMysql2(mysql.createPool({ uri: plan.databaseUrl, connectionLimit: poolSize }));

const fates = new Map(plan.orders.map((o) => [o.sn, o.fate]));
let settled = 0;
const say = (line: string) => process.stdout.write(`${line}\n`);
const park = (sn: string): Promise<never> => {
  say(`parked ${sn}`);
  count();
  return new Promise<never>(() => undefined); // until SIGKILL
};
const count = () => {
  if (++settled === plan.orders.length) say("ready");
};

// Stops the SDK's HTTP calls at the planned points: after the prepare was stored (before-begin),
// or instead of the message commit (after-commit).
const client = new TidingsClient({
  url: plan.serviceUrl,
  apiKey: plan.apiKey,
  // One request per call, so that one transaction's prepare or commit can be stopped alone.
  transactions: { combineCalls: plan.combine === true },
  fetch: (async (url: string, init?: RequestInit) => {
    const path = new URL(url).pathname;
    const commit = /^\/v1\/messages\/([^/]+)\/commit$/.exec(path);
    if (commit && fates.get(decodeURIComponent(commit[1]!)) === "after-commit") return park(decodeURIComponent(commit[1]!));
    const response = await fetch(url, init);
    if (path === "/v1/messages" && init?.method === "POST") {
      const sn = (JSON.parse(String(init.body)) as { id: string }).id;
      if (fates.get(sn) === "before-begin") return park(sn);
    }
    return response;
  }) as typeof fetch,
});

await Promise.all(
  plan.orders.map(async ({ sn, fate }) => {
    try {
      await client.transaction(
        db,
        { id: sn, topic: plan.topic, key: sn, payload: { sn } },
        async (tx) => {
          await payOrder(tx, sn);
          if (fate === "before-commit") await park(sn);
        },
        { checkAfter: plan.checkAfter },
      );
      say(`done ${sn}`);
      count();
    } catch (error) {
      say(`failed ${sn} ${String((error as Error).message).replace(/\s+/g, " ")}`);
      count();
    }
  }),
);
