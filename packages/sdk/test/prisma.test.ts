// fromPrisma beyond the conformance suite: Prisma's own model API in the same transaction as the
// SDK's rows, the database's error codes through Prisma's errors, the transaction limits the
// adapter gives Prisma, and timestamps whatever the session's time zone.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { fromPrisma, Inbox, isUniqueViolation, Outbox, prismaOf, TidingsClient, TidingsError, type Executor } from "../src/index.ts";
import { DIALECT_NAME, DIALECTS, openDatabase, type OpenDatabase } from "./support/databases.ts";
import { openPrisma, type TestPrismaClient, type TestPrismaModels } from "./support/prismaClient.ts";

for (const dialect of DIALECTS) {
  describe(`Prisma on ${DIALECT_NAME[dialect]}`, () => {
    let database: OpenDatabase;
    let prisma: TestPrismaClient;
    let db: Executor;
    // The relay is never started: nothing is sent, the client only has to exist.
    let outbox: Outbox;
    const p = (n: number) => (dialect === "postgres" ? `$${n}` : "?");
    const itemIds = async () => (await database.db.query<{ id: string }>("SELECT id FROM items ORDER BY id")).map((r) => r.id);
    const outboxKeys = async () => (await database.db.query<{ msg_key: string }>("SELECT msg_key FROM tidings_outbox ORDER BY msg_key")).map((r) => r.msg_key);

    before(async () => {
      database = await openDatabase(dialect, "prisma");
      await database.db.query("CREATE TABLE items (id varchar(100) PRIMARY KEY, n integer NOT NULL)");
      prisma = await openPrisma(dialect, database.url);
      db = fromPrisma(prisma, dialect);
      outbox = new Outbox({ db, tidings: new TidingsClient({ url: "http://127.0.0.1:9", apiKey: "unused" }) });
    });
    after(async () => {
      await prisma?.$disconnect();
      await database?.close();
    });

    test("a model write and outbox.add() in one interactive transaction commit together and roll back together", async () => {
      await prisma.$transaction(async (tx) => {
        await tx.item.create({ data: { id: "kept", n: 1 } });
        await outbox.add(fromPrisma(tx, dialect), { topic: "prisma.item", key: "kept", payload: { n: 1 } });
      });
      await assert.rejects(
        prisma.$transaction(async (tx) => {
          await tx.item.create({ data: { id: "dropped", n: 2 } });
          await outbox.add(fromPrisma(tx, dialect), { topic: "prisma.item", key: "dropped", payload: { n: 2 } });
          throw new Error("out of stock");
        }),
        /out of stock/,
      );
      assert.deepEqual(await itemIds(), ["kept"]);
      assert.deepEqual(await outboxKeys(), ["kept"]);
    });

    test("prismaOf(tx) gives the inbox's handler the Prisma transaction, so its model writes commit with the record", async () => {
      const inbox = new Inbox({ consumer: "prisma-models" });
      const message = { id: `m-model-${dialect}`, topic: "prisma.item", payload: {} };
      let calls = 0;
      const apply = async (tx: Executor) => {
        calls++;
        await prismaOf<TestPrismaModels>(tx).item.create({ data: { id: `from-inbox-${calls}`, n: calls } });
        if (calls === 1) throw new Error("first try fails");
      };
      await assert.rejects(inbox.handle(db, message, apply), /first try fails/);
      assert.equal((await inbox.handle(db, message, apply)).status, "applied");
      assert.equal((await inbox.handle(db, message, apply)).status, "duplicate");
      assert.deepEqual(
        (await itemIds()).filter((id) => id.startsWith("from-inbox")),
        ["from-inbox-2"],
      );
      assert.throws(
        () => prismaOf(database.db),
        (error: unknown) => error instanceof TidingsError && error.code === "config",
      );
    });

    test("a database error keeps the database's code, with Prisma's error as its cause", async () => {
      await db.query(`INSERT INTO items (id, n) VALUES (${p(1)}, ${p(2)})`, ["twice", 1]);
      const error = await db.query(`INSERT INTO items (id, n) VALUES (${p(1)}, ${p(2)})`, ["twice", 2]).then(
        () => assert.fail("the second insert was accepted"),
        (e: unknown) => e as Error & { cause?: { code?: string } },
      );
      assert.ok(isUniqueViolation(error), String(error));
      assert.equal(error.cause?.code, "P2010");
      assert.match(error.message, /duplicate/i);
    });

    test("the transactions the adapter begins take its timeout", async () => {
      const short = fromPrisma(prisma, dialect, { timeout: 300 });
      await assert.rejects(
        short.transaction(async (tx) => {
          await new Promise((r) => setTimeout(r, 600)); // past the 300 ms asked for
          await tx.query("SELECT 1");
        }),
        (error: unknown) => (error as { code?: string }).code === "P2028",
      );
    });

    if (dialect === "postgres") {
      test("a Date parameter is stored as the instant it is, whatever the session's time zone", async () => {
        const deliverAt = new Date("2030-01-02T03:04:05.678Z");
        const id = await prisma.$transaction(async (tx) => {
          await tx.$queryRawUnsafe("SET LOCAL timezone = 'Asia/Tokyo'");
          return outbox.add(fromPrisma(tx, dialect), { topic: "prisma.tz", key: "tz", payload: {}, deliverAt });
        });
        const [row] = await database.db.query<{ ms: string }>(
          "SELECT (extract(epoch FROM deliver_at) * 1000)::bigint::text AS ms FROM tidings_outbox WHERE id = $1",
          [id],
        );
        assert.equal(Number(row!.ms), deliverAt.getTime());
      });
    }
  });
}
