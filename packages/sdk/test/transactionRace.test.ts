import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { connect, TidingsClient, TidingsError, type CheckBackEvent, type Connection } from "../src/index.ts";
import { DIALECT_NAME, DIALECTS, openDatabase, type OpenDatabase } from "./support/databases.ts";
import { addOrders, createOrders, paidOrders, payOrder } from "./support/txCommon.ts";
import { waitFor } from "@tidings/testkit/wait";
import { startTxWorld, type TxWorld } from "./support/txWorld.ts";

/** The races' own delays: a producer slow to begin, a callback that keeps its transaction open. */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// A check-back racing a slow local transaction, through the real service: each run prepares a
// message with checkAfter 100ms, then waits a random while before its local transaction and/or
// sleeps inside it past checkAfter (and sometimes throws), while the service checks back with
// the handler. Whatever the interleaving, the business change and the message end the same way.
const RUNS = 100;
const AT_ONCE = 10;

let world: TxWorld;
before(async () => {
  world = await startTxWorld("txrace", { env: { TIDINGS_POLL_INTERVAL: "20ms", TIDINGS_CHECK_INTERVAL: "200ms" } });
});
after(async () => {
  await world.close();
});

/** A small seeded PRNG (mulberry32), so a failing run can be repeated with TIDINGS_RACE_SEED. */
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

interface Plan {
  sn: string;
  /** Pause between the prepare's answer and the local BEGIN (ms). */
  beforeBegin: number;
  /** Sleep inside the local transaction, holding the barrier key (ms). */
  inside: number;
  throws: boolean;
}

for (const dialect of DIALECTS) {
  describe(`check-back racing slow local transactions on ${DIALECT_NAME[dialect]}`, () => {
    let database: OpenDatabase;
    let connection: Connection;
    before(async () => {
      database = await openDatabase(dialect, "txrace");
      connection = await connect(database.url, AT_ONCE * 2 + 4);
      await createOrders(connection.db);
    });
    after(async () => {
      world.useHandler(null);
      await connection.close();
      await database.close();
    });

    test(`${RUNS} runs: never the business change committed and the message rolled back, or the reverse`, async () => {
      const db = connection.db;
      const seed = Number(process.env.TIDINGS_RACE_SEED ?? randomBytes(4).readUInt32BE(0));
      const random = prng(seed);
      const prefix = `race-${dialect}-${randomBytes(3).toString("hex")}-`;
      const plans: Plan[] = Array.from({ length: RUNS }, (_, i) => {
        const kind = random();
        return {
          sn: `${prefix}${String(i).padStart(3, "0")}`,
          // A third start late (the check may come first), the rest start at once and sleep inside past checkAfter.
          beforeBegin: kind < 0.33 ? Math.floor(60 + random() * 200) : 0,
          inside: Math.floor(50 + random() * 300),
          throws: random() < 0.15,
        };
      });
      await addOrders(
        db,
        plans.map((p) => p.sn),
      );
      const byId = new Map(plans.map((p) => [p.sn, p]));

      const answers = new Map<string, string[]>();
      world.useHandler(
        world.tidings.checkBackHandler(db, {
          lockTimeoutMs: 3000,
          onEvent: (e: CheckBackEvent) => {
            if (e.type === "answered") answers.set(e.id, [...(answers.get(e.id) ?? []), e.status]);
          },
        }),
      );
      // The pause before BEGIN happens right after the prepare's answer arrives.
      const client = new TidingsClient({
        url: world.url,
        apiKey: world.apiKey,
        // One request per prepare, so that each transaction's own pause follows its own answer.
        transactions: { combineCalls: false },
        fetch: (async (url: string, init?: RequestInit) => {
          const response = await fetch(url, init);
          if (String(url).endsWith("/v1/messages") && init?.method === "POST") {
            const plan = byId.get((JSON.parse(String(init.body)) as { id: string }).id);
            if (plan?.beforeBegin) await sleep(plan.beforeBegin);
          }
          return response;
        }) as typeof fetch,
      });

      const outcomes = new Map<string, "committed" | "refused: check-back first" | "threw">();
      /** When each callback finished (just before its COMMIT): a check that arrived earlier had to wait for the key. */
      const callbackDone = new Map<string, number>();
      const started = Date.now();
      for (let i = 0; i < plans.length; i += AT_ONCE) {
        await Promise.all(
          plans.slice(i, i + AT_ONCE).map(async (plan) => {
            try {
              await client.transaction(
                db,
                { id: plan.sn, topic: world.topic, key: plan.sn, payload: { sn: plan.sn } },
                async (tx) => {
                  await payOrder(tx, plan.sn);
                  await sleep(plan.inside);
                  callbackDone.set(plan.sn, Date.now());
                  if (plan.throws) throw new Error("declined");
                },
                { checkAfter: "100ms" },
              );
              outcomes.set(plan.sn, "committed");
            } catch (error) {
              if (error instanceof TidingsError && error.code === "conflict") outcomes.set(plan.sn, "refused: check-back first");
              else if ((error as Error).message === "declined") outcomes.set(plan.sn, "threw");
              else throw error;
            }
          }),
        );
      }
      const messages = await waitFor(
        "every message resolved",
        async () => {
          const all = await world.messages(prefix);
          return all.size === RUNS && [...all.values()].every((m) => m.state !== "prepared") ? all : null;
        },
        60_000,
      );
      const paid = await paidOrders(db);
      await waitFor("every committed message delivered", () =>
        [...messages.values()].filter((m) => m.state === "committed").every((m) => world.deliveries(m.id) === 1),
      );

      const mismatches = plans.filter((p) => paid.has(p.sn) !== (messages.get(p.sn)!.state === "committed"));
      const checked = plans.filter((p) => answers.has(p.sn));
      const count = (f: (p: Plan) => boolean) => plans.filter(f).length;
      const firstCheck = new Map<string, number>();
      for (const r of world.checkRequests) if (!firstCheck.has(r.id)) firstCheck.set(r.id, r.at);
      const arrivedWhileRunning = (p: Plan) => firstCheck.has(p.sn) && callbackDone.has(p.sn) && firstCheck.get(p.sn)! < callbackDone.get(p.sn)!;
      const racedCommit = count((p) => arrivedWhileRunning(p) && outcomes.get(p.sn) === "committed" && answers.get(p.sn)?.[0] === "commit");
      const racedRollback = count((p) => arrivedWhileRunning(p) && outcomes.get(p.sn) === "threw" && answers.get(p.sn)?.[0] === "rollback");
      const checkFirst = count((p) => outcomes.get(p.sn) === "refused: check-back first");
      const unknowns = [...answers.values()].flat().filter((a) => a === "unknown").length;
      console.log(
        `# ${DIALECT_NAME[dialect]}: ${RUNS} runs in ${((Date.now() - started) / 1000).toFixed(1)} s (seed ${seed}): ` +
          `${paid.size} orders paid = ${count((p) => messages.get(p.sn)!.state === "committed")} messages committed, ` +
          `${count((p) => messages.get(p.sn)!.state === "rolled_back")} rolled back; ${checked.length} checked back: ` +
          `${racedCommit} arrived while the local transaction ran and answered commit, ${racedRollback} arrived while it ran and answered rollback after it threw, ` +
          `${checkFirst} answered rollback before the local transaction began (whose barrier insert then failed); ${unknowns} unknown; mismatches ${mismatches.length}`,
      );
      assert.deepEqual(
        mismatches.map((p) => p.sn),
        [],
        "the business change committed exactly when the message did",
      );
      assert.equal(
        count((p) => outcomes.get(p.sn) === "committed"),
        paid.size,
        "transaction() resolved exactly for the paid orders",
      );
      assert.ok(racedCommit > 0, "some checks arrived while the local transaction ran, waited, and answered commit");
      assert.ok(checkFirst > 0, "some checks came before the local transaction and rolled it back");
    });
  });
}
