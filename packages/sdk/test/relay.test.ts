import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { waitFor } from "@tidings/testkit/wait";
import { Outbox, Relay, TidingsClient, type Executor, type RelayEvent } from "../src/index.ts";
import { DIALECT_NAME, DIALECTS, openDatabase, type OpenDatabase } from "./support/databases.ts";
import { acceptBatch, FakeService } from "./support/fakeService.ts";
import { spawnRelay } from "./support/relayProcess.ts";
import { startTidings, type TestTidings } from "./support/tidings.ts";

let tidings: TestTidings;
before(async () => {
  tidings = await startTidings("relay");
});
after(async () => {
  await tidings.close();
});

const messages = (n: number, topic: string) => Array.from({ length: n }, (_, i) => ({ topic, key: `k-${i}`, payload: { i } }));

for (const dialect of DIALECTS) {
  describe(`relay on ${DIALECT_NAME[dialect]}`, () => {
    let database: OpenDatabase;
    let outbox: Outbox;
    before(async () => {
      database = await openDatabase(dialect, `relay_${dialect}`);
      outbox = new Outbox({ db: database.db, tidings: tidings.client });
    });
    after(async () => {
      await database.close();
    });
    const clear = () => database.db.query("DELETE FROM tidings_outbox");

    test("rows held by a relay killed with SIGKILL mid-send are sent by the next relay", async () => {
      await clear();
      const ids = await database.db.transaction((tx) => outbox.add(tx, messages(300, "relay.killed")));
      // The first relay's service never answers: it dies holding a locked batch in an open transaction.
      const hanging = await new FakeService(() => undefined).start();
      const first = await spawnRelay({ databaseUrl: database.url, url: hanging.url, apiKey: tidings.apiKey, args: ["--batch-size", "100"] });
      await waitFor("the first relay to send a batch", () => hanging.requests.length > 0);
      await first.kill("SIGKILL");
      assert.deepEqual(await outbox.counts(), { pending: 300, sent: 0, failed: 0 }, "nothing was marked sent by the dead relay");

      const second = await spawnRelay({ databaseUrl: database.url, url: tidings.url, apiKey: tidings.apiKey, args: ["--batch-size", "100", "--quiet"] });
      try {
        await waitFor("every row sent", async () => (await outbox.counts()).sent === 300, 20_000, 50);
      } finally {
        await second.kill("SIGTERM");
        await hanging.stop();
      }
      const held = hanging.batchIds();
      assert.equal(held.length, 100, "the killed relay held one batch of 100");
      for (const id of [...held, ids[0]!, ids[299]!]) assert.ok(await tidings.client.messages.get(id), `the service has ${id}`);
      console.log(`# ${DIALECT_NAME[dialect]}: killed relay held ${held.length} rows; the next relay sent all 300`);
    });

    test("two relays running at once send each row once", async () => {
      await clear();
      const counting = await new FakeService(acceptBatch).start();
      const client = new TidingsClient({ url: counting.url, apiKey: "k", retries: 0 });
      const relays = [
        new Relay(database.db, client, { batchSize: 20, pollIntervalMs: 20 }),
        new Relay(database.db, client, { batchSize: 20, pollIntervalMs: 20 }),
      ];
      await Promise.all(relays.map((r) => r.start()));
      try {
        for (let i = 0; i < 20; i++) await database.db.transaction((tx) => outbox.add(tx, messages(20, "relay.two")));
        await waitFor("400 rows sent", async () => (await outbox.counts()).sent === 400, 20_000, 50);
      } finally {
        await Promise.all(relays.map((r) => r.stop()));
        await counting.stop();
      }
      const sent = counting.batchIds();
      assert.equal(sent.length, 400);
      assert.equal(new Set(sent).size, 400, "no row was sent twice");
    });

    test("rows of one key reach the service in their order, across workers, two relays and retries", async () => {
      await clear();
      const accepted: string[] = [];
      let failures = 0;
      // Every third batch fails (a 503) while the first 30 failures last: the failed rows wait for their retry.
      const flaky = await new FakeService((req, body, res) => {
        if (req.url === "/v1/messages/batch" && failures < 30 && Math.random() < 0.33) {
          failures++;
          res.writeHead(503, { "content-type": "application/json" }).end(JSON.stringify({ error: { code: "unavailable", message: "try later" } }));
          return;
        }
        for (const m of (JSON.parse(body) as { messages: Array<{ id: string }> }).messages) accepted.push(m.id);
        acceptBatch(req, body, res);
      }).start();
      const client = new TidingsClient({ url: flaky.url, apiKey: "k", retries: 0 });
      const options = { batchSize: 7, concurrency: 4, pollIntervalMs: 20, backoff: { baseMs: 30, maxMs: 60 } };
      const relays = [new Relay(database.db, client, options), new Relay(database.db, client, options)];
      await Promise.all(relays.map((r) => r.start()));
      const ids: string[][] = Array.from({ length: 5 }, () => []);
      try {
        for (let t = 0; t < 20; t++) {
          const batch = Array.from({ length: 10 }, (_, j) => ({ topic: "relay.order", key: `key-${j % 5}`, payload: { n: t * 10 + j } }));
          const added = await database.db.transaction((tx) => outbox.add(tx, batch));
          for (const [j, id] of (added as string[]).entries()) ids[j % 5]!.push(id);
        }
        await waitFor("200 rows sent", async () => (await outbox.counts()).sent === 200, 30_000, 50);
      } finally {
        await Promise.all(relays.map((r) => r.stop()));
        await flaky.stop();
      }
      assert.ok(failures > 0, "some batches failed and were retried");
      const firstSeen = [...new Set(accepted)];
      for (const [key, expected] of ids.entries()) {
        const order = firstSeen.filter((id) => expected.includes(id));
        assert.deepEqual(order, expected, `rows of key-${key} reached the service out of order`);
      }
    });

    test("a relay holding a batch does not block producers", async () => {
      await clear();
      await database.db.transaction((tx) => outbox.add(tx, messages(5, "relay.hold")));
      const hanging = await new FakeService(() => undefined).start();
      const relay = new Relay(database.db, new TidingsClient({ url: hanging.url, apiKey: "k", timeoutMs: 3000, retries: 0 }));
      const inFlight = relay.relayOnce();
      await waitFor("the relay to hold its batch", () => hanging.requests.length > 0);
      const started = Date.now();
      for (let i = 0; i < 5; i++) await database.db.transaction((tx) => outbox.add(tx, messages(2, "relay.hold")));
      const tookMs = Date.now() - started;
      await hanging.stop();
      await inFlight;
      assert.ok(tookMs < 1500, `5 producer transactions took ${tookMs} ms while the relay held its batch`);
      assert.deepEqual(await outbox.counts(), { pending: 15, sent: 0, failed: 0 });
    });

    test("a send whose reply was lost is sent again, and the service keeps one message", async () => {
      await clear();
      let dropped = 0;
      const lossy = await new FakeService((req, body, res) => {
        // Forward to the real service, then lose the reply of the first call.
        void fetch(tidings.url + req.url, {
          method: "POST",
          headers: { authorization: req.headers.authorization!, "content-type": "application/json" },
          body,
        }).then(async (answer) => {
          if (dropped++ === 0) res.socket?.destroy();
          else res.writeHead(answer.status, { "content-type": "application/json" }).end(await answer.text());
        });
      }).start();
      const [id] = await database.db.transaction((tx) => outbox.add(tx, [{ topic: "relay.lost", key: "lost", payload: { n: 1 } }]));
      const relayOutbox = new Outbox({ db: database.db, tidings: { url: lossy.url, apiKey: tidings.apiKey }, backoff: { baseMs: 10, maxMs: 10 } });
      const events: RelayEvent[] = [];
      const relay = new Relay(database.db, new TidingsClient({ url: lossy.url, apiKey: tidings.apiKey, retries: 0 }), {
        backoff: { baseMs: 10, maxMs: 10 },
        onEvent: (e) => events.push(e),
      });
      await relay.relayOnce();
      assert.equal((await relayOutbox.get([id!]))[0]!.status, "pending", "no answer: still pending");
      assert.ok(await tidings.client.messages.get(id!), "yet the service stored it");
      // The row is due again once its 10 ms backoff has passed: then one pass sends it.
      await waitFor("the row sent again", async () => (await relay.relayOnce()) > 0, 5_000, 5);
      await lossy.stop();
      const [row] = await relayOutbox.get([id!]);
      assert.equal(row!.status, "sent");
      assert.equal(row!.attempts, 2);
      assert.deepEqual(
        events.map((e) => e.type),
        ["retry", "sent"],
      );
      const page = await tidings.client.messages.list({ key: "lost", topic: "relay.lost" });
      assert.equal(page.items.filter((m) => m.id === id).length, 1);
    });

    test("rows the service keeps failing are retried with backoff, then marked failed and listed; retry() brings them back", async () => {
      await clear();
      const down = await new FakeService((_req, _body, res) =>
        res.writeHead(503, { "content-type": "application/json" }).end('{"error":{"code":"unavailable","message":"down for maintenance"}}'),
      ).start();
      const failing = new Outbox({
        db: database.db,
        tidings: { url: down.url, apiKey: "k" },
        maxAttempts: 3,
        backoff: { baseMs: 20, maxMs: 20 },
        pollIntervalMs: 10,
      });
      await database.db.transaction((tx) => failing.add(tx, messages(4, "relay.down")));
      await failing.start();
      try {
        await waitFor("rows marked failed", async () => (await failing.counts()).failed === 4, 10_000, 20);
      } finally {
        await failing.stop();
        await down.stop();
      }
      assert.equal(down.requests.length, 3, "one batch call per attempt");
      const failed = await failing.failed();
      assert.equal(failed.length, 4);
      for (const row of failed) {
        assert.equal(row.attempts, 3);
        assert.match(row.lastError ?? "", /unavailable: down for maintenance/);
        assert.ok(row.failedAt instanceof Date);
      }
      assert.equal(await outbox.retry([failed[0]!.message.id]), 1);
      assert.equal(await outbox.retry(), 3);
      while ((await outbox.relayOnce()) > 0) {
        // the real service takes them now
      }
      assert.deepEqual(await outbox.counts(), { pending: 0, sent: 4, failed: 0 });
    });

    test("a message the service refuses for good is failed at once without holding back its batch", async () => {
      await clear();
      const id = `clash-${dialect}-${Date.now()}`;
      await tidings.client.messages.send({ id, topic: "relay.clash", payload: { version: 1 } });
      const ids = await database.db.transaction((tx) =>
        outbox.add(tx, [
          { topic: "relay.clash", payload: { ok: 1 } },
          { id, topic: "relay.clash", payload: { version: 2 } },
          { topic: "relay.clash", payload: { ok: 2 } },
        ]),
      );
      await outbox.relayOnce();
      const rows = await outbox.get(ids);
      assert.deepEqual(
        rows.map((r) => r.status),
        ["sent", "failed", "sent"],
      );
      assert.match(rows[1]!.lastError ?? "", /conflict/);
      assert.deepEqual((await tidings.client.messages.get(id))?.payload, { version: 1 });
    });

    test("a poison row (content the service cannot store) is failed alone; the other rows of its batch are sent in the same call", async () => {
      await clear();
      let nested: unknown = 1;
      for (let i = 0; i < 100; i++) nested = [nested];
      // PostgreSQL's jsonb (the outbox column there) cannot hold a NUL itself; MySQL's JSON can.
      const poison = dialect === "postgres" ? { deep: nested } : { text: "a\u0000b" };
      const ids = await database.db.transaction((tx) =>
        outbox.add(tx, [
          { topic: "relay.poison", payload: { ok: 1 } },
          { topic: "relay.poison", payload: poison },
          { topic: "relay.poison", payload: { ok: 2 } },
          { topic: "relay.poison", payload: { deep: nested } },
          { topic: "relay.poison", payload: { ok: 3 } },
        ]),
      );
      const events: RelayEvent[] = [];
      const relay = new Relay(database.db, tidings.client, { onEvent: (e) => events.push(e) });
      assert.equal(await relay.relayOnce(), 5);
      const rows = await outbox.get(ids);
      assert.deepEqual(
        rows.map((r) => r.status),
        ["sent", "failed", "sent", "failed", "sent"],
      );
      assert.match(rows[1]!.lastError ?? "", /invalid_message: messages\[1\]\.payload/);
      assert.match(rows[3]!.lastError ?? "", /messages\[3\]\.payload nests objects and arrays more than 64 deep/);
      for (const i of [0, 2, 4]) assert.ok(await tidings.client.messages.get(ids[i]!), `the service has row ${i}`);
      assert.equal(await tidings.client.messages.get(ids[1]!), null);
      assert.deepEqual(events.map((e) => e.type).sort(), ["failed", "failed", "sent"]);
    });

    test("cleanup deletes rows sent longer ago than the retention period, in batches", async () => {
      await clear();
      await database.db.transaction((tx) => outbox.add(tx, messages(7, "relay.cleanup")));
      while ((await outbox.relayOnce()) > 0) {
        // send them all
      }
      const old = dialect === "postgres" ? "now() - interval '8 days'" : "CURRENT_TIMESTAMP(6) - INTERVAL 8 DAY";
      await database.db.query(`UPDATE tidings_outbox SET sent_at = ${old} WHERE topic = 'relay.cleanup' AND msg_key <> 'k-6'`);
      await new Outbox({ db: database.db, tidings: tidings.client, cleanupBatchSize: 2 }).cleanup();
      const left = await database.db.query<{ msg_key: string }>("SELECT msg_key FROM tidings_outbox");
      assert.deepEqual(
        left.map((r) => r.msg_key),
        ["k-6"],
      );
    });

    test(dialect === "postgres" ? "a commit wakes the relay at once through LISTEN/NOTIFY" : "a commit is picked up by short polling", async () => {
      await clear();
      // Scans (each a transaction of the relay's) counted as they end.
      let scans = 0;
      const counted: Executor = {
        dialect: database.db.dialect,
        query: (sql, params) => database.db.query(sql, params),
        transaction: (fn, options) => database.db.transaction(fn, options).finally(() => scans++),
        ...(database.db.listen ? { listen: database.db.listen.bind(database.db) } : {}),
      };
      const relay = new Outbox({ db: counted, tidings: tidings.client, pollIntervalMs: dialect === "postgres" ? 60_000 : 50 });
      await relay.start();
      try {
        await waitFor("the first scan to have run and found nothing", () => scans > 0, 5_000, 5);
        const committedAt = Date.now();
        await database.db.transaction((tx) => relay.add(tx, { topic: "relay.wake", payload: {} }));
        await waitFor("the row sent", async () => (await relay.counts()).sent === 1, 5_000, 5);
        const ms = Date.now() - committedAt;
        console.log(`# ${DIALECT_NAME[dialect]}: sent ${ms} ms after commit`);
        assert.ok(ms < 1000, `took ${ms} ms`);
      } finally {
        await relay.stop();
      }
    });
  });
}
