import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import type { Browser, Page } from "playwright-core";
import { adminConsole, signedInPage, withoutChromium, type AdminConsole } from "./support/browser.ts";
import { Webhook } from "standardwebhooks";
import { api } from "./support/api.ts";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { Receiver } from "@tidings/testkit/receiver";
import { ADMIN_KEY, startTestService, type RunningService } from "@tidings/testkit/service";
import { waitFor } from "@tidings/testkit/wait";

/**
 * The console's Channels page in Debian's Chromium (headless, driven by playwright-core; see
 * console.test.ts, which installs it when missing) against the real service, sending to a real
 * local receiver. TIDINGS_SCREENSHOTS=1 saves the pages to docs/screenshots/.
 */

describe("the console's Channels page", { skip: withoutChromium() }, () => {
  let db: TestDatabase;
  let service: RunningService;
  let receiver: Receiver;
  let browser: Browser;
  let page: Page;
  let shot: AdminConsole["shot"];
  let sql: pg.Pool;

  before(async () => {
    db = await createTestDatabase("channels_console");
    service = await startTestService(db.url);
    receiver = await new Receiver((r) => (r.path.startsWith("/down") ? 500 : 200)).start();
    sql = new pg.Pool({ connectionString: db.url, max: 2 });
    ({ browser, page, shot } = await adminConsole(service.url));
  });
  after(async () => {
    await browser?.close();
    await service?.close();
    await receiver?.stop();
    await sql?.end();
    await db?.drop();
  });

  test("creates a webhook channel (its secret shown once), sends a test and shows what happened, edits it", async () => {
    await page.goto(`${service.url}/console#/channels`);
    await page.getByRole("heading", { name: "Channels", level: 1 }).waitFor();
    await page.getByRole("navigation", { name: "Sections" }).getByRole("link", { name: "Channels" }).waitFor();
    const form = page.getByRole("region", { name: "New channel" });
    await form.getByRole("textbox", { name: /^Name/ }).fill("oncall-hook");
    await form.getByLabel("URL").fill(`${receiver.url}/oncall`);
    await form.getByLabel("Only conditions").fill("delivery_dead, circuit_open");
    await form.getByRole("button", { name: "Create channel" }).click();
    const secret = await page.getByLabel("Webhook signing secret").inputValue();
    assert.match(secret, /^whsec_/);
    await page.getByRole("button", { name: "I have copied it" }).click();
    const row = page.getByRole("row", { name: /oncall-hook/ });
    await row.waitFor();

    await row.getByRole("button", { name: "Send a test to oncall-hook" }).click();
    await page
      .locator("#test-result")
      .getByText(/Test of oncall-hook sent \(200\) in \d+ ms\./)
      .waitFor();
    const got = await waitFor("the test", () => receiver.received.find((r) => r.path === "/oncall"));
    new Webhook(secret).verify(got.body, got.headers as Record<string, string>);

    // A channel that answers 500: the test says so.
    const failing = await api(service.url, ADMIN_KEY).post("/v1/channels", {
      name: "team-slack",
      type: "slack",
      url: `${receiver.url}/down/services/T1/B1/zzSECRETzz`,
    });
    assert.equal(failing.status, 201);
    await page.reload();
    await page
      .getByRole("row", { name: /team-slack/ })
      .getByRole("button", { name: "Send a test to team-slack" })
      .click();
    await page
      .locator("#test-result")
      .getByText(/Test of team-slack failed \(500\) after \d+ ms: HTTP 500/)
      .waitFor();
    assert.equal(await page.getByText("zzSECRETzz").count(), 0, "the Slack token is not shown");
    await shot("channels");

    // Edit: the filter and the limit.
    await page.getByRole("link", { name: "Edit oncall-hook" }).click();
    await page.getByRole("heading", { name: "Channel oncall-hook", level: 1 }).waitFor();
    const settings = page.getByRole("region", { name: "Settings" });
    await settings.getByLabel("Notifications per minute").fill("20");
    await settings.getByRole("button", { name: "Save channel" }).click();
    await page.getByText("oncall-hook saved.").waitFor();
    const saved = await api(service.url, ADMIN_KEY).get("/v1/channels");
    const hook = saved.body.items.find((c: { name: string }) => c.name === "oncall-hook");
    assert.equal(hook.perMinute, 20);
    assert.deepEqual(hook.filter.conditions, ["delivery_dead", "circuit_open"]);
    assert.equal(hook.url, `${receiver.url}/oncall`);
    await page.getByRole("region", { name: "State" }).getByRole("button", { name: "Send a test" }).click();
    await page
      .locator("#test-result")
      .getByText(/Test of oncall-hook sent/)
      .waitFor();
    await shot("channel");

    // A phone: no sideways scrolling on either page, the navigation included.
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [hash, heading] of [
      ["#/channels", "Channels"],
      [`#/channels/${hook.id}`, "Channel oncall-hook"],
    ] as const) {
      await page.goto(`${service.url}/console${hash}`);
      await page.reload();
      await page.getByRole("heading", { name: heading, level: 1 }).waitFor();
      const [scroll, client] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
      assert.ok(scroll! <= client!, `${hash}: the page is ${scroll}px wide in a ${client}px viewport`);
    }
    await shot("channel-390");
  });

  test("roles: a viewer sees the channels and no control; an operator sends a test but neither creates, edits, stops nor deletes", async () => {
    const admin = api(service.url, ADMIN_KEY);
    const channel = await admin.post("/v1/channels", { name: "roles-hook", type: "webhook", url: `${receiver.url}/roles` });
    assert.equal(channel.status, 201);
    const keyOf = async (name: string, role: string): Promise<string> => {
      const created = await admin.post("/v1/operators", { name, role });
      assert.equal(created.status, 201, JSON.stringify(created.body));
      return created.body.key;
    };
    const viewer = await signedInPage(browser, service.url, await keyOf("vera", "viewer"));
    const operator = await signedInPage(browser, service.url, await keyOf("otto", "operator"));
    /** The buttons and links to act with that a person can see on the page (the navigation and paging aside). */
    const controls = async (p: Page) => {
      const buttons = (await p.locator("main").getByRole("button").allInnerTexts()).map((text) => text.trim());
      const edits = (
        await p
          .locator("main")
          .getByRole("link", { name: /^Edit / })
          .allInnerTexts()
      ).map((text) => text.trim());
      return [...buttons, ...edits];
    };
    const listed = async (p: Page) => {
      await p.goto(`${service.url}/console#/channels`);
      await p.getByRole("row", { name: /roles-hook/ }).waitFor();
    };
    const opened = async (p: Page) => {
      await p.goto(`${service.url}/console#/channels/${channel.body.id}`);
      await p.getByRole("heading", { name: "Channel roles-hook", level: 1 }).waitFor();
      await p.getByRole("region", { name: "Last notifications" }).waitFor();
    };

    await listed(viewer);
    assert.match(await viewer.getByRole("row", { name: /roles-hook/ }).innerText(), new RegExp(`roles-hook\\s+webhook\\s+${receiver.url}/roles`));
    assert.deepEqual(await controls(viewer), [], "a viewer has no control on the list");
    assert.equal(await viewer.getByRole("region", { name: "New channel" }).count(), 0, "a viewer has no New channel form");
    await opened(viewer);
    assert.deepEqual(await controls(viewer), [], "a viewer has no control on a channel's page");
    assert.equal(await viewer.getByRole("region", { name: "Settings" }).count(), 0, "a viewer has no Settings form");

    await listed(operator);
    assert.deepEqual([...new Set(await controls(operator))], ["Send a test"], "an operator may send tests, nothing else");
    const row = operator.getByRole("row", { name: /roles-hook/ });
    assert.equal(await row.getByRole("button", { name: "Send a test to roles-hook" }).count(), 1);
    assert.equal(await operator.getByRole("region", { name: "New channel" }).count(), 0, "an operator has no New channel form");
    await opened(operator);
    assert.deepEqual(await controls(operator), ["Send a test"], "an operator may send a test, nothing else");
    assert.equal(await operator.getByRole("region", { name: "Settings" }).count(), 0, "an operator has no Settings form");
    await operator.getByRole("button", { name: "Send a test" }).click();
    await operator
      .locator("#test-result")
      .getByText(/Test of roles-hook sent \(200\)/)
      .waitFor();
    await waitFor("the operator's test", () => receiver.received.find((r) => r.path === "/roles"));
    await Promise.all([viewer.context().close(), operator.context().close()]);
  });
});
