import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import pg from "pg";
import { parse as parseYaml } from "yaml";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, startTestService, type RunningService } from "@tidings/testkit/service";
import { readMetric } from "@tidings/testkit/metrics";
import { waitFor } from "@tidings/testkit/wait";
import { staleOrFailingRelays } from "../src/store/relays.ts";
import { api } from "./support/api.ts";

// Relay heartbeats, the monitoring gauges of /metrics, and the alerting rules and dashboard in
// docs/: a real service on its own database, and the files as operators would load them.

const STALE_AFTER_MS = 1000;
const docs = (name: string) => new URL(`../../../docs/${name}`, import.meta.url);

let database: TestDatabase;
let service: RunningService;
let admin: ReturnType<typeof api>;
let shop: ReturnType<typeof api>;
let db: pg.Pool;
/** A port nothing answers on: deliveries there fail, check-backs there get no answer. */
let closedUrl: string;

before(async () => {
  database = await createTestDatabase("monitoring");
  // Check-backs run out at once, so that a message goes in doubt within a second.
  service = await startTestService(database.url, {
    TIDINGS_RELAY_STALE_AFTER: `${STALE_AFTER_MS}ms`,
    TIDINGS_CHECK_LIMIT: "1",
    TIDINGS_CHECK_INTERVAL: "100ms",
  });
  admin = api(service.url, ADMIN_KEY);
  const closed: Server = createServer();
  await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
  closedUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/gone`;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  for (const name of ["shop", "billing"]) {
    const created = await admin.post("/v1/apps", { name, checkUrl: closedUrl });
    assert.equal(created.status, 201);
    if (name === "shop") shop = api(service.url, created.body.apiKey);
  }
  db = new pg.Pool({ connectionString: database.url, max: 2 });
});
after(async () => {
  await service.close();
  await db.end();
  await database.drop();
});

const beat = (over: Record<string, unknown> = {}) => ({
  name: "web-1:4242",
  pending: 3,
  failed: 0,
  oldestPendingSeconds: 1.5,
  lastSentAt: new Date().toISOString(),
  intervalMs: 200,
  ...over,
});

/** One sample of this service's /metrics: its value, or undefined when the series is absent. */
const sample = (name: string, labels: Record<string, string> = {}) => readMetric(service.url, name, labels);

describe("relay heartbeats", () => {
  test("an app's relay reports; the admin lists it, and it goes stale when the heartbeats stop", async () => {
    assert.equal((await shop.post("/v1/relays/heartbeat", beat({ name: "stale-1" }))).status, 204);
    const listed = await admin.get("/v1/relays");
    assert.equal(listed.status, 200);
    assert.equal(listed.body.staleAfterMs, STALE_AFTER_MS);
    const relay = listed.body.items.find((r: { name: string }) => r.name === "stale-1");
    assert.equal(relay.app, "shop", "the key names the app");
    assert.equal(relay.pending, 3);
    assert.equal(relay.oldestPendingSeconds, 1.5);
    assert.equal(relay.stale, false);
    assert.equal(relay.stoppedAt, null);

    const stale = await waitFor(
      "the relay to be stale",
      async () => (await admin.get("/v1/relays")).body.items.find((r: { name: string; stale: boolean }) => r.name === "stale-1" && r.stale),
      10_000,
      100,
    );
    assert.ok(stale.heartbeatAgeSeconds >= STALE_AFTER_MS / 1000);
    const flagged = await staleOrFailingRelays(db, STALE_AFTER_MS);
    assert.ok(
      flagged.some((r) => r.app === "shop" && r.name === "stale-1"),
      "the alerts' query names it",
    );

    // People are told: a relay_stale alert on it.
    const relayAlert = async (condition: string) =>
      (
        (await admin.get(`/v1/alerts?condition=${condition}&state=all`)).body.items as Array<{ subject: string; state: string; count: number; app: string }>
      ).find((a) => a.subject === "relay stale-1 of app shop");
    const raised = await waitFor("the relay_stale alert", async () => (await relayAlert("relay_stale"))?.state === "open" || null);
    assert.ok(raised);

    // A heartbeat brings it back, and the alert resolves by itself.
    assert.equal((await shop.post("/v1/relays/heartbeat", beat({ name: "stale-1" }))).status, 204);
    const back = (await admin.get("/v1/relays")).body.items.find((r: { name: string }) => r.name === "stale-1");
    assert.equal(back.stale, false);
    assert.ok(!(await staleOrFailingRelays(db, STALE_AFTER_MS)).some((r) => r.name === "stale-1"));
    await waitFor("the relay_stale alert resolved", async () => (await relayAlert("relay_stale"))?.state === "resolved" || null);

    // Failed rows in a heartbeat: a relay_failed_rows alert counting them, resolved when none is left.
    assert.equal((await shop.post("/v1/relays/heartbeat", beat({ name: "stale-1", failed: 4 }))).status, 204);
    const failing = await waitFor("the relay_failed_rows alert", async () => {
      const a = await relayAlert("relay_failed_rows");
      return a?.state === "open" ? a : null;
    });
    assert.deepEqual([failing.count, failing.app], [4, "shop"]);
    assert.equal((await shop.post("/v1/relays/heartbeat", beat({ name: "stale-1", failed: 0 }))).status, 204);
    await waitFor("the relay_failed_rows alert resolved", async () => (await relayAlert("relay_failed_rows"))?.state === "resolved" || null);
  });

  test("a relay that stops on purpose is not awaited: never stale, left out of the alerts and the gauges", async () => {
    assert.equal((await shop.post("/v1/relays/heartbeat", beat({ name: "stopping-1" }))).status, 204);
    assert.equal((await shop.post("/v1/relays/heartbeat", beat({ name: "stopping-1", stopped: true }))).status, 204);
    await new Promise((resolve) => setTimeout(resolve, STALE_AFTER_MS + 200));
    const relay = (await admin.get("/v1/relays")).body.items.find((r: { name: string }) => r.name === "stopping-1");
    assert.ok(relay.stoppedAt, "its stop is shown");
    assert.equal(relay.stale, false);
    assert.ok(!(await staleOrFailingRelays(db, STALE_AFTER_MS)).some((r) => r.name === "stopping-1"));
    assert.equal(await sample("tidings_relay_heartbeat_age_seconds", { relay: "stopping-1" }), undefined);
    assert.equal((await admin.delete("/v1/relays/shop/stopping-1")).status, 204, "the admin forgets it");
    assert.equal((await admin.delete("/v1/relays/shop/stopping-1")).status, 404);
  });

  test("an app cannot report for another app; the admin may name any", async () => {
    const refused = await shop.post("/v1/relays/heartbeat", beat({ name: "spoof", app: "billing" }));
    assert.equal(refused.status, 403);
    assert.equal(refused.body.error.code, "forbidden");
    assert.equal((await shop.post("/v1/relays/heartbeat", beat({ name: "own", app: "shop" }))).status, 204, "naming its own app is fine");
    assert.equal((await admin.post("/v1/relays/heartbeat", beat({ name: "ops-relay", app: "billing" }))).status, 204);
    const items = (await admin.get("/v1/relays")).body.items as Array<{ app: string; name: string }>;
    assert.ok(!items.some((r) => r.name === "spoof"), "nothing was stored for the refused one");
    assert.ok(items.some((r) => r.app === "billing" && r.name === "ops-relay"));
    assert.equal((await shop.get("/v1/relays")).status, 403, "the list is not an app's");
    assert.equal((await api(service.url, null).post("/v1/relays/heartbeat", beat())).status, 401);
  });

  test("bad input is refused with 400 naming the field, and nothing is stored", async () => {
    const { name: _name, ...nameless } = beat();
    const cases: Array<[unknown, string]> = [
      [nameless, "name"],
      [beat({ name: "has space" }), "name"],
      [beat({ name: "x".repeat(129) }), "name"],
      [beat({ name: "-leading" }), "name"],
      [beat({ app: "Shop!" }), "app"],
      [beat({ pending: -1 }), "pending"],
      [beat({ pending: 1.5 }), "pending"],
      [beat({ pending: 1e13 }), "pending"],
      [beat({ failed: "3" }), "failed"],
      [beat({ oldestPendingSeconds: -2 }), "oldestPendingSeconds"],
      [beat({ lastSentAt: "yesterday" }), "lastSentAt"],
      [beat({ lastSentAt: "2999-01-01T00:00:00Z" }), "lastSentAt"],
      [beat({ intervalMs: 0 }), "intervalMs"],
      [beat({ stopped: "yes" }), "stopped"],
      [beat({ colour: "red" }), "colour"],
    ];
    for (const [body, field] of cases) {
      const answer = await shop.post("/v1/relays/heartbeat", body);
      assert.equal(answer.status, 400, `${JSON.stringify(body)}: ${JSON.stringify(answer.body)}`);
      assert.equal(answer.body.error.field, field, JSON.stringify(answer.body));
    }
    const names = ((await admin.get("/v1/relays")).body.items as Array<{ name: string }>).map((r) => r.name);
    assert.ok(!names.some((n) => n === "has space" || n === "-leading"));
  });
});

describe("monitoring gauges", () => {
  test("open alerts by condition, messages in doubt, oldest pending per subscription, relays' heartbeat age and failed rows", async () => {
    // A subscription whose endpoint is down, with a breaker that opens on the first failure: a
    // pending delivery that waits, an open circuit and its alert.
    const sub = await admin.post("/v1/subscriptions", {
      name: "down",
      topic: "mon.down",
      endpoint: { type: "http", url: closedUrl },
      retry: { schedule: ["1h"] },
      circuit: { failures: 1, probeEvery: "1h" },
    });
    assert.equal(sub.status, 201);
    assert.equal((await shop.post("/v1/messages", { id: "m-down", topic: "mon.down", payload: {} })).status, 201);
    // A prepared message whose one check-back gets no answer: in doubt, with its alert.
    assert.equal((await shop.post("/v1/messages", { id: "m-doubt", topic: "mon.doubt", payload: {}, prepare: true, checkAfter: "0s" })).status, 201);
    assert.equal((await shop.post("/v1/relays/heartbeat", beat({ name: "failing-1", failed: 2 }))).status, 204);

    await waitFor("the circuit_open alert", async () => (await sample("tidings_alerts_open", { condition: "circuit_open" })) === 1, 20_000, 100);
    await waitFor("the message in doubt", async () => (await sample("tidings_messages_in_doubt")) === 1, 20_000, 100);
    assert.equal(await sample("tidings_alerts_open", { condition: "message_in_doubt" }), 1);
    const age = await waitFor("the pending delivery's age", async () => {
      const seconds = await sample("tidings_oldest_pending_seconds", { subscription: "down" });
      return seconds !== undefined && seconds > 0 ? seconds : null;
    });
    assert.ok(age < 60, `the delivery waited ${age} s`);
    assert.equal(await sample("tidings_relay_failed_rows", { app: "shop", relay: "failing-1" }), 2);
    assert.equal(await sample("tidings_relay_pending_rows", { app: "shop", relay: "failing-1" }), 3);
    const heartbeatAge = await sample("tidings_relay_heartbeat_age_seconds", { app: "shop", relay: "failing-1" });
    assert.ok(heartbeatAge !== undefined && heartbeatAge >= 0 && heartbeatAge < 30, `heartbeat age ${heartbeatAge}`);
    assert.ok(
      (await staleOrFailingRelays(db, 3_600_000)).some((r) => r.name === "failing-1" && r.failed === 2),
      "held failed rows count for the alerts",
    );

    // Resolved alerts leave the gauge.
    const open = (await admin.get("/v1/alerts")).body.items as Array<{ id: number; condition: string }>;
    const inDoubt = open.filter((a) => a.condition === "message_in_doubt");
    assert.equal(inDoubt.length, 1, "one grouped alert for the app's messages in doubt");
    for (const alert of inDoubt) assert.equal((await admin.post(`/v1/alerts/${alert.id}/resolve`, { note: "looked at it" })).status, 200);
    assert.equal(await sample("tidings_alerts_open", { condition: "message_in_doubt" }), undefined);
  });

  test("every metric the alerting rules and the dashboard use is exposed by /metrics", async () => {
    const rulesText = await readFile(docs("prometheus-alerts.yml"), "utf8");
    const rules = parseYaml(rulesText) as { groups: Array<{ name: string; rules: Array<{ alert: string; expr: string; for?: string }> }> };
    const exprs = rules.groups.flatMap((g) => g.rules.map((r) => r.expr));
    assert.ok(exprs.length >= 6, "the rules file holds the alerts");
    for (const g of rules.groups) for (const r of g.rules) assert.ok(r.alert && r.expr, `${g.name}: each rule has a name and an expression`);

    const monitoring = await readFile(docs("monitoring.md"), "utf8");
    const block = /```yaml\n([\s\S]*?)```/.exec(monitoring)?.[1];
    assert.ok(block, "docs/monitoring.md holds the rules as a YAML block");
    assert.deepEqual(parseYaml(block), rules, "the YAML block in docs/monitoring.md is the rules file");

    const dashboard = JSON.parse(await readFile(docs("grafana-dashboard.json"), "utf8")) as {
      panels: Array<{ title: string; targets?: Array<{ expr: string }> }>;
    };
    const panelExprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    assert.ok(panelExprs.length >= 8, "the dashboard has its panels");

    const used = new Set(
      [...exprs, ...panelExprs, ...monitoring.matchAll(/`(tidings_[a-z0-9_]+)/g)].flatMap(
        (e) => (typeof e === "string" ? e : e[1]!).match(/\btidings_[a-z0-9_]+/g) ?? [],
      ),
    );
    const exposition = await (await fetch(`${service.url}/metrics`)).text();
    // A series' name, and for a histogram's series its own name too (`…_bucket` is `…` in prose).
    const series = new Set(
      exposition.split("\n").flatMap((line) => {
        const name = /^(tidings_[a-z0-9_]+)[{ ]/.exec(line)?.[1];
        return name ? [name, name.replace(/_(bucket|sum|count)$/, "")] : [];
      }),
    );
    const missing = [...used].filter((name) => !series.has(name));
    assert.deepEqual(missing, [], `metrics used by the docs but not exposed: ${missing.join(", ")}`);
    assert.ok(used.has("tidings_relay_heartbeat_age_seconds") && used.has("tidings_oldest_pending_seconds") && used.has("tidings_deliveries_pending"));
  });
});
