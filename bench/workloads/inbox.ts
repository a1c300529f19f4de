import { Inbox } from "@tidings/sdk";
import { measure, withDatabase, type BenchContext } from "../lib/context.ts";
import { closedLoop, warmupCount } from "../lib/load.ts";
import { payload, TOPIC } from "../lib/payload.ts";
import { fmt, type SystemResult, type TargetCheck, type WorkloadResult } from "../lib/report.ts";
import { ACCOUNTS, creditAccount, withAccounts } from "./common.ts";

/**
 * The consumer inbox's cost per message: the same business UPDATE applied `total`
 * times, `concurrency` at a time, once in a plain transaction each and once through
 * `inbox.handle()` (the inbox row written in the same transaction); then every message handled
 * again, as duplicates, to show what skipping one costs. One database, no service.
 */
export async function inbox(ctx: BenchContext): Promise<Omit<WorkloadResult, "name" | "startedAt" | "seconds" | "status">> {
  const { messages: total, concurrency } = ctx.sizes.inbox;
  return withDatabase(ctx, "inbox_consumer", (consumerDb) =>
    withAccounts(consumerDb.url, concurrency, async (pool, db) => {
      const message = (i: number) => ({ id: `msg-${i}`, topic: TOPIC, key: `ord_${i}`, payload: payload(i) });
      const box = new Inbox({ consumer: "bench" });
      const warm = warmupCount(total);

      const run = async (system: string, config: string, one: (i: number) => Promise<unknown>, offset: number): Promise<SystemResult> => {
        await closedLoop(warm, concurrency, (i) => one(offset + total + i).then(() => undefined));
        const { result: seconds, processes } = await measure(
          ctx,
          null,
          () => total,
          () => closedLoop(total, concurrency, (i) => one(offset + i).then(() => undefined)),
        );
        return { system, role: "tidings", figure: Math.round(total / seconds), unit: "msg/s", messages: total, seconds, processes, config };
      };
      ctx.log("  plain transactions ...");
      const plain = await run(
        "business UPDATE alone",
        `db.transaction(UPDATE 1 of ${fmt(ACCOUNTS)} accounts) × ${concurrency} concurrent (pg, pool ${concurrency})`,
        (i) => db.transaction((tx) => creditAccount(tx, i)),
        0,
      );
      ctx.log("  through the inbox ...");
      const applied = await run(
        "inbox.handle(), new messages",
        `inbox.handle(db, message, UPDATE) × ${concurrency} concurrent: the inbox row and the UPDATE in one transaction`,
        (i) => box.handle(db, message(i), (tx) => creditAccount(tx, i)),
        0,
      );
      ctx.log("  duplicates ...");
      const duplicates = await run(
        "inbox.handle(), duplicates",
        `the same ${fmt(total)} messages again: each found applied and skipped, no UPDATE`,
        (i) => box.handle(db, message(i), (tx) => creditAccount(tx, i)),
        0,
      );
      const [{ n }] = (await pool.query<{ n: string }>("select sum(balance) as n from accounts")).rows as [{ n: string }];
      // Warm-ups: plain and inbox each applied `warm` extra; the duplicate pass applied none, its warm-up neither (already applied).
      const expected = 2 * total + 2 * warm;
      const exact: TargetCheck = {
        target: "every message applied exactly once (balances)",
        actual: `${fmt(Number(n))} of ${fmt(expected)} updates`,
        met: Number(n) === expected,
      };
      const perMessageMs = (figure: number) => (concurrency * 1000) / figure;
      const overheadMs = perMessageMs(applied.figure) - perMessageMs(plain.figure);
      const cpu = (s: SystemResult) => s.processes.reduce((sum, p) => sum + p.cpuPer1000, 0);
      return {
        title: `consumer inbox: ${fmt(total)} messages applied through inbox.handle(), ${concurrency} concurrent, against the bare business transaction`,
        systems: [plain, applied, duplicates],
        ratios: [{ label: "inbox/plain", value: applied.figure / plain.figure }],
        targets: [exact],
        notes: [
          `inbox overhead per message: ${overheadMs.toFixed(2)} ms of latency per message at ${concurrency} concurrent, ` +
            `${(cpu(applied) - cpu(plain)).toFixed(3)} ms of CPU (runner + PostgreSQL: ${cpu(plain).toFixed(3)} → ${cpu(applied).toFixed(3)} ms per message)`,
        ],
      };
    }),
  );
}
