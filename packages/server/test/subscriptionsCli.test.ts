import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { RunningService } from "../src/runtime/service.ts";
import { api } from "./support/api.ts";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { Receiver } from "@tidings/testkit/receiver";
import { ADMIN_KEY, runTidings, startTestService } from "@tidings/testkit/service";
import { waitFor } from "@tidings/testkit/wait";

/** `tidings subscriptions` and `tidings subscription <name>`: the delivery policies and the endpoint's health, from a shell. */
describe("the CLI shows subscriptions' policies and health", () => {
  let db: TestDatabase;
  let service: RunningService;
  let receiver: Receiver;
  let admin: ReturnType<typeof api>;
  /** Receiver paths answered 500. */
  const down = new Set<string>();

  before(async () => {
    db = await createTestDatabase("subscriptions-cli");
    service = await startTestService(db.url);
    receiver = await new Receiver((r) => (down.has(r.path) ? 500 : 200)).start();
    admin = api(service.url, ADMIN_KEY);
  });
  after(async () => {
    await service?.close();
    await receiver?.stop();
    await db?.drop();
  });

  /** `tidings <args>` as a process of its own, pointed at this service by the environment. */
  const tidings = (...args: string[]) => runTidings(args, { TIDINGS_URL: service.url, TIDINGS_ADMIN_KEY: ADMIN_KEY });
  /** The same, which must exit 0. */
  const ok = async (...args: string[]) => {
    const ran = await tidings(...args);
    assert.equal(ran.code, 0, `tidings ${args.join(" ")}: ${ran.stderr}`);
    return ran.stdout;
  };
  /** The table's row of a subscription, cell by cell (columns are two or more spaces apart). */
  const row = (table: string, name: string): string[] | undefined =>
    table
      .split("\n")
      .map((line) => line.trim().split(/ {2,}/))
      .find((cells) => cells[0] === name);

  async function subscribe(body: Record<string, unknown>): Promise<void> {
    const created = await admin.post("/v1/subscriptions", { endpoint: { type: "http", url: `${receiver.url}/${body.name}` }, ...body });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  }

  test("tidings subscriptions: a table of targets, ordering, limits and circuit states; --topic filters it; --json is the API's list", async () => {
    await subscribe({
      name: "ordered",
      topic: "t.ordered",
      ordering: "key",
      onDead: "skip",
      rateLimit: 20,
      maxInFlight: 3,
      circuit: { failures: 3, probeEvery: "1h" },
    });
    await subscribe({ name: "plain", topic: "t.plain", enabled: false, circuit: null });

    const table = await ok("subscriptions");
    assert.deepEqual(table.split("\n")[0]!.trim().split(/ {2,}/), ["NAME", "TOPIC", "TARGET", "STATE", "ORDERING", "LIMITS", "CIRCUIT", "PENDING", "DEAD"]);
    assert.deepEqual(row(table, "ordered"), [
      "ordered",
      "t.ordered",
      `${receiver.url}/ordered`,
      "enabled",
      "key, skip",
      "20/s, 3 in flight",
      "closed",
      "0",
      "0",
    ]);
    assert.deepEqual(row(table, "plain"), ["plain", "t.plain", `${receiver.url}/plain`, "paused", "none", "-", "off", "0", "0"]);

    const one = await ok("subscriptions", "--topic", "t.plain");
    assert.deepEqual([row(one, "plain")?.[0], row(one, "ordered")], ["plain", undefined]);

    const listed = JSON.parse(await ok("subscriptions", "--json"));
    const ordered = listed.items.find((s: { name: string }) => s.name === "ordered");
    assert.deepEqual(
      [ordered.ordering, ordered.onDead, ordered.rateLimit, ordered.maxInFlight, ordered.circuit],
      ["key", "skip", 20, 3, { failures: 3, failureRatio: null, window: null, minAttempts: null, probeEvery: "1h", pauseAfter: "3d" }],
    );
  });

  test("tidings subscription <name>: the circuit opened by failures shows as open, with its opening in the history; --json parses", async () => {
    down.add("/breaking");
    await subscribe({
      name: "breaking",
      topic: "t.breaking",
      ordering: "key",
      rateLimit: 50,
      retry: { schedule: ["1h"], maxAttempts: 5 },
      circuit: { failures: 2, probeEvery: "1h", pauseAfter: null },
    });
    const sent = await admin.post("/v1/messages/batch", { messages: [1, 2].map((i) => ({ topic: "t.breaking", key: `k${i}`, payload: { i } })) });
    assert.equal(sent.status, 201);
    await waitFor("the circuit open", async () => (await admin.get("/v1/subscriptions/breaking")).body.health?.state === "open");

    const shown = await ok("subscription", "breaking");
    assert.match(shown, /^subscription breaking$/m);
    assert.match(shown, /^ {2}ordering +key: messages sharing a key go one at a time, in order; onDead block/m);
    assert.match(shown, /^ {2}retry +1h; at most 5 attempts$/m);
    assert.match(shown, /^ {2}rateLimit +50 attempts\/s, across all processes$/m);
    assert.match(shown, /^ {2}circuit +opens after 2 failed attempts in a row; probes every 1h; never pauses$/m);
    assert.match(shown, /^ {2}deliveries +pending 2, delivered 0, dead 0$/m);
    assert.match(shown, /^ {2}circuit state +open$/m);
    assert.match(shown, /^ {2}consecutive failures +2$/m);
    assert.match(shown, /^ {2}opened at +\d{4}-\d\d-\d\dT\S+Z$/m);
    assert.match(shown, /^ {2}opens +1$/m);
    assert.match(shown, /^history \(newest first\)\n {2}\d{4}-\d\d-\d\dT\S+Z {2}opened +2 attempts failed in a row$/m);

    assert.deepEqual(row(await ok("subscriptions"), "breaking")?.slice(4), ["key, block", "50/s", "open", "2", "0"]);

    const answer = JSON.parse(await ok("subscription", "breaking", "--json"));
    assert.deepEqual([answer.name, answer.health.state, answer.health.consecutiveFailures, answer.health.history[0].event], ["breaking", "open", 2, "opened"]);

    // A failure ratio besides the count: the policy says either opens it.
    const patched = await admin.patch("/v1/subscriptions/breaking", {
      circuit: { failures: 2, failureRatio: 0.5, window: "30s", minAttempts: 10, probeEvery: "1h" },
    });
    assert.equal(patched.status, 200);
    assert.match(
      await ok("subscription", "breaking"),
      /^ {2}circuit +opens after 2 failed attempts in a row or when 50% or more of the attempts in 30s fail \(once 10 counted\); probes every 1h; pauses the subscription after 3d open$/m,
    );
  });

  test("--pending-age-alert sets a subscription's own threshold, off or back to the default; tidings subscription <name> says which applies", async () => {
    const line = async () => /^ {2}pendingAgeAlert +(.*)$/m.exec(await ok("subscription", "aged"))?.[1];
    await ok("subscriptions", "create", "aged", "--topic", "t.aged", "--endpoint", `${receiver.url}/aged`, "--pending-age-alert", "5m");
    assert.equal(await line(), "a pending_too_old alert when the oldest pending delivery has waited over 5m");
    await ok("subscriptions", "update", "aged", "--pending-age-alert", "off");
    assert.equal(await line(), "off (no pending_too_old alert)");
    assert.equal((await admin.get("/v1/subscriptions/aged")).body.pendingAgeAlert, false);
    await ok("subscriptions", "update", "aged", "--pending-age-alert", "default");
    assert.equal(await line(), "- (the service's default, TIDINGS_ALERT_PENDING_AGE)");
    const bad = await tidings("subscriptions", "update", "aged", "--pending-age-alert", "soon");
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /pendingAgeAlert must be a duration from 1s to 30d/);
  });

  test("an unknown subscription, a missing name and an unreachable service exit non-zero and say why", async () => {
    const unknown = await tidings("subscription", "nope");
    assert.deepEqual([unknown.code, unknown.stdout, unknown.stderr], [1, "", "tidings subscription: no subscription named nope\n"]);
    const retried = await tidings("retry-pending", "nope");
    assert.deepEqual([retried.code, retried.stderr], [1, "tidings retry-pending: no subscription named nope\n"]);

    const usage = await tidings("subscription");
    assert.deepEqual([usage.code, /missing required argument .subscription./.test(usage.stderr)], [2, true]);

    const unreachable = await runTidings(["subscriptions", "--url", "http://127.0.0.1:1"], { TIDINGS_ADMIN_KEY: ADMIN_KEY });
    assert.deepEqual([unreachable.code, /cannot reach http:\/\/127\.0\.0\.1:1/.test(unreachable.stderr)], [1, true]);
  });
});
