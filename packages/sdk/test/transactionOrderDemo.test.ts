import assert from "node:assert/strict";
import { test } from "node:test";
import { TEST_PG_URL } from "@tidings/testkit/db";
import { runOrderScenario } from "../../../examples/order/scenario.ts";

// The order -> inventory demo (`npm run demo:order`), smaller: `tidings serve` and the
// order service run as child processes, the order service is SIGKILLed with orders stopped
// before and after their local commits, and the final check must hold.
test("the order → inventory demo: orders paid = stock deducted after SIGKILLed order services, the inventory told only of its tag", async () => {
  const result = await runOrderScenario({ postgresUrl: TEST_PG_URL, orders: 90, perProcess: 45, log: (line) => console.log(`# ${line}`) });
  const m = result.messages;
  console.log(
    `# ${result.orders} orders (seed ${result.seed}), order service SIGKILLed ${result.kills}x: ${result.crashes["before-local-commit"]} stopped before the local commit, ` +
      `${result.crashes["after-local-commit"]} after it; messages ${m.committed} committed, ${m.rolledBack} rolled back, ${m.checkedBack} by check-back; ` +
      `orders paid ${result.ordersPaid} = stock deducted ${result.inventory.deductions}; ${result.seconds.toFixed(1)} s`,
  );
  assert.equal(result.kills, 2);
  assert.equal(m.prepared, 0);
  assert.equal(result.ordersPaid, result.orders - result.crashes["before-local-commit"], "every order not stopped before its local commit is paid");
  assert.equal(m.committed, result.ordersPaid);
  assert.equal(result.inventory.deductions, result.ordersPaid);
  assert.equal(result.inventory.otherTags, 0, "the inventory subscribed to the ORDER-PAID tag: the topic's ORDER-CREATED messages never reached it");
  assert.deepEqual(result.wrongStock, []);
  assert.deepEqual(result.paidNotDeducted, []);
  assert.deepEqual(result.deductedNotPaid, []);
  // Every order whose service died mid-way was settled by check-back; on a loaded machine a live
  // order slower than its checkAfter may be checked back too (and answered from its barrier).
  const crashed = result.crashes["before-local-commit"] + result.crashes["after-local-commit"];
  assert.ok(m.checkedBack >= crashed && m.checkedBack <= result.orders, `${m.checkedBack} checked back for ${crashed} crashed orders`);
});
