// npm run demo:recharge -- [--recharges N] [--failure-rate 0.3] [--relay-kills 2] [--down-ms 3000] [--seed N] [--keep]
//
// The recharge -> account demo of the outbox on the given PostgreSQL (DATABASE_URL, else
// TIDINGS_TEST_PG_URL, else postgres://postgres@127.0.0.1:5432/postgres): it creates three
// databases (the service's, the recharge service's, the account service's), runs `tidings serve`
// and `tidings relay` as real processes, takes the account service down for a while half way
// (its scheduled reconciliation applies what it missed), and prints what happens and the final
// balances check.
import { parseArgs } from "node:util";
import { runRechargeScenario } from "./scenario.ts";

const { values } = parseArgs({
  options: {
    recharges: { type: "string", default: "2000" },
    "failure-rate": { type: "string", default: "0.3" },
    "relay-kills": { type: "string", default: "2" },
    "down-ms": { type: "string", default: "3000" },
    seed: { type: "string" },
    keep: { type: "boolean", default: false },
  },
});

const postgresUrl = process.env.DATABASE_URL ?? process.env.TIDINGS_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const t0 = Date.now();
const log = (line: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s] ${line}`);

const result = await runRechargeScenario({
  postgresUrl,
  recharges: Number(values.recharges),
  failureRate: Number(values["failure-rate"]),
  relayKills: Number(values["relay-kills"]),
  downMs: Number(values["down-ms"]),
  seed: values.seed === undefined ? undefined : Number(values.seed),
  keep: values.keep,
  log,
});

const r = result.receiver;
const rec = result.reconciliation;
console.log(`
recharges recorded            ${result.recharges} (seed ${result.seed})
relay killed with SIGKILL     ${result.relayKills.length}x (${result.relayKills.map((k) => `${k.pendingAtKill} pending`).join(", ")})
outbox                        ${result.outbox.sent} sent, ${result.outbox.pending} pending, ${result.outbox.failed} failed
receiver calls                ${r.calls}: ${r.failedBeforeCommit} failed before commit, ${r.failedAfterCommit} failed after commit; ${r.refusedWhileDown} refused while down
reconciliation                ${rec.runs} runs, ${rec.repaired} missed recharges applied, ${rec.failed} failed; ${rec.reportsSent} reports sent; ${rec.finalMissing} missing at the end
inbox                         ${r.applied} applied, ${r.duplicates} duplicates skipped; ${result.inbox.applied} records applied, ${result.inbox.failed} failed
credit journal                ${result.credits.rows} rows for ${result.credits.distinctMessages} distinct messages
balances                      ${result.balancesChecked - result.wrongBalances.length}/${result.balancesChecked} accounts equal the sum of their recharges
`);
const ok =
  result.wrongBalances.length === 0 &&
  result.credits.rows === result.recharges &&
  result.credits.distinctMessages === result.recharges &&
  result.inbox.applied === result.recharges &&
  rec.finalMissing === 0;
for (const w of result.wrongBalances) console.log(`  WRONG ${w.account}: expected ${w.expected}, got ${w.actual}`);
console.log(
  ok ? `CHECK PASSED: every balance is exact and each of ${result.recharges} recharges was applied once (${result.seconds.toFixed(1)} s)` : "CHECK FAILED",
);
process.exit(ok ? 0 : 1);
