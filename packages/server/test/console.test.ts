import { after, before, describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { api } from "./support/api.ts";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { Receiver } from "@tidings/testkit/receiver";
import { ADMIN_KEY, startTestService, type RunningService } from "@tidings/testkit/service";
import { waitFor } from "@tidings/testkit/wait";

/**
 * The console, end to end: Debian's Chromium (headless, driven by playwright-core; no browser
 * is downloaded) against the real service on a test database, delivering to a real local
 * receiver. Each page is saved to docs/screenshots/.
 *
 * One browser serves the whole file; each test opens its own browser context (its own cookies,
 * signed in through the API unless it tests signing in) and finds its data where it needs it,
 * so that any test runs alone or in any order. Tests that only look share one operator's world,
 * which none of them changes; a test that changes something builds a world of its own.
 */
const CHROMIUM = process.env.TIDINGS_CHROMIUM ?? "/usr/bin/chromium";
const SCREENSHOTS = fileURLToPath(new URL("../../../docs/screenshots/", import.meta.url));
/** TIDINGS_SCREENSHOTS=1 writes the pages into docs/screenshots; otherwise the tests leave the tree alone. */
const TAKE_SCREENSHOTS = process.env.TIDINGS_SCREENSHOTS === "1";
// Generous: a deadline only matters when something is wrong, and the tests share the machine.
const UI_TIMEOUT_MS = 30_000;

/**
 * Debian's Chromium, installed from the distribution's packages when it is missing (as
 * scripts/with-services.sh does for the databases), so that `npm test` passes on a fresh
 * machine too. Never a browser download.
 */
function ensureChromium(): void {
  if (existsSync(CHROMIUM)) return;
  if (process.env.TIDINGS_CHROMIUM) throw new Error(`TIDINGS_CHROMIUM=${CHROMIUM}: no such file`);
  const sudo = process.getuid?.() === 0 ? [] : ["sudo", "-n"];
  const run = (args: string[]) => {
    try {
      execFileSync(args[0]!, args.slice(1), { stdio: "pipe", timeout: 600_000, env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
    } catch (error) {
      const e = error as { stderr?: Buffer; message: string };
      throw new Error(`Chromium is missing and \`${args.join(" ")}\` failed (install the chromium package): ${e.stderr?.toString() || e.message}`);
    }
  };
  if (process.env.TIDINGS_APT_UPDATED !== "1") run([...sudo, "apt-get", "update", "-q"]);
  run([...sudo, "apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]);
}

/** A service on a database of its own, delivering to a receiver whose paths in `down` answer 500. */
interface World {
  readonly service: RunningService;
  readonly receiver: Receiver;
  readonly sql: pg.Client;
  readonly admin: ReturnType<typeof api>;
  /** Receiver paths that answer 500 for now. */
  readonly down: Set<string>;
  /** The producer app's API. */
  readonly shop: ReturnType<typeof api>;
  /** Full ids of the shop's orders, by business key. */
  readonly orderIds: Map<string, string>;
  /** Message ids a path was sent and answered 200. */
  deliveredTo(path: string): Set<string>;
  close(): Promise<void>;
}

async function startWorld(label: string, down: string[]): Promise<World> {
  const database: TestDatabase = await createTestDatabase(label);
  const downPaths = new Set(down);
  const receiver = await new Receiver((r) => (downPaths.has(r.path) ? 500 : 200)).start();
  // One unanswered check-back and a prepared message is in doubt.
  const service = await startTestService(database.url, { TIDINGS_CHECK_LIMIT: "1", TIDINGS_CHECK_INTERVAL: "100ms" });
  const sql = new pg.Client({ connectionString: database.url });
  await sql.connect();
  const admin = api(service.url, ADMIN_KEY);
  // What an operator finds configured: a producer app whose check URL answers nothing a
  // check-back understands, and three subscriptions (billing gives up after 3 attempts, audit at once).
  const shop = await admin.post("/v1/apps", { name: "shop", checkUrl: `${receiver.url}/check` });
  assert.equal(shop.status, 201);
  const subs = [
    {
      name: "billing",
      topic: "orders.paid",
      endpoint: { type: "http", url: `${receiver.url}/billing` },
      retry: { schedule: ["50ms", "50ms"], maxAttempts: 3 },
    },
    { name: "shipping", topic: "orders.paid", endpoint: { type: "http", url: `${receiver.url}/shipping` } },
    // Its 30 dead letters in a row would open its circuit (and raise an alert); this world is about the dead letters.
    { name: "audit", topic: "audit.events", endpoint: { type: "http", url: `${receiver.url}/audit` }, retry: { schedule: [], maxAttempts: 1 }, circuit: null },
  ];
  for (const s of subs) assert.equal((await admin.post("/v1/subscriptions", s)).status, 201);
  return {
    service,
    receiver,
    sql,
    admin,
    shop: api(service.url, shop.body.apiKey),
    down: downPaths,
    orderIds: new Map(),
    deliveredTo: (path) => new Set(receiver.received.filter((r) => r.path === path && r.status === 200).map((r) => r.id)),
    async close() {
      await sql.end();
      await service.close();
      await receiver.stop();
      await database.drop();
    },
  };
}

/** The shop's orders `order-<n>` (billing and shipping get each), by their full ids. */
async function sendOrders(world: World, numbers: number[]): Promise<void> {
  for (const n of numbers) {
    const sent = await world.shop.post("/v1/messages", {
      topic: "orders.paid",
      tag: "card",
      key: `order-${n}`,
      payload: { orderId: n, amount: { value: 3200 + n, currency: "EUR" }, items: [{ sku: "TEA-01", qty: 2 }] },
      headers: { "x-trace-id": `trace-${n - 1000}` },
    });
    assert.equal(sent.status, 201);
    world.orderIds.set(`order-${n}`, `shop/${sent.body.id}`); // the full id: how the admin and receivers know it
  }
}

/** A prepared message of the shop's whose one check-back goes unanswered: in doubt. Its full id. */
async function sendDoubtful(world: World): Promise<string> {
  const sent = await world.shop.post("/v1/messages", {
    topic: "orders.paid",
    key: "order-2000",
    payload: { orderId: 2000 },
    prepare: true,
    checkAfter: "100ms",
  });
  assert.equal(sent.status, 201);
  return `shop/${sent.body.id}`;
}

/** `count` audit events, each dead at its first attempt while /audit is down. */
async function sendAuditEvents(world: World, count: number): Promise<void> {
  const audit = Array.from({ length: count }, (_, i) => ({ topic: "audit.events", key: `user-${i}`, payload: { event: "login", user: i } }));
  assert.equal((await world.admin.post("/v1/messages/batch", { messages: audit })).status, 201);
}

async function deadCounts(world: World): Promise<Record<string, number>> {
  const { rows } = await world.sql.query(
    `select s.name, count(*)::int as n from deliveries d join subscriptions s on s.id = d.subscription_id where d.state = 'dead' group by s.name`,
  );
  return Object.fromEntries(rows.map((r) => [r.name, r.n]));
}

const inDoubt = async (world: World, id: string) =>
  (await world.sql.query("select 1 from messages where id = $1 and in_doubt_at is not null", [id])).rowCount === 1;

/**
 * The world the looking tests share, made on first use: orders whose billing endpoint is down
 * (each dies after 3 attempts) and whose shipping gets them, 30 audit events that died at once,
 * and a prepared message in doubt. No test changes it.
 */
let operators: Promise<World & { inDoubtId: string }> | null = null;
function operatorsWorld(): Promise<World & { inDoubtId: string }> {
  operators ??= (async () => {
    const world = await startWorld("console_ui", ["/billing", "/audit"]);
    await sendOrders(world, [1000, 1001, 1002, 1003, 1004]);
    const inDoubtId = await sendDoubtful(world);
    await sendAuditEvents(world, 30);
    await waitFor(
      "5 dead billing and 30 dead audit deliveries, 5 shipped, 1 in doubt",
      async () => {
        const dead = await deadCounts(world);
        return dead.billing === 5 && dead.audit === 30 && world.deliveredTo("/shipping").size === 5 && (await inDoubt(world, inDoubtId));
      },
      UI_TIMEOUT_MS,
    );
    return Object.assign(world, { inDoubtId });
  })();
  return operators;
}

const endings = new WeakMap<TestContext, Array<() => unknown>>();
/**
 * Runs `fn` when test `t` ends, after whatever was set up later has ended (last in, first out:
 * a page closes before the service it shows); the first failure among them fails the test.
 */
function atEnd(t: TestContext, fn: () => unknown): void {
  let stack = endings.get(t);
  if (!stack) {
    const fns: Array<() => unknown> = [];
    stack = fns;
    endings.set(t, fns);
    t.after(async () => {
      let failure: unknown = null;
      while (fns.length > 0) {
        try {
          await fns.pop()!();
        } catch (error) {
          failure ??= error;
        }
      }
      if (failure) throw failure;
    });
  }
  stack.push(fn);
}

/** A world of the test's own, closed when the test ends. */
async function ownWorld(t: TestContext, label: string, down: string[] = []): Promise<World> {
  const world = await startWorld(label, down);
  atEnd(t, () => world.close());
  return world;
}

let launched: Promise<Browser> | null = null;
function browser(): Promise<Browser> {
  launched ??= (async () => {
    ensureChromium();
    mkdirSync(SCREENSHOTS, { recursive: true });
    return chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
  })();
  return launched;
}

// Every test needs the browser: start it while the first test builds its world.
before(() => void browser().catch(() => undefined));
after(async () => {
  await Promise.all([launched?.then((b) => b.close()).catch(() => undefined), operators?.then((w) => w.close()).catch(() => undefined)]);
});

interface Console {
  readonly page: Page;
  readonly context: BrowserContext;
  /** Opens `/console<hash>`. */
  go(hash: string): Promise<void>;
  /** Saves the page to docs/screenshots/<name>.png (with TIDINGS_SCREENSHOTS=1). */
  shot(name: string): Promise<void>;
  /** The sections navigation. */
  nav(): ReturnType<Page["getByRole"]>;
  assertNoSidewaysScroll(what: string): Promise<void>;
}

/**
 * A browser context of the test's own on `world`'s console, signed in unless told otherwise.
 * When the test ends it checks that the pages made no request outside the service (nor to
 * `alsoAllowed`) and raised no script error.
 */
async function openConsole(
  t: TestContext,
  world: World,
  options: { signedIn?: boolean; key?: string; viewport?: { width: number; height: number }; alsoAllowed?: string[] } = {},
): Promise<Console> {
  const context = await (await browser()).newContext({ viewport: options.viewport ?? { width: 1280, height: 800 } });
  context.setDefaultTimeout(UI_TIMEOUT_MS);
  const requested: string[] = [];
  const pageErrors: string[] = [];
  context.on("request", (request) => requested.push(request.url()));
  atEnd(t, async () => {
    await context.close();
    const outside = requested.filter((url) => !url.startsWith(world.service.url) && !url.startsWith("data:") && !(options.alsoAllowed ?? []).includes(url));
    assert.deepEqual(outside, [], "requests outside the service");
    assert.deepEqual(pageErrors, [], "script errors");
  });
  if (options.signedIn ?? true) {
    const signIn = await context.request.post(`${world.service.url}/v1/session`, { data: { key: options.key ?? ADMIN_KEY } });
    assert.equal(signIn.status(), 201);
  }
  const page = await context.newPage();
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  return {
    page,
    context,
    go: async (hash) => void (await page.goto(`${world.service.url}/console${hash}`)),
    shot: async (name) => {
      if (TAKE_SCREENSHOTS) await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
    },
    nav: () => page.getByRole("navigation", { name: "Sections" }),
    async assertNoSidewaysScroll(what) {
      const [scroll, client] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
      assert.ok(scroll! <= client!, `${what}: the page is ${scroll}px wide in a ${client}px viewport`);
    },
  };
}

// The tests are independent (each its own browser context, and a world of its own unless it only
// looks): they run a few at a time, as an operator's tabs would.
describe("console in a real browser", { concurrency: 4 }, () => {
  test("refuses a wrong key, then signs in with the admin key from the keyboard", async (t) => {
    const world = await operatorsWorld();
    const { page, context, go, shot } = await openConsole(t, world, { signedIn: false });
    await go("");
    const key = page.getByLabel("Key", { exact: true });
    await key.waitFor();
    assert.ok(await key.evaluate((el) => el === document.activeElement), "the key field has the focus");
    assert.equal(await page.getByRole("navigation", { name: "Sections" }).isVisible(), false, "no sections before signing in");
    assert.equal(await page.getByRole("button", { name: "Sign out" }).isVisible(), false);
    await shot("sign-in");
    await page.keyboard.type("not-the-admin-key");
    await page.keyboard.press("Enter");
    await page.getByText("That is neither the admin key nor an operator's key.").waitFor();
    await page.keyboard.type(ADMIN_KEY); // the field's text is selected after a failure: typing replaces it
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Overview", level: 1 }).waitFor();
    const cookies = await context.cookies(world.service.url);
    const session = cookies.find((c) => c.name === "tidings_session");
    assert.ok(session, "a session cookie is set");
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, "Strict");
    assert.equal(await page.evaluate(() => document.cookie), "", "scripts cannot read the session cookie");
  });

  test("overview: counts by state, the oldest pending delivery, throughput over the last hour", async (t) => {
    const { page, go, shot, assertNoSidewaysScroll } = await openConsole(t, await operatorsWorld());
    await go("#/overview");
    const messagesPanel = page.getByRole("region", { name: "Messages" });
    await messagesPanel.getByText("Committed").waitFor();
    const messageCounts = await messagesPanel.locator("dl.stats > div").allInnerTexts();
    assert.deepEqual(
      messageCounts.map((t) => t.replace(/\s+/g, " ")),
      ["Committed 35", "Prepared 1", "In doubt 1", "Rolled back 0"],
    );
    // Grouped: one alert for each subscription with dead deliveries (30 and 5) and one for the app's message in doubt.
    assert.equal(await page.locator("#open-alerts").innerText(), "3", "2 subscriptions' dead deliveries and 1 app's message in doubt");
    const latest = page.getByRole("region", { name: "Latest alerts" }).locator("tbody tr");
    assert.deepEqual((await latest.allInnerTexts()).map((row) => row.split("\t").slice(0, 3).join(" | ")).sort(), [
      "open | delivery dead subscription audit | 30",
      "open | delivery dead subscription billing | 5",
      "open | message in doubt app shop | 1",
    ]);
    const deliveries = page.getByRole("region", { name: "Deliveries", exact: true });
    assert.equal(await deliveries.locator("div", { hasText: "Dead" }).locator("dd").innerText(), "35");
    const bySub = page.getByRole("region", { name: "Deliveries by subscription" });
    assert.deepEqual(await bySub.locator("tbody tr").allInnerTexts(), ["audit\tactive\t0\t0\t30", "billing\tactive\t0\t0\t5", "shipping\tactive\t0\t5\t0"]);
    assert.equal(await page.locator("#oldest-age").innerText(), "none");
    const chart = page.getByRole("img", { name: /per minute over the last hour/ });
    assert.equal(await chart.locator("path").count(), 4);
    await page.getByText("Accepted: 36").waitFor();
    await page.getByText("Dead: 35").waitFor();
    await assertNoSidewaysScroll("overview");
    await shot("overview");
  });

  test("filters messages by tag and by creation time", async (t) => {
    const { page, go } = await openConsole(t, await operatorsWorld());
    await go("#/messages");
    await page.getByRole("heading", { name: "Messages", level: 1 }).waitFor();
    const rows = page.locator("#results tbody tr");
    await page.getByLabel("Tag").fill("card");
    await page.getByLabel("Business key").fill("order-1003");
    await page.getByRole("button", { name: "Search" }).click();
    await waitFor("the order with tag card", async () => (await rows.count()) === 1 && /order-1003/.test(await rows.first().innerText()), UI_TIMEOUT_MS);
    // A window that ended long before any message was sent finds none; one that began then finds it.
    await page.getByLabel("Created before").fill("2001-01-01T00:00:00");
    await page.getByRole("button", { name: "Search" }).click();
    await page.getByText("No message matches.").waitFor();
    await page.getByLabel("Created before").fill("");
    await page.getByLabel("Created after").fill("2001-01-01T00:00:00");
    await page.getByRole("button", { name: "Search" }).click();
    await waitFor("found again after the window moved", async () => (await rows.count()) === 1, UI_TIMEOUT_MS);
    await page.getByLabel("Tag").fill("no-such-tag");
    await page.getByRole("button", { name: "Search" }).click();
    await page.getByText("No message matches.").waitFor();
  });

  test("finds a message by its business key and opens its timeline", async (t) => {
    const world = await operatorsWorld();
    const { page, go, shot, assertNoSidewaysScroll } = await openConsole(t, world);
    // From the keyboard: Tab from the top of the page through the header to the Messages link.
    await go("#/overview");
    await page.getByRole("heading", { name: "Overview", level: 1 }).waitFor();
    for (let i = 0; i < 10; i++) {
      await page.keyboard.press("Tab");
      if ((await page.evaluate(() => document.activeElement?.textContent)) === "Messages") break;
    }
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Messages", level: 1 }).waitFor();
    await page.getByLabel("Business key").fill("order-1003");
    await page.getByLabel("Business key").press("Enter");
    await page.waitForURL(/#\/messages\?key=order-1003$/);
    const rows = page.locator("#results tbody tr");
    await waitFor("one result", async () => (await rows.count()) === 1, UI_TIMEOUT_MS);
    const id = world.orderIds.get("order-1003")!;
    assert.match(await rows.first().innerText(), new RegExp(`${id}\\torders.paid\\tcard\\torder-1003\\tcommitted`));
    await assertNoSidewaysScroll("messages");
    await shot("messages");

    await rows.first().getByRole("link", { name: id }).click();
    await page.getByRole("heading", { name: `Message ${id}` }).waitFor();
    const timeline = page.getByRole("list", { name: "Delivery attempts, oldest first" });
    const billing = timeline.locator("li", { hasText: "billing" });
    await waitFor(
      "3 billing attempts and 1 shipping attempt",
      async () => (await billing.count()) === 3 && (await timeline.locator("li", { hasText: "shipping" }).count()) === 1,
      UI_TIMEOUT_MS,
    );
    for (let n = 1; n <= 3; n++) {
      const item = billing.nth(n - 1);
      const text = await item.innerText();
      assert.match(text, new RegExp(`attempt ${n}`));
      assert.match(text, /HTTP 500/);
      assert.match(text, /\d+ ms/);
      assert.match(text, n < 3 ? /next attempt/ : /dead/);
    }
    assert.match(await timeline.locator("li", { hasText: "shipping" }).innerText(), /attempt 1[\s\S]*delivered[\s\S]*HTTP 200/);
    const payload = await page.getByRole("region", { name: "Payload" }).locator("pre").innerText();
    assert.deepEqual(JSON.parse(payload), { orderId: 1003, amount: { value: 4203, currency: "EUR" }, items: [{ sku: "TEA-01", qty: 2 }] });
    assert.match(payload, /\n {2}"amount": \{\n {4}"value": 4203/, "pretty-printed");
    await page.getByRole("region", { name: "Headers" }).getByText("trace-3").waitFor();
    await assertNoSidewaysScroll("message");
    await shot("message");
  });

  test("re-sends a dead delivery and sees it delivered", async (t) => {
    const world = await ownWorld(t, "console_resend", ["/billing"]);
    await sendOrders(world, [1003]);
    const id = world.orderIds.get("order-1003")!;
    await waitFor(
      "the billing delivery dead, shipping delivered",
      async () => (await deadCounts(world)).billing === 1 && world.deliveredTo("/shipping").has(id),
      UI_TIMEOUT_MS,
    );
    const { page, go } = await openConsole(t, world);
    await go(`#/messages/${encodeURIComponent(id)}`);
    await page.getByRole("heading", { name: `Message ${id}` }).waitFor();
    world.down.delete("/billing");
    const row = page.getByRole("region", { name: "Deliveries" }).locator("tbody tr", { hasText: "billing" });
    await row.locator(".badge.dead").waitFor();
    await page.getByRole("button", { name: "Re-send to billing" }).click();
    await row.locator(".badge.delivered").waitFor();
    const latest = page.getByRole("list", { name: "Delivery attempts, oldest first" }).locator("li", { hasText: "billing" }).nth(3);
    assert.match(await latest.innerText(), /attempt 4[\s\S]*delivered[\s\S]*HTTP 200/);
    assert.ok(world.deliveredTo("/billing").has(id), "the receiver got it");
    assert.equal(world.deliveredTo("/billing").size, 1, "and only that one");
  });

  test("shows what each delivery's consumer reported, and a message every consumer applied as completed", async (t) => {
    const world = await ownWorld(t, "console_outcomes");
    await sendOrders(world, [1005]);
    const id = world.orderIds.get("order-1005")!;
    await waitFor("billing and shipping delivered", () => world.deliveredTo("/billing").has(id) && world.deliveredTo("/shipping").has(id), UI_TIMEOUT_MS);
    const report = (subscription: string, outcome: string, error?: string) =>
      world.admin.post("/v1/outcomes", { outcomes: [{ subscription, messageId: id, outcome, ...(error ? { error } : {}) }] });
    assert.equal((await report("billing", "applied")).status, 200);
    assert.equal((await report("shipping", "failed", "the stock service is down")).status, 200);
    const { page, go } = await openConsole(t, world);
    await go(`#/messages/${encodeURIComponent(id)}`);
    const deliveries = page.getByRole("region", { name: "Deliveries" });
    await deliveries.locator("tbody tr", { hasText: "billing" }).locator(".badge.applied").waitFor();
    const shipping = deliveries.locator("tbody tr", { hasText: "shipping" });
    await shipping.locator(".badge.failed").waitFor();
    assert.match(await shipping.innerText(), /the stock service is down/);
    assert.equal(await page.locator("h1 + span .badge.completed").count(), 0, "not completed while a consumer failed");

    assert.deepEqual((await report("shipping", "applied")).body.completed, [id]);
    await go("#/messages");
    await go(`#/messages/${encodeURIComponent(id)}`);
    await page.locator(".badge.completed").first().waitFor();
    await page.getByText("Completed (every consumer applied it)").waitFor();
    await shipping.locator(".badge.applied").waitFor();
  });

  test("roles: a viewer sees no action buttons; an operator re-sends a dead delivery but cannot change a subscription", async (t) => {
    const world = await ownWorld(t, "console_roles", ["/billing"]);
    await sendOrders(world, [1003]);
    const id = world.orderIds.get("order-1003")!;
    await waitFor("the billing delivery dead", async () => (await deadCounts(world)).billing === 1, UI_TIMEOUT_MS);
    const viewerKey = (await world.admin.post("/v1/operators", { name: "vera", role: "viewer" })).body.key;
    const operatorKey = (await world.admin.post("/v1/operators", { name: "otto", role: "operator" })).body.key;
    /** The buttons a person can see and press on the page. */
    const buttons = async (page: Page) => (await page.getByRole("button").allInnerTexts()).map((text) => text.trim());

    const viewer = await openConsole(t, world, { key: viewerKey });
    await viewer.go(`#/messages/${encodeURIComponent(id)}`);
    await viewer.page.getByRole("region", { name: "Deliveries" }).locator("tbody tr", { hasText: "billing" }).locator(".badge.dead").waitFor();
    assert.equal(await viewer.page.locator("#who").innerText(), "vera · viewer", "the header says who is signed in");
    assert.deepEqual(await buttons(viewer.page), ["Sign out"], "a viewer has no action on a message");
    for (const [hash, heading] of [
      ["#/subscriptions/billing", "Subscription billing"],
      ["#/subscriptions", "Subscriptions"],
      ["#/dead-letters", "Dead letters"],
      ["#/apps", "Apps"],
    ] as const) {
      await viewer.go(hash);
      await viewer.page.getByRole("heading", { name: heading, level: 1 }).waitFor();
      await viewer.page.locator("main table, main .panel").first().waitFor();
      const seen = (await buttons(viewer.page)).filter((b) => b !== "Sign out" && b !== "Show");
      assert.deepEqual(seen, [], `a viewer sees no action on ${hash}`);
    }

    const operator = await openConsole(t, world, { key: operatorKey });
    await operator.go(`#/messages/${encodeURIComponent(id)}`);
    const row = operator.page.getByRole("region", { name: "Deliveries" }).locator("tbody tr", { hasText: "billing" });
    await row.locator(".badge.dead").waitFor();
    world.down.delete("/billing");
    await operator.page.getByRole("button", { name: "Re-send to billing" }).click();
    await row.locator(".badge.delivered").waitFor();
    assert.ok(world.deliveredTo("/billing").has(id), "the receiver got it");

    await operator.go("#/subscriptions/billing");
    await operator.page.getByRole("button", { name: "Re-send all dead…" }).waitFor();
    const seen = await buttons(operator.page);
    for (const hidden of ["Save changes", "Pause", "Rotate secret…", "Delete subscription…"])
      assert.ok(!seen.includes(hidden), `an operator does not see ${hidden}`);
    // The API refuses it either way.
    const csrf = (await (await operator.context.request.get(`${world.service.url}/v1/session`)).json()).csrfToken;
    const patched = await operator.context.request.patch(`${world.service.url}/v1/subscriptions/billing`, {
      headers: { "x-csrf-token": csrf },
      data: { enabled: false },
    });
    assert.equal(patched.status(), 403);
    assert.match((await patched.json()).error.message, /the admin role/);

    // The viewer reads in the audit log who re-sent it.
    await viewer.go("#/audit");
    await viewer.page.getByRole("heading", { name: "Audit", level: 1 }).waitFor();
    const entry = viewer.page.getByRole("region", { name: "Audit entries" }).locator("tbody tr", { hasText: "message.resend" });
    assert.match(await entry.innerText(), new RegExp(`otto[\\s\\S]*message\\.resend[\\s\\S]*message/${id}[\\s\\S]*result: \\{"resent":1\\}`));
  });

  test("dead letters: lists dead deliveries for manual handling", async (t) => {
    const { page, go, shot, assertNoSidewaysScroll } = await openConsole(t, await operatorsWorld());
    await go("#/dead-letters");
    await page.getByRole("heading", { name: "Dead letters and alerts" }).waitFor();
    const bySub = page.getByRole("region", { name: "Dead deliveries by subscription" });
    await bySub.locator("tbody tr").first().waitFor();
    assert.deepEqual(await bySub.locator("tbody tr td:nth-child(-n+2)").allInnerTexts(), ["audit", "30", "billing", "5"]);
    const list = page.getByRole("region", { name: "Dead deliveries, newest first" });
    await list.getByText("gave up after 3 attempts").first().waitFor();
    assert.equal(await list.locator("tbody tr").count(), 35);
    await assertNoSidewaysScroll("dead letters");
    await shot("dead-letters");
  });

  test("alerts: acknowledges one and resolves another with a note, and commits a message in doubt by hand", async (t) => {
    const world = await ownWorld(t, "console_alerts", ["/billing"]);
    await sendOrders(world, [1000]);
    const inDoubtId = await sendDoubtful(world);
    await waitFor(
      "a dead delivery and a message in doubt",
      async () => (await deadCounts(world)).billing === 1 && (await inDoubt(world, inDoubtId)),
      UI_TIMEOUT_MS,
    );
    world.down.delete("/billing");
    const { page, go } = await openConsole(t, world);
    await go("#/dead-letters");
    await page.getByRole("heading", { name: "Dead letters and alerts" }).waitFor();
    const alerts = page.getByRole("region", { name: "Open alerts" }).locator("tbody tr");
    // The dead billing delivery and the message in doubt.
    await waitFor("2 open alerts", async () => (await alerts.count()) === 2, UI_TIMEOUT_MS);
    const doubtRow = alerts.filter({ hasText: inDoubtId });
    assert.match(await doubtRow.innerText(), /in doubt/);
    // Acknowledged with a note: it stays, saying who and why.
    const doubtId = (await world.admin.get("/v1/alerts?condition=message_in_doubt")).body.items[0].id;
    await doubtRow.getByRole("textbox", { name: `Note for alert ${doubtId}` }).fill("asking the shop team");
    await doubtRow.getByRole("button", { name: `Acknowledge alert ${doubtId}` }).click();
    await waitFor(
      "acknowledged",
      async () => /acknowledged by admin: asking the shop team/.test(await alerts.filter({ hasText: inDoubtId }).innerText()),
      UI_TIMEOUT_MS,
    );
    // Resolved with a note: gone from the open alerts.
    const dead = alerts.filter({ hasText: "dead deliveries" }).first();
    const deadId = (await world.admin.get("/v1/alerts?condition=delivery_dead")).body.items[0].id;
    await dead.getByRole("textbox", { name: `Note for alert ${deadId}` }).fill("billing was redeployed");
    await dead.getByRole("button", { name: `Resolve alert ${deadId}` }).click();
    await waitFor("the alert row gone", async () => (await alerts.count()) === 1, UI_TIMEOUT_MS);
    const resolved = (await world.admin.get(`/v1/alerts/${deadId}`)).body;
    assert.deepEqual([resolved.state, resolved.resolvedBy, resolved.resolveNote], ["resolved", "admin", "billing was redeployed"]);
    assert.equal((await world.admin.get("/v1/alerts")).body.items.length, 1);

    await page.getByRole("region", { name: "Messages in doubt" }).getByRole("link", { name: inDoubtId }).click();
    await page.getByRole("heading", { name: `Message ${inDoubtId}` }).waitFor();
    assert.equal(await page.getByRole("region", { name: "Check-backs" }).locator("tbody tr").count(), 1);
    await page.getByRole("button", { name: "Commit…" }).click();
    await page.getByRole("dialog", { name: "Commit this message?" }).getByRole("button", { name: "Commit" }).click();
    const deliveries = page.getByRole("region", { name: "Deliveries" });
    await deliveries.locator("tbody tr", { hasText: "billing" }).locator(".badge.delivered").waitFor();
    await deliveries.locator("tbody tr", { hasText: "shipping" }).locator(".badge.delivered").waitFor();
    assert.ok(world.deliveredTo("/billing").has(inDoubtId));
  });

  test("re-sends all dead deliveries of a subscription in batches while the progress bar reaches 100%", async (t) => {
    const world = await ownWorld(t, "console_resend_all", ["/audit"]);
    await sendAuditEvents(world, 30);
    await waitFor("30 dead audit deliveries", async () => (await deadCounts(world)).audit === 30, UI_TIMEOUT_MS);
    const { page, go, nav, shot, assertNoSidewaysScroll } = await openConsole(t, world);
    await go("#/overview");
    await nav().getByRole("link", { name: "Dead letters" }).click();
    await page
      .getByRole("region", { name: "Dead deliveries by subscription" })
      .locator("tr", { hasText: "audit" })
      .getByRole("link", { name: /Re-send all/ })
      .click();
    await page.getByRole("heading", { name: "Subscription audit" }).waitFor();
    const batch = page.getByLabel("Batch size");
    assert.ok(await batch.evaluate((el) => el === document.activeElement), "the link lands on the batch size");
    world.down.delete("/audit");
    await batch.fill("4");
    // Record every value the bar shows, as the operator would see it move.
    await page.evaluate(() => {
      const seen: number[] = [];
      (window as unknown as { seen: number[] }).seen = seen;
      new MutationObserver(() => {
        const bar = document.querySelector<HTMLProgressElement>("#resend-bar");
        if (bar) seen.push(Math.round((bar.value / bar.max) * 100));
      }).observe(document.body, { subtree: true, childList: true, attributes: true });
    });
    await page.getByRole("button", { name: "Re-send all dead…" }).click();
    const dialog = page.getByRole("dialog", { name: "Re-send all dead deliveries?" });
    await dialog.getByText(/\(30 now\).*4 at a time/).waitFor();
    await dialog.getByRole("button", { name: "Re-send all" }).click();
    await page.waitForFunction(() => {
      const bar = document.querySelector<HTMLProgressElement>("#resend-bar");
      return bar !== null && bar.max === 30 && bar.value === 30;
    });
    await page.locator("#resend-status", { hasText: "30 of 30 re-sent (100%) in 8 batches of up to 4" }).waitFor();
    await page.locator("#resend-status .badge.succeeded").waitFor();
    const seen = await page.evaluate(() => (window as unknown as { seen: number[] }).seen);
    assert.equal(seen.at(-1), 100);
    assert.deepEqual(
      seen,
      [...seen].sort((a, b) => a - b),
      "the bar only moves forward",
    );
    await waitFor("all 30 audit events delivered", () => world.deliveredTo("/audit").size === 30, UI_TIMEOUT_MS);
    const counts = page.getByRole("region", { name: "Deliveries", exact: true });
    await counts.locator("dl.stats > div", { hasText: "dead" }).locator("dd", { hasText: /^0$/ }).waitFor();
    assert.match(await page.getByRole("region", { name: "Recent re-send jobs" }).locator("tbody tr").first().innerText(), /succeeded\t30 \/ 30\t8/);
    await assertNoSidewaysScroll("subscription");
    await shot("subscription");
  });

  test("retries a subscription's waiting deliveries now, and recovers a window of dead ones while a progress bar follows the job", async (t) => {
    const world = await ownWorld(t, "console_recover", ["/shipping", "/audit"]);
    await sendOrders(world, [3000, 3001, 3002]);
    await sendAuditEvents(world, 6);
    // Shipping's default schedule waits a minute after the first failure; audit's dies at once.
    const waiting = async () =>
      (
        await world.sql.query(
          "select count(*)::int as n from deliveries d join subscriptions s on s.id = d.subscription_id where s.name = 'shipping' and d.state = 'pending' and d.attempts = 1",
        )
      ).rows[0].n;
    await waitFor(
      "3 shipping retries waiting, 6 dead audit deliveries",
      async () => (await waiting()) === 3 && (await deadCounts(world)).audit === 6,
      UI_TIMEOUT_MS,
    );
    const { page, go } = await openConsole(t, world);

    world.down.delete("/shipping");
    await go("#/subscriptions/shipping");
    const panel = page.getByRole("region", { name: "Retry and recover" });
    await panel.getByRole("button", { name: "Retry pending now" }).click();
    await page.locator("#notice", { hasText: "3 pending deliveries of shipping due now." }).waitFor();
    await waitFor("the 3 orders shipped", () => world.deliveredTo("/shipping").size === 3, UI_TIMEOUT_MS);

    world.down.delete("/audit");
    await go("#/subscriptions/audit");
    await page.getByRole("heading", { name: "Subscription audit" }).waitFor();
    const since = await page.evaluate(() => {
      const d = new Date(Date.now() - 3_600_000);
      return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 19);
    });
    const recovery = page.getByRole("region", { name: "Retry and recover" });
    await recovery.getByLabel("Since").fill(since);
    await recovery.getByRole("button", { name: "Recover…" }).click();
    const dialog = page.getByRole("dialog", { name: "Recover dead and failed deliveries?" });
    await dialog.getByText(/of audit's messages created since/).waitFor();
    await dialog.getByRole("button", { name: "Recover" }).click();
    await page.waitForFunction(() => {
      const bar = document.querySelector<HTMLProgressElement>("#recover-bar");
      return bar !== null && bar.max === 6 && bar.value === 6;
    });
    await page.locator("#recover-status", { hasText: "6 of 6 re-sent (100%)" }).locator(".badge.succeeded").waitFor();
    await waitFor("all 6 audit events delivered", () => world.deliveredTo("/audit").size === 6, UI_TIMEOUT_MS);
    assert.match(await page.getByRole("region", { name: "Recent re-send jobs" }).locator("tbody tr").first().innerText(), /succeeded\t6 \/ 6\t1\trecover/);
    // Asked again for the same window: the same job, nothing re-sent twice.
    await page.evaluate(() => document.getElementById("notice")!.replaceChildren());
    await recovery.getByRole("button", { name: "Recover…" }).click();
    await dialog.getByRole("button", { name: "Recover" }).click();
    await page.locator("#notice", { hasText: "Recovered 6 deliveries of audit." }).waitFor();
    assert.equal((await world.admin.get("/v1/jobs?subscription=audit")).body.items.length, 1);
    assert.equal(world.receiver.received.filter((r) => r.path === "/audit").length, 12, "each sent twice: once failed, once recovered");
  });

  test("pauses and resumes a subscription", async (t) => {
    const world = await ownWorld(t, "console_pause");
    const { page, go, nav } = await openConsole(t, world);
    await go("#/subscriptions/audit");
    await page.getByRole("heading", { name: "Subscription audit" }).waitFor();
    await page.getByRole("button", { name: "Pause" }).click();
    await page.locator("#sub-status .badge.paused").waitFor();
    assert.equal((await world.admin.get("/v1/subscriptions/audit")).body.enabled, false);
    const sent = await world.admin.post("/v1/messages", { topic: "audit.events", key: "while-paused", payload: { event: "logout" } });
    // While paused, the overview shows it waiting as the oldest pending delivery.
    await nav().getByRole("link", { name: "Overview" }).click();
    await page.getByRole("link", { name: sent.body.id }).waitFor();
    assert.equal(world.deliveredTo("/audit").has(sent.body.id), false, "not delivered while paused");
    assert.equal(
      await page.getByRole("region", { name: "Deliveries by subscription" }).locator("tr", { hasText: "audit" }).locator("td:nth-child(2) .badge").innerText(),
      "paused",
    );
    await page.getByRole("link", { name: "audit", exact: true }).first().click();
    await page.getByRole("button", { name: "Resume" }).click();
    await page.locator("#sub-status .badge.active").waitFor();
    await waitFor("the waiting message delivered after resume", () => world.deliveredTo("/audit").has(sent.body.id), UI_TIMEOUT_MS);
    assert.equal((await world.admin.get("/v1/subscriptions/audit")).body.enabled, true);
  });

  test("shows a subscription's circuit: a badge, what holds it and a timeline of its transitions", async (t) => {
    const world = await ownWorld(t, "console_circuit");
    // Nothing listens on port 1: every attempt fails at once.
    const created = await world.admin.post("/v1/subscriptions", {
      name: "unreachable",
      topic: "down.events",
      endpoint: { type: "http", url: "http://127.0.0.1:1/hooks" },
      circuit: { failures: 2, probeEvery: "1h" },
    });
    assert.equal(created.status, 201);
    for (let i = 0; i < 3; i++) await world.admin.post("/v1/messages", { topic: "down.events", payload: { i } });
    await waitFor("the circuit open", async () => (await world.admin.get("/v1/subscriptions/unreachable")).body.health.state === "open", UI_TIMEOUT_MS);
    const { page, go } = await openConsole(t, world);
    await go("#/subscriptions/unreachable");
    await page.getByRole("heading", { name: "Subscription unreachable" }).waitFor();
    assert.equal(await page.locator("#circuit-badge .badge").innerText(), "circuit open");
    const health = page.getByRole("region", { name: "Endpoint health" });
    assert.match(await health.innerText(), /Opens after 2 failed attempts in a row; while open, one probe every 1h; paused after 3d open\./);
    assert.match(await health.innerText(), /Open since .+; deliveries wait without spending attempts\. Next probe/);
    assert.match(await health.locator("tbody tr").first().innerText(), /opened\t[23] attempts failed in a row/);
    // Resuming closes it by hand, as the timeline says (the endpoint still being down, it opens again).
    await page.getByRole("button", { name: "Pause" }).click();
    await page.locator("#sub-status .badge.paused").waitFor();
    await page.getByRole("button", { name: "Resume" }).click();
    await page.locator("#sub-status .badge.active").waitFor();
    await page.reload();
    const reset = page.getByRole("region", { name: "Endpoint health" }).locator("tbody tr", { hasText: "closed by hand" });
    await reset.waitFor();
    assert.match(await reset.innerText(), /closed by hand\tresumed/);
  });

  test("subscriptions: creates one (its secret shown once), edits it, rotates its secret", async (t) => {
    const world = await ownWorld(t, "console_subs");
    const { page, go, shot, assertNoSidewaysScroll } = await openConsole(t, world);
    await go("#/subscriptions");
    await page.getByRole("heading", { name: "Subscriptions", level: 1 }).waitFor();
    await page.locator("tbody tr", { hasText: "shipping" }).waitFor();
    await assertNoSidewaysScroll("subscriptions");
    await shot("subscriptions");
    const form = page.getByRole("region", { name: "New subscription" });
    await form.getByLabel("Name").fill("refunds");
    await form.getByLabel("Topic").fill("orders.refunded");
    await form.getByLabel("Endpoint URL").fill(`${world.receiver.url}/refunds`);
    await form.getByLabel("Retry schedule").fill("30s, 5m");
    await form.getByRole("button", { name: "Create subscription" }).click();
    const created = page.getByRole("dialog", { name: "Subscription refunds created" });
    const secret = await created.getByLabel("Signing secret").inputValue();
    assert.match(secret, /^whsec_/);
    await created.getByRole("button", { name: "I have copied it" }).click();
    await page.getByRole("heading", { name: "Subscription refunds" }).waitFor();
    assert.equal(await page.getByText(secret).count(), 0, "the secret is not shown again");

    await page.getByLabel("Max attempts").fill("5");
    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByText("refunds saved.").waitFor();
    const saved = (await world.admin.get("/v1/subscriptions/refunds")).body;
    assert.deepEqual(saved.retry, { schedule: ["30s", "5m"], maxAttempts: 5, window: null });

    await page.getByRole("button", { name: "Rotate secret…" }).click();
    await page.getByRole("dialog", { name: "Rotate the signing secret?" }).getByRole("button", { name: "Rotate secret" }).click();
    const rotated = await page.getByRole("dialog", { name: "New signing secret of refunds" }).getByLabel("Signing secret").inputValue();
    assert.match(rotated, /^whsec_/);
    assert.notEqual(rotated, secret);
    await page.getByRole("button", { name: "I have copied it" }).click();
  });

  test("edits a subscription's delivery limits and circuit breaker in the form; the API and the health panel show them", async (t) => {
    const world = await ownWorld(t, "console_sub_limits");
    const { page, go } = await openConsole(t, world);
    await go("#/subscriptions/shipping");
    await page.getByRole("heading", { name: "Subscription shipping" }).waitFor();
    await page.getByLabel("Max in flight").fill("3");
    await page.getByLabel("Rate limit").fill("2.5");
    await page.getByLabel("Pending-age alert").fill("2h");
    // A failure ratio instead of failures in a row: its fields appear, the count's go.
    await page.getByLabel("Circuit breaker").selectOption("ratio");
    assert.equal(await page.getByLabel("Failures in a row").isVisible(), false);
    await page.getByLabel("Failure ratio").fill("0.4");
    await page.getByLabel("Ratio window").fill("30s");
    await page.getByLabel("Least attempts").fill("10");
    await page.getByLabel("Probe every").fill("10s");
    await page.getByLabel("Pause after").fill("never");
    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByText("shipping saved.").waitFor();
    const saved = (await world.admin.get("/v1/subscriptions/shipping")).body;
    assert.equal(saved.maxInFlight, 3);
    assert.equal(saved.rateLimit, 2.5);
    assert.equal(saved.pendingAgeAlert, "2h");
    assert.deepEqual(saved.circuit, { failures: null, failureRatio: 0.4, window: "30s", minAttempts: 10, probeEvery: "10s", pauseAfter: null });

    await page.reload();
    const health = page.getByRole("region", { name: "Endpoint health" });
    await health.waitFor();
    assert.match(
      await health.innerText(),
      /Opens when 40% or more of the attempts in 30s fail \(once there are 10\); while open, one probe every 10s; never paused automatically\./,
    );
    assert.equal(await page.locator("#sub-pending-age").innerText(), "Alert (pending too old) when the oldest pending delivery has waited longer than 2h.");
    // The form shows the policy as saved; back to failures in a row, emptied limits go back to none.
    assert.equal(await page.getByLabel("Circuit breaker").inputValue(), "ratio");
    assert.equal(await page.getByLabel("Pending-age alert").inputValue(), "2h");
    await page.getByLabel("Pending-age alert").fill("off");
    assert.equal(await page.getByLabel("Failure ratio").inputValue(), "0.4");
    await page.getByLabel("Circuit breaker").selectOption("failures");
    await page.getByLabel("Failures in a row").fill("7");
    await page.getByLabel("Rate limit").fill("");
    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByText("shipping saved.").waitFor();
    const again = (await world.admin.get("/v1/subscriptions/shipping")).body;
    assert.equal(again.rateLimit, null);
    assert.equal(again.maxInFlight, 3);
    assert.equal(again.pendingAgeAlert, false);
    assert.deepEqual(again.circuit, { failures: 7, failureRatio: null, window: null, minAttempts: null, probeEvery: "10s", pauseAfter: null });
  });

  test("apps: creates one and shows its key once; disables it (after a confirmation) and enables it again; rotates its key", async (t) => {
    const world = await ownWorld(t, "console_apps");
    const { page, go, shot, assertNoSidewaysScroll } = await openConsole(t, world);
    await go("#/apps");
    await page.getByRole("heading", { name: "Apps", level: 1 }).waitFor();
    const form = page.getByRole("region", { name: "New app" });
    await form.getByLabel("Name").fill("warehouse");
    await form.getByRole("button", { name: "Create app" }).click();
    const dialog = page.getByRole("dialog", { name: "App warehouse created" });
    const key = await dialog.getByLabel("API key").inputValue();
    assert.match(key, /^tdk_/);
    await dialog.getByRole("button", { name: "I have copied it" }).click();
    const warehouse = api(world.service.url, key);
    assert.equal((await warehouse.post("/v1/messages", { topic: "nothing.here", payload: 1 })).status, 201, "the key shown works");
    const row = page.locator("tbody tr", { hasText: "warehouse" });
    await row.waitFor();
    await assertNoSidewaysScroll("apps");
    await shot("apps");

    // Disable it, asked first (a cancel changes nothing), then enable it again; from the keyboard.
    await row.locator(".badge.enabled").waitFor();
    await row.getByRole("button", { name: "Disable warehouse" }).click();
    await page.getByRole("dialog", { name: "Disable warehouse?" }).getByRole("button", { name: "Cancel" }).click();
    assert.equal((await world.admin.get("/v1/apps/warehouse")).body.enabled, true);
    await row.getByRole("button", { name: "Disable warehouse" }).focus();
    await page.keyboard.press("Enter");
    await page.getByRole("dialog", { name: "Disable warehouse?" }).getByRole("button", { name: "Disable app" }).focus();
    await page.keyboard.press("Enter");
    await page.getByText("warehouse disabled: its key is refused.").waitFor();
    await row.locator(".badge.disabled", { hasText: "disabled" }).waitFor();
    assert.equal((await world.admin.get("/v1/apps/warehouse")).body.enabled, false);
    const refused = await warehouse.post("/v1/messages", { topic: "nothing.here", payload: 2 });
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, "app_disabled");
    assert.equal(await page.locator("tbody tr", { hasText: "shop" }).locator(".badge").innerText(), "enabled", "the other app is untouched");
    await row.getByRole("button", { name: "Enable warehouse" }).focus();
    await page.keyboard.press("Enter");
    await page.getByText("warehouse enabled: its key works again.").waitFor();
    await row.locator(".badge.enabled").waitFor();
    assert.equal((await warehouse.post("/v1/messages", { topic: "nothing.here", payload: 3 })).status, 201, "the key works again");

    // Rotate its API key: the new one is shown once and works, the old one is refused at once.
    await row.getByRole("button", { name: "Rotate the API key or secret of warehouse" }).click();
    await page.getByRole("dialog", { name: "Rotate a credential of warehouse" }).getByRole("button", { name: "New API key" }).click();
    const shown = page.getByRole("dialog", { name: "New API key of warehouse" });
    const newKey = await shown.getByLabel("API key").inputValue();
    assert.match(newKey, /^tdk_/);
    assert.notEqual(newKey, key);
    await shown.getByRole("button", { name: "I have copied it" }).click();
    assert.equal((await warehouse.post("/v1/messages", { topic: "nothing.here", payload: 4 })).status, 401, "the old key is refused");
    assert.equal((await api(world.service.url, newKey).post("/v1/messages", { topic: "nothing.here", payload: 4 })).status, 201, "the new key works");
  });

  test("operators: an admin adds one (the key shown once and working), changes the role and removes them; a viewer reads the page and cannot change it", async (t) => {
    const world = await ownWorld(t, "console_operators");
    const { page, go } = await openConsole(t, world);
    await go("#/operators");
    await page.getByRole("heading", { name: "Operators", level: 1 }).waitFor();
    const form = page.getByRole("region", { name: "Add an operator" });
    await form.getByLabel("Name").fill("nina");
    await form.getByLabel("Role").selectOption("viewer");
    await form.getByRole("button", { name: "Add operator" }).click();
    const dialog = page.getByRole("dialog", { name: "Operator nina added" });
    const key = await dialog.getByLabel("Key").inputValue();
    assert.match(key, /^tdo_/);
    await dialog.getByRole("button", { name: "I have copied it" }).click();
    const nina = api(world.service.url, key);
    assert.equal((await nina.get("/v1/subscriptions")).status, 200, "the key shown works: a viewer reads");
    assert.equal((await nina.post("/v1/subscriptions/billing/retry-pending")).status, 403, "and may not act");

    // A viewer reads the Operators page, from the navigation: who has which role, and no control to change it.
    const viewer = await openConsole(t, world, { key });
    await viewer.go("#/overview");
    await viewer.nav().getByRole("link", { name: "Operators" }).click();
    await viewer.page.getByRole("heading", { name: "Operators", level: 1 }).waitFor();
    const ninaRow = viewer.page.locator("tbody tr", { hasText: "nina" });
    assert.match(await ninaRow.innerText(), /nina\s+viewer/);
    assert.deepEqual(await viewer.page.locator("main").getByRole("button").allInnerTexts(), [], "a viewer has no control on the Operators page");
    assert.equal(await viewer.page.getByRole("region", { name: "Add an operator" }).count(), 0, "a viewer has no form to add one");
    assert.ok(!(await viewer.page.locator("main").innerText()).includes("tdo_"), "no key is shown");

    const row = page.locator("tbody tr", { hasText: "nina" });
    await row.getByRole("button", { name: "Change the role of nina" }).click();
    const roleDialog = page.getByRole("dialog", { name: "Role of nina" });
    await roleDialog.getByLabel("Role").selectOption("operator");
    await roleDialog.getByRole("button", { name: "Save" }).click();
    await page.getByText("nina is now operator.").waitFor();
    assert.equal((await world.admin.get("/v1/operators/nina")).body.role, "operator");
    assert.equal((await nina.post("/v1/subscriptions/billing/retry-pending")).status, 200, "the new role applies at once");

    await page.locator("tbody tr", { hasText: "nina" }).getByRole("button", { name: "Remove nina" }).click();
    await page.getByRole("dialog", { name: "Remove nina?" }).getByRole("button", { name: "Remove operator" }).click();
    await page.getByText("nina removed.").waitFor();
    assert.equal((await nina.get("/v1/subscriptions")).status, 401, "the key stops working");
  });

  test("stays usable at 390 px wide without sideways scrolling", async (t) => {
    const world = await operatorsWorld();
    const { page, go, shot, assertNoSidewaysScroll } = await openConsole(t, world, { viewport: { width: 390, height: 844 } });
    const id = world.orderIds.get("order-1001")!;
    for (const [hash, heading] of [
      ["#/overview", "Overview"],
      ["#/messages?key=order-1001", "Messages"],
      [`#/messages/${encodeURIComponent(id)}`, `Message ${id}`],
      ["#/dead-letters", "Dead letters and alerts"],
      ["#/subscriptions", "Subscriptions"],
      ["#/subscriptions/billing", "Subscription billing"],
      ["#/apps", "Apps"],
    ] as const) {
      await go(hash);
      await page.getByRole("heading", { name: heading, level: 1 }).waitFor();
      await assertNoSidewaysScroll(`${hash} at 390 px`);
      if (hash === "#/overview") await shot("overview-390");
      if (hash.startsWith("#/messages/")) await shot("message-390");
    }
  });

  test("refuses a forged action without the CSRF token, from the page and from another site", async (t) => {
    const world = await operatorsWorld();
    // Another site: a form that posts to the service on its own.
    const evil = createServer((_req, res) => {
      res
        .writeHead(200, { "content-type": "text/html" })
        .end(
          `<form id="f" method="post" enctype="text/plain" action="${world.service.url}/v1/subscriptions/audit/resend-dead"><input name="a" value="b"></form>` +
            `<script>document.getElementById("f").submit()</script>`,
        );
    });
    await new Promise<void>((resolve) => evil.listen(0, "127.0.0.1", resolve));
    atEnd(t, () => new Promise<void>((resolve) => evil.close(() => resolve())));
    const evilUrl = `http://127.0.0.1:${(evil.address() as AddressInfo).port}/`;
    const { page, go } = await openConsole(t, world, { alsoAllowed: [evilUrl] });
    await go("#/subscriptions/audit");
    await page.getByRole("heading", { name: "Subscription audit" }).waitFor();
    const status = await page.evaluate(async () => {
      const response = await fetch("/v1/subscriptions/audit", { method: "PATCH", headers: { "content-type": "application/json" }, body: '{"enabled":false}' });
      return response.status;
    });
    assert.equal(status, 403);
    const jobs = async () => (await world.sql.query("select count(*)::int as n from jobs")).rows[0].n;
    const before = await jobs();
    const forged = page.waitForResponse((r) => r.url().endsWith("/v1/subscriptions/audit/resend-dead"));
    await page.goto(evilUrl);
    assert.equal((await forged).status(), 403);
    assert.equal((await world.admin.get("/v1/subscriptions/audit")).body.enabled, true, "still enabled");
    assert.equal(await jobs(), before);
    assert.equal((await deadCounts(world)).audit, 30, "nothing re-sent");
  });

  test("an expired session sends the operator back to sign in", async (t) => {
    const world = await operatorsWorld();
    const { page, context, go, nav } = await openConsole(t, world);
    await go("#/overview");
    await page.getByRole("heading", { name: "Overview", level: 1 }).waitFor();
    const cookie = (await context.cookies(world.service.url)).find((c) => c.name === "tidings_session")!;
    const idHash = createHash("sha256").update(cookie.value).digest();
    const expired = await world.sql.query("update console_sessions set expires_at = now() - interval '1 second' where id_hash = $1", [idHash]);
    assert.equal(expired.rowCount, 1);
    await nav().getByRole("link", { name: "Subscriptions" }).click();
    await page.getByText("Your session has expired or ended. Sign in again.").waitFor();
    await page.getByLabel("Key", { exact: true }).fill(ADMIN_KEY);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("heading", { name: "Subscriptions", level: 1 }).waitFor();
  });

  test("signs out: the old cookie no longer works", async (t) => {
    const world = await operatorsWorld();
    const { page, context, go } = await openConsole(t, world);
    await go("#/overview");
    await page.getByRole("heading", { name: "Overview", level: 1 }).waitFor();
    const cookie = (await context.cookies(world.service.url)).find((c) => c.name === "tidings_session")!;
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("Key", { exact: true }).waitFor();
    const stale = await fetch(`${world.service.url}/v1/stats`, { headers: { cookie: `${cookie.name}=${cookie.value}` } });
    assert.equal(stale.status, 401);
  });
});
