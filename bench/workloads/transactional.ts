import { TidingsClient } from "@tidings/sdk";
import { measure, resetStatements, topStatements, withDatabase, withTidings, type BenchContext } from "../lib/context.ts";
import { closedLoop, warmupCount } from "../lib/load.ts";
import { payload, TOPIC } from "../lib/payload.ts";
import { atLeast, fmt, type SystemResult, type WorkloadResult } from "../lib/report.ts";
import { ACCOUNTS, creditAccount, serviceRssTarget, withAccounts } from "./common.ts";

/**
 * Workload 5: the SDK's `transaction()`: prepare the half message at the service (with the
 * producer database's identity as its check context), run the local transaction (barrier row +
 * a business UPDATE) in the producer's own PostgreSQL database, commit, then commit the
 * message. `concurrency` callers; transactions/s.
 */
export async function transactional(ctx: BenchContext): Promise<Omit<WorkloadResult, "name" | "startedAt" | "seconds" | "status">> {
  const { transactions: total, concurrency } = ctx.sizes.transactional;
  let statements: WorkloadResult["statements"];
  ctx.log("  tidings ...");
  const tidings = await withTidings(ctx, "transactional", (service, serviceDb) =>
    withDatabase(ctx, "transactional_producer", (producerDb) =>
      withAccounts(producerDb.url, concurrency, async (pool, db) => {
        const apiKey = await service.createApp("bench");
        const client = new TidingsClient({ url: service.url, apiKey });
        const one = async (i: number) => {
          await client.transaction(db, { topic: TOPIC, key: `ord_${i}`, payload: payload(i) }, async (tx) => {
            await creditAccount(tx, i);
          });
        };
        await closedLoop(warmupCount(total), concurrency, (i) => one(total + i));
        await resetStatements(ctx, serviceDb.url);
        const { result: seconds, processes } = await measure(
          ctx,
          service.pid,
          () => total,
          () => closedLoop(total, concurrency, one),
        );
        const producerStatements = (await topStatements(ctx, producerDb.url)) ?? [];
        statements = await topStatements(ctx, serviceDb.url);
        if (statements) {
          statements.push(...producerStatements.map((st) => ({ ...st, query: `[producer] ${st.query}` })));
          statements.sort((a, b) => b.totalMs - a.totalMs);
        }
        const [{ n }] = (await pool.query<{ n: string }>("select sum(balance) as n from accounts")).rows as [{ n: string }];
        if (Number(n) !== total + warmupCount(total)) throw new Error(`the business updates do not add up: ${n}`);
        return {
          system: "tidings",
          role: "tidings",
          figure: Math.round(total / seconds),
          unit: "tx/s",
          messages: total,
          seconds,
          processes,
          config:
            `TidingsClient.transaction() × ${concurrency} concurrent (SDK over pg, pool ${concurrency}): prepare (HTTP), ` +
            `local transaction with barrier row + UPDATE of 1 of ${fmt(ACCOUNTS)} accounts, commit, message commit (HTTP); ` +
            `producer database on the same PostgreSQL server; service defaults`,
        } satisfies SystemResult;
      }),
    ),
  );
  return {
    title: `SDK transaction() with a local business update and barrier, ${concurrency} concurrent, ${fmt(total)} transactions`,
    systems: [tidings],
    ratios: [],
    targets: [atLeast("≥ 3,000 tx/s", tidings.figure, 3_000, "tx/s"), serviceRssTarget(tidings)],
    notes: ["no peer is named for this workload (pg-boss and graphile-worker have no half-message protocol)"],
    ...(statements ? { statements } : {}),
  };
}
