import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import pg from "pg";
import postgres from "postgres";
import { fromPg, fromPostgresJs, isUniqueViolation, migrate, TidingsClient, TidingsError, type Executor, type TransactionEvent } from "../src/index.ts";
import { databaseIdentity } from "../src/transaction/barrier.ts";
import { ADAPTERS } from "./support/adapters.ts";
import { DIALECT_NAME, DIALECTS, openDatabase, type OpenDatabase } from "./support/databases.ts";
import { addOrders, barrierOf, createOrders, orderStatus, paidOrders, payOrder, signedCheck, sqlFor } from "./support/txCommon.ts";
import { waitFor } from "@tidings/testkit/wait";
import { startTxWorld, type TxWorld } from "./support/txWorld.ts";

let world: TxWorld;
before(async () => {
  world = await startTxWorld("txapi");
});
after(async () => {
  await world.close();
});

const newId = (label: string) => `${label}-${randomBytes(5).toString("hex")}`;

/** An executor whose first transaction does what `db`'s do, then reports an error anyway (a COMMIT that failed or whose reply was lost). */
function commitErrors(db: Executor, mode: "rolled back" | "committed, reply lost"): Executor {
  let failed = false;
  return {
    dialect: db.dialect,
    query: (sql, params) => db.query(sql, params),
    async transaction(fn, options) {
      if (failed) return db.transaction(fn, options);
      failed = true;
      if (mode === "committed, reply lost") {
        await db.transaction(fn, options);
        throw Object.assign(new Error("Connection terminated unexpectedly"), { code: "ECONNRESET" });
      }
      return db.transaction(async (tx) => {
        await fn(tx);
        throw new Error("could not commit: the connection was reset");
      }, options);
    },
  };
}

/** A client whose `fetch` can be tampered with per request. */
function clientWith(tamper: (url: string, init: RequestInit | undefined, real: typeof fetch) => Promise<Response>): TidingsClient {
  return new TidingsClient({
    url: world.url,
    apiKey: world.apiKey,
    secret: world.secret,
    retries: 0,
    fetch: ((url: string, init?: RequestInit) => tamper(String(url), init, fetch)) as typeof fetch,
  });
}

for (const dialect of DIALECTS) {
  describe(`transaction() on ${DIALECT_NAME[dialect]}`, () => {
    let database: OpenDatabase;
    let db: Executor;
    before(async () => {
      database = await openDatabase(dialect, "txapi");
      db = database.db;
      await createOrders(db);
      world.useHandler(world.tidings.checkBackHandler(db, { lockTimeoutMs: 1000 }));
    });
    after(async () => {
      world.useHandler(null);
      await database.close();
    });

    test("transaction() deletes intent and barrier rows past their retention by itself, in the background", async () => {
      const tidy = new TidingsClient({ url: world.url, apiKey: world.apiKey, transactions: { cleanupIntervalMs: 50, barrierRetentionMs: 60_000 } });
      const old = [newId("old"), newId("old")];
      await addOrders(db, old);
      for (const sn of old) await tidy.transaction(db, { id: sn, topic: world.topic, key: sn, payload: { sn } }, async () => {});
      const hourAgo = dialect === "postgres" ? "now() - interval '1 hour'" : "NOW(3) - INTERVAL 1 HOUR";
      for (const table of ["tidings_tx_intent", "tidings_tx_barrier"]) {
        await db.query(`UPDATE ${table} SET created_at = ${hourAgo} WHERE id IN (${dialect === "postgres" ? "$1, $2" : "?, ?"})`, old);
      }
      const left = async (ids: string[]) =>
        (await db.query<{ id: string }>(sqlFor(db, `SELECT id FROM tidings_tx_barrier WHERE id IN (${ids.map(() => "?").join(", ")})`), ids)).map((r) => r.id);
      // Transactions go on; one of them, once the cleanup interval has passed, clears the old rows.
      const fresh: string[] = [];
      await waitFor(
        "the old barrier rows deleted",
        async () => {
          const sn = newId("fresh");
          await addOrders(db, [sn]);
          await tidy.transaction(db, { id: sn, topic: world.topic, key: sn, payload: { sn } }, async () => {});
          fresh.push(sn);
          return (await left(old)).length === 0;
        },
        10_000,
      );
      assert.deepEqual((await left(fresh)).sort(), [...fresh].sort(), "the fresh barriers stay");
    });

    test("the prepare carries the database's identity as its check context; no intent row is written", async () => {
      const sn = newId("stamped");
      await addOrders(db, [sn]);
      const intents = async () => Number((await db.query<{ n: unknown }>("SELECT count(*) AS n FROM tidings_tx_intent"))[0]!.n);
      const before = await intents();
      await world.tidings.transaction(db, { id: sn, topic: world.topic, payload: { sn } }, (tx) => payOrder(tx, sn), { checkAfter: "1h" });
      assert.equal(await intents(), before, "no intent row");
      const [identity] = await db.query<{ id: string }>("SELECT id FROM tidings_tx_database");
      assert.match(identity!.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      assert.equal(await world.storedCheckContext(sn), identity!.id, "the service keeps the identity with the message");
      assert.equal(await barrierOf(db, sn), "commit");
      assert.equal((await world.tidings.messages.get(sn))?.state, "committed");
    });

    test("without the identity table (migrate not run) transaction() says so and prepares nothing", async () => {
      const bare = await openDatabase(dialect, "txbare");
      try {
        await bare.db.query("DROP TABLE tidings_tx_database");
        const sn = newId("bare");
        await assert.rejects(
          world.tidings.transaction(bare.db, { id: sn, topic: world.topic, payload: {} }, async () => assert.fail("never runs")),
          (e: unknown) => e instanceof TidingsError && e.code === "config" && /migrate\(db\)/.test(e.message),
        );
        assert.equal(await world.tidings.messages.get(sn), null);
      } finally {
        await bare.close();
      }
    });

    test("commits the business change and the message together; the subscriber gets it once", async () => {
      const sn = newId("ok");
      await addOrders(db, [sn]);
      const events: TransactionEvent[] = [];
      let seenInside: string | undefined;
      const value = await world.tidings.transaction(
        db,
        { id: sn, topic: world.topic, key: sn, payload: { sn } },
        async (tx, { messageId }) => {
          await payOrder(tx, sn);
          // Inside the local transaction the message is stored, prepared and invisible.
          seenInside = (await world.tidings.messages.get(messageId))?.state;
          return "paid";
        },
        { checkAfter: "1h", onEvent: (e) => events.push(e) },
      );
      assert.equal(value, "paid");
      assert.equal(seenInside, "prepared");
      assert.equal(await orderStatus(db, sn), "paid");
      assert.equal(await barrierOf(db, sn), "commit");
      assert.equal((await world.tidings.messages.get(sn))?.state, "committed");
      assert.deepEqual(
        events.map((e) => e.type),
        ["committed"],
      );
      await waitFor("delivery", () => world.deliveries(sn) === 1);
    });

    test("a callback that throws rolls back the local transaction and the message, and the error is rethrown", async () => {
      const sn = newId("throws");
      await addOrders(db, [sn]);
      const boom = new Error("card declined");
      const events: TransactionEvent[] = [];
      await assert.rejects(
        world.tidings.transaction(
          db,
          { id: sn, topic: world.topic, payload: { sn } },
          async (tx) => {
            await payOrder(tx, sn);
            throw boom;
          },
          { checkAfter: "1h", onEvent: (e) => events.push(e) },
        ),
        (error) => error === boom,
      );
      assert.equal(await orderStatus(db, sn), "new");
      assert.equal(await barrierOf(db, sn), "rollback", "the rollback barrier is in before the message is rolled back");
      assert.equal((await world.tidings.messages.get(sn))?.state, "rolled_back");
      assert.deepEqual(
        events.map((e) => e.type),
        ["rolled_back"],
      );
    });

    test("a unique violation of the callback's own is rethrown as it is (not mistaken for the barrier's)", async () => {
      const sn = newId("dup");
      await addOrders(db, [sn]);
      await assert.rejects(
        world.tidings.transaction(
          db,
          { id: newId("dupmsg"), topic: world.topic, payload: {} },
          async (tx) => {
            await payOrder(tx, sn);
            await addOrders(tx, [sn]); // the order exists: the database refuses
          },
          { checkAfter: "1h" },
        ),
        (error) => !(error instanceof TidingsError) && isUniqueViolation(error),
      );
      assert.equal(await orderStatus(db, sn), "new");
    });

    test("a check-back answered before the local transaction began makes it fail: nothing commits", async () => {
      const sn = newId("late");
      await addOrders(db, [sn]);
      const handler = world.tidings.checkBackHandler(db);
      let answered: unknown;
      // The check-back arrives between the prepare's answer and the local BEGIN.
      const client = clientWith(async (url, init, real) => {
        const response = await real(url, init);
        if (url.endsWith("/v1/messages") && init?.method === "POST") {
          // With the context the prepare carried, as the service sends it back.
          const { checkContext } = JSON.parse(String(init.body)) as { checkContext: string };
          answered = (await handler.receive(signedCheck(world.secret, sn, { context: checkContext }))).body;
        }
        return response;
      });
      let ran = false;
      await assert.rejects(
        client.transaction(
          db,
          { id: sn, topic: world.topic, payload: { sn } },
          async (tx) => {
            ran = true;
            await payOrder(tx, sn);
          },
          { checkAfter: "1h" },
        ),
        (error) => error instanceof TidingsError && error.code === "conflict" && /rolled back by a check-back/.test(error.message),
      );
      assert.deepEqual(answered, { status: "rollback" });
      assert.equal(ran, false, "the callback never ran: the barrier insert failed first");
      assert.equal(await orderStatus(db, sn), "new");
      assert.equal((await world.tidings.messages.get(sn))?.state, "rolled_back");
    });

    test("a local COMMIT that fails after the barrier insert rolls the message back", async () => {
      const sn = newId("commitfail");
      await addOrders(db, [sn]);
      await assert.rejects(
        world.tidings.transaction(commitErrors(db, "rolled back"), { id: sn, topic: world.topic, payload: { sn } }, (tx) => payOrder(tx, sn), {
          checkAfter: "1h",
        }),
        /could not commit/,
      );
      assert.equal(await orderStatus(db, sn), "new");
      assert.equal(await barrierOf(db, sn), "rollback");
      assert.equal((await world.tidings.messages.get(sn))?.state, "rolled_back");
    });

    if (dialect === "postgres") {
      test("a COMMIT refused by PostgreSQL (a deferred constraint) rolls the message back", async () => {
        const sn = newId("deferredfk");
        await addOrders(db, [sn]);
        await db.query("CREATE TABLE IF NOT EXISTS receipts (sn varchar(60), CONSTRAINT receipts_once UNIQUE (sn) DEFERRABLE INITIALLY DEFERRED)");
        await assert.rejects(
          world.tidings.transaction(
            db,
            { id: sn, topic: world.topic, payload: { sn } },
            async (tx) => {
              await payOrder(tx, sn);
              // Two receipts: accepted now, refused at COMMIT.
              await tx.query("INSERT INTO receipts (sn) VALUES ($1), ($1)", [sn]);
            },
            { checkAfter: "1h" },
          ),
          (error) => (error as { code?: string }).code === "23505",
        );
        assert.equal(await orderStatus(db, sn), "new");
        assert.equal(await barrierOf(db, sn), "rollback");
        assert.equal((await world.tidings.messages.get(sn))?.state, "rolled_back");
      });
    }

    test("a local COMMIT whose reply was lost is read back from the barrier and the message committed", async () => {
      const sn = newId("replylost");
      await addOrders(db, [sn]);
      const value = await world.tidings.transaction(
        commitErrors(db, "committed, reply lost"),
        { id: sn, topic: world.topic, payload: { sn } },
        async (tx) => {
          await payOrder(tx, sn);
          return 42;
        },
        { checkAfter: "1h" },
      );
      assert.equal(value, 42);
      assert.equal(await orderStatus(db, sn), "paid");
      assert.equal((await world.tidings.messages.get(sn))?.state, "committed");
    });

    test("the message commit failing after the local commit is left to the check-back, which commits it", async () => {
      const sn = newId("deferred");
      await addOrders(db, [sn]);
      const client = clientWith(async (url, init, real) => {
        if (url.endsWith("/commit")) throw new TypeError("fetch failed");
        return real(url, init);
      });
      const events: TransactionEvent[] = [];
      await client.transaction(db, { id: sn, topic: world.topic, payload: { sn } }, (tx) => payOrder(tx, sn), {
        checkAfter: "200ms",
        onEvent: (e) => events.push(e),
      });
      assert.deepEqual(
        events.map((e) => e.type),
        ["commit_deferred"],
      );
      assert.equal(await orderStatus(db, sn), "paid");
      await waitFor("the check-back committed it", async () => (await world.tidings.messages.get(sn))?.state === "committed");
      await waitFor("delivery", () => world.deliveries(sn) === 1);
      const checks = await world.tidings.messages.checks(sn);
      assert.equal(checks.at(-1)?.answer, "commit");
    });

    const allPaid = async (sns: string[]) => {
      const paid = await paidOrders(db);
      return sns.every((sn) => paid.has(sn));
    };

    test("concurrent transactions' message commits go to the service together, each settled on its own", async () => {
      const sns = Array.from({ length: 40 }, () => newId("many"));
      await addOrders(db, sns);
      const requests = { single: 0, batch: 0, batchIds: 0 };
      const client = clientWith(async (url, init, real) => {
        if (/\/v1\/messages\/commit$/.test(url)) {
          requests.batch++;
          requests.batchIds += (JSON.parse(String(init?.body)) as { ids: string[] }).ids.length;
        } else if (url.endsWith("/commit") && ++requests.single === 1) {
          // Hold the first commit on its way until every local transaction committed: the
          // others' commits are then all waiting for it, and go together after it.
          await waitFor("every local transaction committed", () => allPaid(sns));
        }
        return real(url, init);
      });
      const events: TransactionEvent[] = [];
      await Promise.all(
        sns.map((sn) =>
          client.transaction(db, { id: sn, topic: world.topic, payload: { sn } }, (tx) => payOrder(tx, sn), {
            checkAfter: "1h",
            onEvent: (e) => events.push(e),
          }),
        ),
      );
      assert.deepEqual(
        events.map((e) => e.type),
        sns.map(() => "committed"),
      );
      assert.equal(requests.single + requests.batchIds, sns.length, "each message committed once");
      assert.deepEqual(requests, { single: 1, batch: 1, batchIds: sns.length - 1 }, "the first commit alone, then all the others together");
      for (const sn of sns) assert.equal(await orderStatus(db, sn), "paid");
      await waitFor("every message delivered", () => sns.every((sn) => world.deliveries(sn) === 1));
    });

    test("concurrent transactions' prepares go together too; one refused among them fails alone", async () => {
      const sns = Array.from({ length: 10 }, () => newId("prep"));
      await addOrders(db, sns);
      // One id already stored with other content: its prepare is refused, the others' are not.
      const clash = sns[3]!;
      assert.equal((await world.tidings.messages.prepare({ id: clash, topic: world.topic, payload: { other: true } }, { checkAfter: "1h" })).state, "prepared");
      await world.tidings.messages.rollback(clash);
      let singles = 0;
      let batched = 0;
      const client = clientWith(async (url, init, real) => {
        if (url.endsWith("/v1/messages/batch")) batched += (JSON.parse(String(init?.body)) as { messages: unknown[] }).messages.length;
        else if (url.endsWith("/v1/messages") && init?.method === "POST" && ++singles === 1) {
          // Hold the first prepare for a turn of the event loop: the database's identity is
          // known already (read by the earlier transactions on this executor), so the other
          // calls reach their prepares in that turn, wait for this one, and go together after it.
          await new Promise((resolve) => setImmediate(resolve));
        }
        return real(url, init);
      });
      const outcomes = await Promise.allSettled(
        sns.map((sn) => client.transaction(db, { id: sn, topic: world.topic, payload: { sn } }, (tx) => payOrder(tx, sn), { checkAfter: "1h" })),
      );
      assert.ok(batched >= 2, `prepares went together (${singles} alone, ${batched} in batches)`);
      assert.equal(singles + batched, sns.length);
      sns.forEach((sn, i) => {
        const outcome = outcomes[i]!;
        if (sn === clash)
          assert.ok(
            outcome.status === "rejected" && outcome.reason instanceof TidingsError && outcome.reason.code === "conflict",
            String((outcome as PromiseRejectedResult).reason),
          );
        else assert.equal(outcome.status, "fulfilled", String((outcome as PromiseRejectedResult).reason));
      });
      for (const sn of sns) assert.equal(await orderStatus(db, sn), sn === clash ? "new" : "paid");
      await waitFor("the others delivered", () => sns.every((sn) => (world.deliveries(sn) ?? 0) === (sn === clash ? 0 : 1)));
    });

    test("a combined commit that fails leaves each of its transactions to the check-back, which commits them", async () => {
      const sns = Array.from({ length: 12 }, () => newId("manyfail"));
      await addOrders(db, sns);
      let refused = 0;
      let singles = 0;
      const client = clientWith(async (url, init, real) => {
        if (/\/v1\/messages\/commit$/.test(url)) {
          refused += (JSON.parse(String(init?.body)) as { ids: string[] }).ids.length;
          throw new TypeError("fetch failed");
        }
        if (url.endsWith("/commit") && ++singles === 1) await waitFor("every local transaction committed", () => allPaid(sns));
        return real(url, init);
      });
      const events: TransactionEvent[] = [];
      await Promise.all(
        sns.map((sn) =>
          client.transaction(db, { id: sn, topic: world.topic, payload: { sn } }, (tx) => payOrder(tx, sn), {
            checkAfter: "200ms",
            onEvent: (e) => events.push(e),
          }),
        ),
      );
      assert.equal(refused, sns.length - 1, "all but the first commit went together");
      assert.equal(events.filter((e) => e.type === "commit_deferred").length, refused);
      assert.equal(events.length, sns.length);
      for (const sn of sns) assert.equal(await orderStatus(db, sn), "paid");
      await waitFor("the check-back committed every one", async () =>
        (await Promise.all(sns.map((sn) => world.tidings.messages.get(sn)))).every((m) => m?.state === "committed"),
      );
      await waitFor("every message delivered once", () => sns.every((sn) => world.deliveries(sn) === 1));
    });

    test("nothing runs locally when the service cannot prepare the message", async () => {
      const sn = newId("down");
      await addOrders(db, [sn]);
      const down = new TidingsClient({ url: "http://127.0.0.1:9", apiKey: world.apiKey, retries: 0 });
      let ran = false;
      await assert.rejects(
        down.transaction(db, { id: sn, topic: world.topic, payload: { sn } }, async () => {
          ran = true;
        }),
        (error) => error instanceof TidingsError && error.code === "network",
      );
      assert.equal(ran, false);
      assert.equal(await barrierOf(db, sn), null);
      // A bad message is refused before anything is written.
      await assert.rejects(
        world.tidings.transaction(db, { topic: "no spaces allowed", payload: {} }, async () => {
          ran = true;
        }),
        (e) => e instanceof TidingsError && e.code === "invalid_message",
      );
      assert.equal(ran, false);
    });

    test("a message id is good for one transaction: reusing it is refused before the callback runs", async () => {
      const sn = newId("twice");
      await addOrders(db, [sn]);
      await world.tidings.transaction(db, { id: sn, topic: world.topic, payload: { sn } }, (tx) => payOrder(tx, sn), { checkAfter: "1h" });
      let ran = false;
      await assert.rejects(
        world.tidings.transaction(
          db,
          { id: sn, topic: world.topic, payload: { sn } },
          async () => {
            ran = true;
          },
          { checkAfter: "1h" },
        ),
        (error) => error instanceof TidingsError && error.code === "conflict",
      );
      assert.equal(ran, false);
      assert.equal((await world.tidings.messages.get(sn))?.state, "committed");
    });
  });
}

describe("transaction() with postgres.js", () => {
  let database: OpenDatabase;
  let sql: postgres.Sql;
  let db: Executor;
  before(async () => {
    database = await openDatabase("postgres", "txpgjs");
    sql = postgres(database.url, { max: 4, onnotice: () => undefined });
    db = fromPostgresJs(sql);
    await migrate(db);
    await createOrders(db);
    world.useHandler(world.tidings.checkBackHandler(db, { lockTimeoutMs: 1000 }));
  });
  after(async () => {
    world.useHandler(null);
    await sql.end();
    await database.close();
  });

  test("commits both, and a throwing callback rolls both back", async () => {
    const [good, bad] = [newId("pgjs-ok"), newId("pgjs-throws")];
    await addOrders(db, [good, bad]);
    await world.tidings.transaction(db, { id: good, topic: world.topic, payload: { sn: good } }, (tx) => payOrder(tx, good), { checkAfter: "1h" });
    await assert.rejects(
      world.tidings.transaction(
        db,
        { id: bad, topic: world.topic, payload: { sn: bad } },
        async (tx) => {
          await payOrder(tx, bad);
          throw new Error("nope");
        },
        { checkAfter: "1h" },
      ),
      /nope/,
    );
    assert.equal(await orderStatus(db, good), "paid");
    assert.equal(await orderStatus(db, bad), "new");
    assert.equal((await world.tidings.messages.get(good))?.state, "committed");
    assert.equal((await world.tidings.messages.get(bad))?.state, "rolled_back");
    await waitFor("delivery", () => world.deliveries(good) === 1);
  });
});

describe("transaction() through node-postgres's Pool", () => {
  let database: OpenDatabase;
  let pool: pg.Pool;
  const sent: string[] = [];
  before(async () => {
    database = await openDatabase("postgres", "txpgpool");
    pool = new pg.Pool({ connectionString: database.url, max: 1 });
    // Every statement the pool's one connection is sent, as the server gets them.
    pool.on("connect", (client) => {
      const query = client.query.bind(client) as (...args: unknown[]) => unknown;
      (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
        const first = args[0] as string | { text: string };
        sent.push(typeof first === "string" ? first : first.text);
        return query(...args);
      };
    });
    await createOrders(fromPg(pool));
  });
  after(async () => {
    await pool.end();
    await database.close();
  });

  test("the barrier row goes with BEGIN: three round trips to the producer's database, the callback's own statement between", async () => {
    const db = fromPg(pool);
    const id = newId("pg-pool");
    await addOrders(db, [id]);
    await databaseIdentity(db);
    sent.length = 0;
    await world.tidings.transaction(db, { id, topic: world.topic, payload: { sn: id } }, (tx) => payOrder(tx, id), { checkAfter: "1h" });
    // Left out: the client's background clean-up of old barrier and intent rows (its first run).
    const ours = sent.filter((text) => !/^SELECT id FROM tidings_tx_(barrier|intent) WHERE created_at </.test(text));
    assert.equal(ours.length, 3, `statements sent: ${JSON.stringify(sent)}`);
    assert.match(ours[0]!, /^BEGIN; INSERT INTO tidings_tx_barrier \(id, outcome\) VALUES \('pg-pool-[0-9a-f]+', 'commit'\)$/);
    assert.match(ours[1]!, /update orders/i);
    assert.equal(ours[2], "COMMIT");
    assert.equal(await barrierOf(db, id), "commit");
    assert.equal(await orderStatus(db, id), "paid");
    assert.equal((await world.tidings.messages.get(id))?.state, "committed");
  });

  test("a check-back's rollback row, in before BEGIN, still refuses the local transaction", async () => {
    const db = fromPg(pool);
    const id = newId("pg-pool-late");
    await addOrders(db, [id]);
    await db.query("INSERT INTO tidings_tx_barrier (id, outcome) VALUES ($1, 'rollback')", [id]);
    await assert.rejects(
      world.tidings.transaction(db, { id, topic: world.topic, payload: { sn: id } }, (tx) => payOrder(tx, id), { checkAfter: "1h" }),
      (error: unknown) => error instanceof TidingsError && error.code === "conflict" && /rolled back by a check-back/.test(error.message),
    );
    assert.equal(await orderStatus(db, id), "new");
    assert.equal((await world.tidings.messages.get(id))?.state, "rolled_back");
  });
});

describe("transaction() and the check-back through every executor adapter", () => {
  const databases = new Map<string, OpenDatabase>();
  before(async () => {
    for (const dialect of DIALECTS) {
      const database = await openDatabase(dialect, "txadapters");
      await createOrders(database.db);
      databases.set(dialect, database);
    }
  });
  after(async () => {
    for (const database of databases.values()) await database.close();
  });

  for (const adapter of ADAPTERS) {
    test(`${adapter.name}: commit, rollback, and the check-back's answers (waiting behind a running transaction)`, async () => {
      const opened = await adapter.open(databases.get(adapter.dialect)!.url);
      try {
        const db = opened.db;
        const handler = world.tidings.checkBackHandler(db, { lockTimeoutMs: 5000 });
        const [good, bad, slow] = [newId("adapter-ok"), newId("adapter-throws"), newId("adapter-slow")];
        await addOrders(db, [good, bad, slow]);
        await world.tidings.transaction(db, { id: good, topic: world.topic, payload: {} }, (tx) => payOrder(tx, good), { checkAfter: "1h" });
        await assert.rejects(
          world.tidings.transaction(
            db,
            { id: bad, topic: world.topic, payload: {} },
            async (tx) => {
              await payOrder(tx, bad);
              throw new Error("declined");
            },
            { checkAfter: "1h" },
          ),
          /declined/,
        );
        const context = await databaseIdentity(db);
        assert.deepEqual((await handler.receive(signedCheck(world.secret, good, { context }))).body, { status: "commit" });
        assert.deepEqual((await handler.receive(signedCheck(world.secret, bad, { context }))).body, { status: "rollback" });

        // A check arriving while the local transaction runs waits for it, then answers commit.
        let inside = false;
        const producing = world.tidings.transaction(
          db,
          { id: slow, topic: world.topic, payload: {} },
          async (tx) => {
            await payOrder(tx, slow);
            inside = true;
            await new Promise((r) => setTimeout(r, 300)); // the check below arrives while this transaction holds its barrier key
          },
          { checkAfter: "1h" },
        );
        await waitFor("the callback running", () => inside);
        const answer = await handler.receive(signedCheck(world.secret, slow, { context }));
        await producing;
        assert.deepEqual(answer.body, { status: "commit" });
        assert.deepEqual([await orderStatus(db, good), await orderStatus(db, bad), await orderStatus(db, slow)], ["paid", "new", "paid"]);
      } finally {
        await opened.close();
      }
    });
  }
});
