import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Browser, Page } from "playwright-core";
import { adminConsole, withoutChromium, type AdminConsole } from "./support/browser.ts";
import { api } from "./support/api.ts";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, startTestService, type RunningService } from "@tidings/testkit/service";

/**
 * The console's Reconciliation page in Debian's Chromium (headless, driven by playwright-core;
 * see console.test.ts, which installs it when missing) against the real service, with runs
 * reported through the API as the SDK's reconciler reports them. TIDINGS_SCREENSHOTS=1 saves
 * the pages to docs/screenshots/.
 */

describe("the console's Reconciliation page", { skip: withoutChromium() }, () => {
  let db: TestDatabase;
  let service: RunningService;
  let browser: Browser;
  let page: Page;
  let shot: AdminConsole["shot"];
  let repairedRun: number;

  before(async () => {
    db = await createTestDatabase("recon_console");
    service = await startTestService(db.url);
    const admin = api(service.url, ADMIN_KEY);
    const shop = api(service.url, (await admin.post("/v1/apps", { name: "account" })).body.apiKey);
    const window = { since: "2026-12-05T08:00:00Z", until: "2026-12-05T09:00:00Z", startedAt: "2026-12-05T09:00:01Z", finishedAt: "2026-12-05T09:00:04Z" };
    const repaired = await shop.post("/v1/reconciliations", {
      kind: "consumer",
      subscription: "account",
      reporter: "account-worker:311",
      ...window,
      counts: { checked: 1200, missing: 3, repaired: 2, failed: 1 },
      differences: [
        { id: "recharge/r-17", problem: "missing", action: "applied" },
        { id: "recharge/r-18", problem: "missing", action: "applied" },
        { id: "recharge/r-19", problem: "missing", action: "failed", error: "account 42 is closed" },
      ],
    });
    assert.equal(repaired.status, 201, JSON.stringify(repaired.body));
    repairedRun = repaired.body.id;
    const clean = await shop.post("/v1/reconciliations", {
      kind: "producer",
      topic: "recharge.paid",
      reporter: "recharge-outbox",
      ...window,
      counts: { checked: 800, missing: 0, repaired: 0, failed: 0 },
      differences: [],
    });
    assert.equal(clean.status, 201, JSON.stringify(clean.body));
    ({ browser, page, shot } = await adminConsole(service.url));
  });
  after(async () => {
    await browser?.close();
    await service?.close();
    await db?.drop();
  });

  test("lists the runs with what they found and repaired, and shows one run's differences", async () => {
    await page.goto(`${service.url}/console#/overview`);
    await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Reconciliation" }).click();
    await page.getByRole("heading", { name: "Reconciliation", level: 1 }).waitFor();
    const runs = page.locator("#reconciliation-runs");
    const repairedRow = runs.getByRole("row", { name: new RegExp(`#${repairedRun}\\b`) });
    await repairedRow.waitFor();
    assert.match((await repairedRow.textContent()) ?? "", /consumer.*account.*1,200.*3.*2.*1.*1 failed/);
    assert.match((await runs.getByRole("row", { name: /recharge\.paid/ }).textContent()) ?? "", /producer.*800.*no difference/);
    await shot("console-reconciliation");

    // Only the runs that found differences.
    await page.locator('select[name="differences"]').selectOption("true");
    await page.getByRole("button", { name: "Filter" }).click();
    await page.waitForURL(/differences=true/);
    await runs.getByRole("row", { name: new RegExp(`#${repairedRun}\\b`) }).waitFor();
    assert.equal(await runs.getByRole("row", { name: /recharge\.paid/ }).count(), 0);

    await runs.getByRole("link", { name: `#${repairedRun}` }).click();
    await page.getByRole("heading", { name: new RegExp(`Run #${repairedRun}`), level: 1 }).waitFor();
    const differences = page.locator("#reconciliation-differences");
    await differences.getByRole("row", { name: /recharge\/r-19/ }).waitFor();
    assert.match((await differences.getByRole("row", { name: /recharge\/r-17/ }).textContent()) ?? "", /missing from the consumer.*applied/);
    assert.match((await differences.getByRole("row", { name: /recharge\/r-19/ }).textContent()) ?? "", /repair failed.*account 42 is closed/);
    // A consumer's difference links to the message.
    assert.equal(await differences.getByRole("link", { name: "recharge/r-17" }).getAttribute("href"), "#/messages/recharge%2Fr-17");
    await shot("console-reconciliation-run");
  });
});
