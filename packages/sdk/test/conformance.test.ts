import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createTestDatabase } from "@tidings/testkit/db";
import { waitFor } from "@tidings/testkit/wait";
import { Inbox, migrate, Outbox, sqlMigrations, type Executor } from "../src/index.ts";
import { ADAPTERS, type OpenAdapter } from "./support/adapters.ts";
import { createMysqlTestDatabase } from "./support/mysqlDb.ts";
import { startTidings, type TestTidings } from "./support/tidings.ts";

// The same outbox + inbox behaviour through every adapter, on PostgreSQL and on MariaDB.

let tidings: TestTidings;
before(async () => {
  tidings = await startTidings("conformance");
});
after(async () => {
  await tidings.close();
});

/** How long the first of two concurrent deliveries holds its transaction open, so that the second arrives meanwhile. */
const hold = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const adapter of ADAPTERS) {
  const where = adapter.dialect === "postgres" ? "PostgreSQL" : "MariaDB";
  describe(`${adapter.name} on ${where}`, () => {
    let drop: () => Promise<void>;
    let open: OpenAdapter;
    let db: Executor;
    let outbox: Outbox;
    const inbox = new Inbox({ consumer: "conformance" });
    const p = (n: number) => (adapter.dialect === "postgres" ? `$${n}` : "?");

    before(async () => {
      const label = adapter.name.replace(/[^a-z0-9]+/gi, "_").toLowerCase();
      const database = adapter.dialect === "postgres" ? await createTestDatabase(label, { empty: true }) : await createMysqlTestDatabase(label);
      drop = () => database.drop();
      open = await adapter.open(database.url);
      db = open.db;
      outbox = new Outbox({ db, tidings: tidings.client });
      await db.query("CREATE TABLE items (id varchar(100) PRIMARY KEY, n integer NOT NULL)");
    });
    after(async () => {
      await open.close();
      await drop();
    });

    test("migrate creates the tables once and is a no-op the second time", async () => {
      assert.deepEqual(
        await migrate(db),
        sqlMigrations(adapter.dialect).map((m) => m.version),
      );
      assert.deepEqual(await migrate(db), []);
      assert.deepEqual(await outbox.counts(), { pending: 0, sent: 0, failed: 0 });
    });

    test("outbox rows exist only when the business transaction commits", async () => {
      const id = await open.userTransaction(async (tx) => {
        await tx.query(`INSERT INTO items (id, n) VALUES (${p(1)}, ${p(2)})`, ["committed", 1]);
        return outbox.add(tx, { topic: "conf.item", key: "committed", payload: { n: 1 } });
      });
      await assert.rejects(
        open.userTransaction(async (tx) => {
          await tx.query(`INSERT INTO items (id, n) VALUES (${p(1)}, ${p(2)})`, ["rolled-back", 2]);
          await outbox.add(tx, [
            { topic: "conf.item", key: "rolled-back", payload: { n: 2 } },
            { topic: "conf.item", key: "rolled-back", payload: { n: 3 } },
          ]);
          throw new Error("business rule said no");
        }),
        /business rule said no/,
      );
      const rows = await outbox.get([id]);
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.status, "pending");
      assert.deepEqual(JSON.parse(rows[0]!.message.payloadJson), { n: 1 });
      assert.deepEqual(await outbox.counts(), { pending: 1, sent: 0, failed: 0 });
      assert.deepEqual(await db.query("SELECT id FROM items WHERE id = 'rolled-back'"), []);
    });

    test("the relay ships committed rows to the service and marks them sent", async () => {
      const ids = await db.transaction((tx) =>
        outbox.add(tx, [
          { topic: "conf.item", tag: "bulk", key: "k-1", payload: { text: "héllo ✓", list: [1, 2.5, null] }, headers: { trace: "t1" } },
          { topic: "conf.item", key: "k-2", payload: "just a string" },
        ]),
      );
      while ((await outbox.relayOnce()) > 0) {
        // until nothing is due
      }
      assert.deepEqual(await outbox.counts(), { pending: 0, sent: 3, failed: 0 });
      const first = await tidings.client.messages.get(ids[0]!);
      assert.ok(first, "the service has the message");
      assert.equal(first.topic, "conf.item");
      assert.equal(first.tag, "bulk");
      assert.equal(first.key, "k-1");
      assert.deepEqual(first.payload, { text: "héllo ✓", list: [1, 2.5, null] });
      assert.deepEqual(first.headers, { trace: "t1" });
      assert.equal((await tidings.client.messages.get(ids[1]!))?.payload, "just a string");
      const [row] = await outbox.get([ids[0]!]);
      assert.equal(row!.status, "sent");
      assert.equal(row!.attempts, 1);
      assert.ok(row!.sentAt instanceof Date);
    });

    test("the inbox applies a message once and reports the duplicate", async () => {
      const message = { id: `m-once-${adapter.name}`, topic: "conf.item", key: "once", payload: { add: 5 } };
      const apply = (tx: Executor) => tx.query(`INSERT INTO items (id, n) VALUES (${p(1)}, ${p(2)})`, [message.id, 5]).then(() => "done");
      assert.deepEqual(await inbox.handle(db, message, apply), { status: "applied", value: "done" });
      assert.deepEqual(await inbox.handle(db, message, apply), { status: "duplicate" });
      const record = await inbox.get(db, message.id);
      assert.equal(record?.status, "applied");
      assert.equal(record?.attempts, 1);
      assert.deepEqual(record?.payload, { add: 5 });
      assert.equal((await db.query(`SELECT id FROM items WHERE id = ${p(1)}`, [message.id])).length, 1);
    });

    test("handle() deletes records past their retention by itself, now and then, in the background", async () => {
      const tidy = new Inbox({ consumer: "conformance-tidy", retentionMs: 60_000, cleanupIntervalMs: 50, cleanupBatchSize: 2 });
      const noop = async () => "ok";
      for (let i = 0; i < 5; i++) await tidy.handle(db, { id: `old-${i}-${adapter.name}`, topic: "conf.tidy" }, noop);
      const hourAgo = adapter.dialect === "postgres" ? "now() - interval '1 hour'" : "NOW(3) - INTERVAL 1 HOUR";
      await db.query(`UPDATE tidings_inbox SET updated_at = ${hourAgo} WHERE consumer = ${p(1)} AND id LIKE 'old-%'`, ["conformance-tidy"]);
      // Messages keep coming (a new one, then its redeliveries); one handled after the cleanup
      // interval has passed starts the cleanup that deletes the old records.
      await waitFor(
        "the old records deleted",
        async () => {
          await tidy.handle(db, { id: `new-${adapter.name}`, topic: "conf.tidy" }, noop);
          return (await tidy.counts(db)).applied === 1;
        },
        10_000,
      );
      assert.equal((await tidy.get(db, `new-${adapter.name}`))?.status, "applied", "the fresh record stays");
    });

    test("a failing handler rolls its change back, records the error, rethrows, and a retry applies it", async () => {
      const message = { id: `m-fail-${adapter.name}`, topic: "conf.item", key: "fail", payload: {} };
      let calls = 0;
      const apply = async (tx: Executor) => {
        calls++;
        await tx.query(`INSERT INTO items (id, n) VALUES (${p(1)}, ${p(2)})`, [message.id, calls]);
        if (calls === 1) throw new Error("ledger is locked for audit");
      };
      await assert.rejects(inbox.handle(db, message, apply), /ledger is locked for audit/);
      assert.deepEqual(await db.query(`SELECT id FROM items WHERE id = ${p(1)}`, [message.id]), [], "the change was rolled back");
      const failed = await inbox.get(db, message.id);
      assert.equal(failed?.status, "failed");
      assert.equal(failed?.attempts, 1);
      assert.match(failed?.lastError ?? "", /ledger is locked for audit/);
      assert.ok((await inbox.list(db, "failed")).some((r) => r.id === message.id));

      assert.equal((await inbox.handle(db, message, apply)).status, "applied");
      const applied = await inbox.get(db, message.id);
      assert.equal(applied?.status, "applied");
      assert.equal(applied?.attempts, 2);
      assert.equal(applied?.lastError, null);
      assert.deepEqual(await inbox.counts(db), { applied: 2, failed: 0 });
    });

    test("two concurrent deliveries of one message apply it once", async () => {
      const message = { id: `m-race-${adapter.name}`, topic: "conf.item", key: "race", payload: {} };
      let applied = 0;
      const apply = async (tx: Executor) => {
        await tx.query(`UPDATE items SET n = n + 1 WHERE id = ${p(1)}`, ["committed"]);
        await hold(150); // the second delivery arrives while the first is still in its transaction
        applied++;
      };
      const outcomes = await Promise.all([inbox.handle(db, message, apply), inbox.handle(db, message, apply)]);
      assert.deepEqual(outcomes.map((o) => o.status).sort(), ["applied", "duplicate"]);
      assert.equal(applied, 1);
      const [row] = await db.query<{ n: number }>(`SELECT n FROM items WHERE id = ${p(1)}`, ["committed"]);
      assert.equal(Number(row!.n), 2);
    });
  });
}
