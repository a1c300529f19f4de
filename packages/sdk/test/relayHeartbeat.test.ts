import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { waitFor } from "@tidings/testkit/wait";
import { Outbox, Relay, TidingsClient, type RelayEvent, type RelayInfo } from "../src/index.ts";
import { DIALECT_NAME, DIALECTS, openDatabase, type OpenDatabase } from "./support/databases.ts";
import { FakeService } from "./support/fakeService.ts";
import { spawnRelay } from "./support/relayProcess.ts";
import { startTidings, type TestTidings } from "./support/tidings.ts";

// A relay's heartbeats: `tidings relay` as a real process on a real producer database, reporting
// to a real service, which lists it, marks it stale when it stops reporting, and shows the rows
// it could not ship.

const STALE_AFTER_MS = 1500;

let tidings: TestTidings;
before(async () => {
  tidings = await startTidings("relay_heartbeat", { TIDINGS_RELAY_STALE_AFTER: `${STALE_AFTER_MS}ms` });
});
after(async () => {
  await tidings.close();
});

const relayNamed = async (name: string): Promise<RelayInfo | undefined> => (await tidings.admin.relays.list()).items.find((r) => r.name === name);

async function gauge(name: string, relay: string): Promise<number | undefined> {
  const text = await (await fetch(`${tidings.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(`relay="${relay}"`));
  return line === undefined ? undefined : Number(line.split(" ").pop());
}

describe("relay heartbeats (tidings relay on PostgreSQL)", () => {
  let database: OpenDatabase;
  let outbox: Outbox;
  before(async () => {
    database = await openDatabase("postgres", "relay_heartbeat");
    outbox = new Outbox({ db: database.db, tidings: tidings.client });
  });
  after(async () => {
    await database.close();
  });

  test("a running relay reports; killed, it goes stale; a row the service refuses shows as failed in its heartbeat, the list and the gauge", async () => {
    // A message the service already has with other content: the relay's copy is refused (409) for good.
    await tidings.client.messages.send({ id: "hb-clash", topic: "hb.t", payload: { v: 1 } });
    await database.db.transaction((tx) =>
      outbox.add(tx, [
        { id: "hb-clash", topic: "hb.t", payload: { v: 2 } },
        { id: "hb-ok", topic: "hb.t", payload: { v: 1 } },
      ]),
    );
    const relay = await spawnRelay({
      databaseUrl: database.url,
      url: tidings.url,
      apiKey: tidings.apiKey,
      args: ["--name", "hb-relay-1", "--heartbeat-interval", "200", "--quiet"],
    });
    let killed = false;
    try {
      const reported = await waitFor(
        "a heartbeat with the refused row failed and the other shipped",
        async () => {
          const r = await relayNamed("hb-relay-1");
          return r && r.failed === 1 && r.lastSentAt !== null ? r : null;
        },
        20_000,
        50,
      );
      assert.equal(reported.stale, false);
      assert.equal(reported.pending, 0);
      assert.equal(reported.oldestPendingSeconds, null);
      assert.equal(reported.intervalMs, 200);
      assert.ok(reported.app, "listed under its app");
      assert.deepEqual(
        (await outbox.failed()).map((r) => r.message.id),
        ["hb-clash"],
        "the failed row is the one the service refused",
      );
      assert.equal(await gauge("tidings_relay_failed_rows", "hb-relay-1"), 1);
      assert.ok((await gauge("tidings_relay_heartbeat_age_seconds", "hb-relay-1"))! < STALE_AFTER_MS / 1000);

      // Rows waiting are counted, with the age of the oldest: a row due later is not shipped yet.
      await database.db.query(
        "INSERT INTO tidings_outbox (id, topic, payload, next_attempt_at, created_at) VALUES ($1, $2, $3, now() + interval '1 hour', now() - interval '30 seconds')",
        ["hb-later", "hb.t", "{}"],
      );
      const waiting = await waitFor("a heartbeat counting the waiting row", async () => {
        const r = await relayNamed("hb-relay-1");
        return r?.pending === 1 ? r : null;
      });
      assert.ok(waiting.oldestPendingSeconds! >= 30 && waiting.oldestPendingSeconds! < 120, `oldest waited ${waiting.oldestPendingSeconds} s`);

      await relay.kill("SIGKILL");
      killed = true;
      const stale = await waitFor("the killed relay to be stale", async () => {
        const r = await relayNamed("hb-relay-1");
        return r?.stale ? r : null;
      });
      assert.equal(stale.stoppedAt, null, "it did not say it stopped");
      assert.ok((await gauge("tidings_relay_heartbeat_age_seconds", "hb-relay-1"))! >= STALE_AFTER_MS / 1000);
    } finally {
      if (!killed) await relay.kill("SIGKILL");
    }
  });

  test("a relay stopped with SIGTERM says so: listed as stopped, not stale", async () => {
    const relay = await spawnRelay({
      databaseUrl: database.url,
      url: tidings.url,
      apiKey: tidings.apiKey,
      args: ["--name", "hb-relay-2", "--heartbeat-interval", "200", "--quiet"],
    });
    try {
      await waitFor("its first heartbeat", () => relayNamed("hb-relay-2"));
    } finally {
      await relay.kill("SIGTERM");
    }
    const stopped = await relayNamed("hb-relay-2");
    assert.ok(stopped?.stoppedAt, "its last heartbeat said it stopped");
    await new Promise((resolve) => setTimeout(resolve, STALE_AFTER_MS + 300));
    assert.equal((await relayNamed("hb-relay-2"))?.stale, false, "past the threshold, a stopped relay is not stale");
    assert.equal(await gauge("tidings_relay_heartbeat_age_seconds", "hb-relay-2"), undefined, "nor in the gauges");
  });

  test("a relay whose heartbeats get no answer ships as usual, and stops within the heartbeat's deadline", async () => {
    await database.db.query("DELETE FROM tidings_outbox");
    // Heartbeats never answered (each is cut at its deadline); every other call reaches the service.
    const silentHeartbeats: typeof fetch = (input, init) =>
      String(input).endsWith("/v1/relays/heartbeat")
        ? new Promise((_resolve, reject) => init?.signal?.addEventListener("abort", () => reject(init.signal!.reason)))
        : fetch(input, init);
    const events: RelayEvent[] = [];
    const relay = new Relay(database.db, new TidingsClient({ url: tidings.url, apiKey: tidings.apiKey, retries: 0, fetch: silentHeartbeats }), {
      name: "hb-silent",
      heartbeatIntervalMs: 100,
      onEvent: (event) => events.push(event),
    });
    await relay.start();
    try {
      for (let i = 0; i < 5; i++)
        await database.db.transaction((tx) =>
          outbox.add(
            tx,
            Array.from({ length: 20 }, (_, j) => ({ topic: "hb.silent", payload: { i, j } })),
          ),
        );
      await waitFor("every row sent", async () => (await outbox.counts()).sent === 100, 20_000, 50);
      await waitFor("a heartbeat cut at its deadline", () => events.some((e) => e.type === "heartbeat" && e.error !== null));
    } finally {
      const stopping = Date.now();
      await relay.stop();
      assert.ok(Date.now() - stopping < 2000, `stop() took ${Date.now() - stopping} ms`);
    }
    assert.ok(!events.some((e) => e.type === "error" || e.type === "failed" || e.type === "retry"), "the relay's own work saw no error");
    assert.equal(await relayNamed("hb-silent"), undefined, "the service heard none of them");
  });
});

for (const dialect of DIALECTS) {
  test(`the heartbeat counts waiting and failed rows on ${DIALECT_NAME[dialect]}`, async () => {
    const database = await openDatabase(dialect, `relay_hb_counts_${dialect}`);
    const service = await new FakeService(() => undefined).start();
    try {
      const outbox = new Outbox({ db: database.db });
      await database.db.transaction((tx) =>
        outbox.add(tx, [
          { id: "c-1", topic: "t", payload: {} },
          { id: "c-2", topic: "t", payload: {} },
          { id: "c-3", topic: "t", payload: {} },
        ]),
      );
      await database.db.query("UPDATE tidings_outbox SET status = 'failed', failed_at = created_at WHERE id = 'c-3'");
      // The service never answers a batch (each is cut after 1 s and retried later): the rows stay waiting.
      const relay = new Relay(database.db, new TidingsClient({ url: service.url, apiKey: "k", retries: 0, timeoutMs: 1000 }), {
        name: "count-relay",
        heartbeatIntervalMs: 100,
      });
      await relay.start();
      const beat = await waitFor("a heartbeat", () => service.heartbeats[0]);
      await relay.stop();
      assert.equal(beat.name, "count-relay");
      assert.equal(beat.pending, 2);
      assert.equal(beat.failed, 1);
      assert.equal(beat.lastSentAt, null);
      assert.ok(
        typeof beat.oldestPendingSeconds === "number" && beat.oldestPendingSeconds >= 0 && beat.oldestPendingSeconds < 60,
        String(beat.oldestPendingSeconds),
      );
      assert.equal(service.heartbeats.at(-1)!.stopped, true, "the last one says it stopped");
    } finally {
      await service.stop();
      await database.close();
    }
  });
}
