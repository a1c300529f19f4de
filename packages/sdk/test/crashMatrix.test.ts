import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";
import type { Executor } from "../src/index.ts";
import { DIALECT_NAME, openDatabase, type Dialect, type OpenDatabase } from "./support/databases.ts";
import { addOrders, createOrders, paidOrders } from "./support/txCommon.ts";
import type { CrashPlan, Fate } from "./support/txProducer.ts";
import { waitFor } from "@tidings/testkit/wait";
import { startTxWorld, type TxWorld } from "./support/txWorld.ts";
import { bundled } from "@tidings/testkit/bundle";

// The crash matrix: producer processes run transaction() and are killed with SIGKILL — a third
// before their local commit (half of those before the local BEGIN, half inside the local
// transaction with its change made and its barrier key held), a third after the local commit but
// before the message commit — while a third finish normally. The check-back settles the rest.
// Afterwards the subscriber must have received exactly the messages whose business change
// committed, each once.
const PRODUCER = fileURLToPath(new URL("./support/txProducer.ts", import.meta.url));
const PER_PROCESS = 50;

let world: TxWorld;
before(async () => {
  world = await startTxWorld("crash", { env: { TIDINGS_CHECK_INTERVAL: "300ms", TIDINGS_POLL_INTERVAL: "50ms" } });
});
after(async () => {
  await world.close();
});

/**
 * Runs one producer process with `orders`, waits until each is done or parked at its point,
 * and, when `holdUntilChecked`, keeps it alive until every parked order has been checked back
 * (past checkAfter: the checks arrive while its transactions are still open); then kills it
 * with SIGKILL.
 */
async function runAndKill(
  plan: CrashPlan,
  holdUntilChecked: boolean,
): Promise<{ done: number; parked: number; failed: string[]; ms: number; killedAt: number }> {
  const started = Date.now();
  const child = spawn(process.execPath, [bundled(PRODUCER)], {
    env: { ...process.env, TIDINGS_CRASH_PLAN: JSON.stringify(plan) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  await Promise.race([
    waitFor("the producer to reach its crash points", () => /^ready$/m.test(out), 60_000, 20),
    exited.then(({ code }) => {
      throw new Error(`the producer exited (${code}) early:\n${out}\n${err}`);
    }),
  ]);
  if (holdUntilChecked) {
    const parked = out
      .split("\n")
      .filter((l) => l.startsWith("parked "))
      .map((l) => l.slice("parked ".length));
    await waitFor(
      "a check-back of every parked order while its producer lives",
      () => parked.every((sn) => world.checkRequests.some((r) => r.id === sn)),
      30_000,
    );
  }
  child.kill("SIGKILL");
  const killedAt = Date.now();
  const { signal } = await exited;
  assert.equal(signal, "SIGKILL");
  const lines = out.split("\n");
  return {
    done: lines.filter((l) => l.startsWith("done ")).length,
    parked: lines.filter((l) => l.startsWith("parked ")).length,
    failed: lines.filter((l) => l.startsWith("failed ")),
    ms: Date.now() - started,
    killedAt,
  };
}

function planFates(total: number, combine: boolean): Fate[] {
  const third = Math.floor(total / 3);
  const fates: Fate[] = [];
  for (let i = 0; i < total; i++) {
    // Combined calls: half killed inside the local transaction, half finished (see CrashPlan.combine).
    if (combine) fates.push(i % 2 === 0 ? "before-commit" : "normal");
    else if (i < third) fates.push(i % 2 === 0 ? "before-begin" : "before-commit");
    else if (i < 2 * third) fates.push("after-commit");
    else fates.push("normal");
  }
  // Shuffle, so each process gets a mix.
  for (let i = fates.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [fates[i], fates[j]] = [fates[j]!, fates[i]!];
  }
  return fates;
}

async function crashMatrix(dialect: Dialect, driver: CrashPlan["driver"], db: Executor, databaseUrl: string, total: number, combine: boolean): Promise<void> {
  const started = Date.now();
  const prefix = `crash-${driver.replace(/[^a-z0-9]/g, "")}-${randomBytes(3).toString("hex")}-`;
  const orders = planFates(total, combine).map((fate, i) => ({ sn: `${prefix}${String(i).padStart(3, "0")}`, fate }));
  await addOrders(
    db,
    orders.map((o) => o.sn),
  );
  const answers = { commit: 0, rollback: 0, unknown: 0 };
  world.useHandler(
    world.tidings.checkBackHandler(db, {
      lockTimeoutMs: 2000,
      onEvent: (e) => {
        if (e.type === "answered" && e.id.startsWith(prefix)) answers[e.status]++;
      },
    }),
  );

  const runs = [];
  /** When the producer of each order was killed. */
  const killedAt = new Map<string, number>();
  for (let i = 0; i < orders.length; i += PER_PROCESS) {
    const batch = orders.slice(i, i + PER_PROCESS);
    const run = await runAndKill(
      { driver, databaseUrl, serviceUrl: world.url, apiKey: world.apiKey, topic: world.topic, checkAfter: "2s", orders: batch, combine },
      (i / PER_PROCESS) % 2 === 1,
    );
    for (const o of batch) killedAt.set(o.sn, run.killedAt);
    runs.push(run);
  }
  const allKilledAt = Date.now();
  assert.deepEqual(
    runs.flatMap((r) => r.failed),
    [],
    "no transaction failed on its own",
  );
  const fateOf = new Map(orders.map((o) => [o.sn, o.fate]));
  const ofFate = (fate: Fate) => orders.filter((o) => o.fate === fate);

  const messages = await waitFor(
    "every message committed or rolled back by the check-back",
    async () => {
      const all = await world.messages(prefix);
      return all.size === total && [...all.values()].every((m) => m.state !== "prepared") ? all : null;
    },
    90_000,
    200,
  );
  const paid = await paidOrders(db);
  const committed = new Set([...messages.values()].filter((m) => m.state === "committed").map((m) => m.id));
  await waitFor("every committed message delivered", () => [...committed].every((id) => (world.deliveries(id) ?? 0) >= 1), 60_000);
  const delivered = new Set(world.deliveredIds().filter((id) => id.startsWith(prefix)));
  const deliveredTwice = [...delivered].filter((id) => world.deliveries(id)! > 1);
  const checkedBack = orders.filter((o) => (messages.get(o.sn)?.checks ?? 0) > 0).length;
  const firstCheck = new Map<string, number>();
  for (const r of world.checkRequests) if (!firstCheck.has(r.id)) firstCheck.set(r.id, r.at);
  const checkedWhileAlive = orders.filter((o) => firstCheck.has(o.sn) && firstCheck.get(o.sn)! < killedAt.get(o.sn)!).length;

  const row = (fate: Fate) => {
    const list = ofFate(fate);
    const n = (f: (sn: string) => boolean) => list.filter((o) => f(o.sn)).length;
    return `${list.length} ${fate}: ${n((sn) => paid.has(sn))} paid, ${n((sn) => committed.has(sn))} committed, ${n((sn) => delivered.has(sn))} delivered`;
  };
  console.log(
    `# ${DIALECT_NAME[dialect]} via ${driver}: ${total} transactions in ${runs.length} producer processes killed with SIGKILL ` +
      `(${runs.map((r) => `${r.done} done/${r.parked} parked`).join(", ")}); ` +
      `${row("before-begin")}; ${row("before-commit")}; ${row("after-commit")}; ${row("normal")}; ` +
      `${checkedBack} resolved by check-back (${checkedWhileAlive} of them first checked while their producer was still alive; answers: ${answers.commit} commit, ${answers.rollback} rollback, ${answers.unknown} unknown); orders paid ${paid.size} = messages committed ${committed.size} = delivered ${delivered.size}; ` +
      `delivered twice ${deliveredTwice.length}; kills took ${((allKilledAt - started) / 1000).toFixed(1)} s, check-back ${((Date.now() - allKilledAt) / 1000).toFixed(1)} s`,
  );

  assert.deepEqual([...delivered].sort(), [...paid].sort(), "the subscriber got exactly the messages whose business change committed");
  assert.deepEqual([...committed].sort(), [...paid].sort());
  assert.deepEqual(deliveredTwice, []);
  // And each fate ended the way it must.
  for (const [sn, fate] of fateOf) {
    const shouldCommit = fate === "normal" || fate === "after-commit";
    assert.equal(paid.has(sn), shouldCommit, `${sn} (${fate}) paid`);
  }
  assert.equal(
    runs.reduce((n, r) => n + r.done, 0),
    ofFate("normal").length,
  );
  assert.ok(checkedWhileAlive > 0, "some check-backs arrived while their producer still held its transaction open");
}

const MATRIX: Array<{ dialect: Dialect; driver: CrashPlan["driver"]; total: number; combine?: boolean }> = [
  { dialect: "postgres", driver: "pg", total: 300 },
  { dialect: "mysql", driver: "mysql2", total: 300 },
  { dialect: "postgres", driver: "postgres.js", total: 60 },
  // The client's default, concurrent prepares and commits sent together, killed inside the local
  // transaction or not at all.
  { dialect: "postgres", driver: "pg", total: 100, combine: true },
];

for (const { dialect, driver, total, combine = false } of MATRIX) {
  describe(`crash matrix on ${DIALECT_NAME[dialect]} via ${driver}${combine ? ", calls combined" : ""}`, () => {
    let database: OpenDatabase;
    before(async () => {
      database = await openDatabase(dialect, "crash");
      await createOrders(database.db);
    });
    after(async () => {
      world.useHandler(null);
      await database.close();
    });
    const when = combine ? "inside the local transaction or not at all" : "before the local commit, after it, or not at all";
    test(`${total} transactions, producers killed ${when}: delivered = committed locally`, async () => {
      await crashMatrix(dialect, driver, database.db, database.url, total, combine);
    });
  });
}
