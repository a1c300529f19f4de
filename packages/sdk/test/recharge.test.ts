import assert from "node:assert/strict";
import { test } from "node:test";
import { TEST_PG_URL } from "@tidings/testkit/db";
import { runRechargeScenario } from "../../../examples/recharge/scenario.ts";

// The recharge -> account demo with real processes: `tidings serve` and `tidings relay`
// run as child processes, the relay is killed with SIGKILL twice, the account receiver fails 30%
// of its calls (half before its commit, half after it) and is down for 3 s half way; the
// subscription gives up after 4 attempts and the account service's reconciliation catches up.
test("2,000 recharges through the outbox, a flaky receiver down for a while and two SIGKILLed relays end with exact balances, each applied once: reconciliation caught up", async () => {
  const result = await runRechargeScenario({
    postgresUrl: TEST_PG_URL,
    recharges: 2000,
    accounts: 50,
    failureRate: 0.3,
    relayKills: 2,
    downMs: 3000,
    log: (line) => console.log(`# ${line}`),
  });
  const r = result.receiver;
  const rec = result.reconciliation;
  console.log(
    `# recharges ${result.recharges} (seed ${result.seed}); relay SIGKILLs ${result.relayKills.length} with ${result.relayKills.map((k) => k.pendingAtKill).join(" and ")} rows pending; ` +
      `receiver calls ${r.calls}: ${r.failedBeforeCommit} failed before commit, ${r.failedAfterCommit} after, ${r.refusedWhileDown} refused while down; ` +
      `reconciliation ${rec.runs} runs applied ${rec.repaired}; ` +
      `inbox applied ${r.applied}, duplicates skipped ${r.duplicates}; credits ${result.credits.rows} rows / ${result.credits.distinctMessages} messages; ` +
      `balances exact ${result.balancesChecked - result.wrongBalances.length}/${result.balancesChecked}; ${result.seconds.toFixed(1)} s`,
  );

  assert.equal(result.relayKills.length, 2, "the relay was killed twice");
  assert.deepEqual(result.outbox, { pending: 0, sent: 2000, failed: 0 });
  assert.deepEqual(result.wrongBalances, [], "every balance equals the sum of its recharges");
  assert.equal(result.balancesChecked, 50);
  assert.deepEqual(result.credits, { rows: 2000, distinctMessages: 2000 }, "each recharge credited exactly once");
  assert.equal(result.inbox.applied, 2000);
  assert.equal(result.inbox.failed, 0);
  assert.ok(r.refusedWhileDown > 0, "the account service was down while recharges were sent");
  assert.ok(rec.repaired > 0, "reconciliation applied the recharges whose deliveries gave up");
  assert.equal(r.applied + rec.repaired, 2000, "each message applied once: by its delivery or by reconciliation");
  assert.equal(rec.failed, 0);
  assert.equal(rec.finalMissing, 0, "a last run finds nothing missing");
  assert.equal(rec.reportsSent, rec.runs, "every run's report reached the service");
  assert.ok(r.failedBeforeCommit > 0 && r.failedAfterCommit > 0, "both kinds of failure happened");
  // A failure after commit comes back as a duplicate, unless its next attempts found the service
  // down (dead: reconciliation then finds it applied already).
  assert.ok(r.duplicates > 0, "a failure after commit comes back as a duplicate");
  const failureShare = (r.failedBeforeCommit + r.failedAfterCommit) / r.calls;
  assert.ok(failureShare > 0.25 && failureShare < 0.35, `about 30% of calls failed (${(failureShare * 100).toFixed(1)}%)`);
});
