import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import express from "express";
import Fastify from "fastify";
import { Hono } from "hono";
import { migrate, TidingsClient, type CheckBackHandler, type Executor } from "../src/index.ts";
import { databaseIdentity, recordIntent } from "../src/transaction/barrier.ts";
import { DIALECT_NAME, DIALECTS, openDatabase, type OpenDatabase } from "./support/databases.ts";
import { waitFor } from "@tidings/testkit/wait";
import { addOrders, barrierOf, countRows, createOrders, lockWaiters, orderStatus, payOrder, signedCheck } from "./support/txCommon.ts";
import { startTxWorld, type TxWorld } from "./support/txWorld.ts";

// Three checks 100 ms apart, then in doubt: the service side of "unknown every time".
let world: TxWorld;
before(async () => {
  world = await startTxWorld("checkback", { env: { TIDINGS_CHECK_LIMIT: "3", TIDINGS_CHECK_INTERVAL: "100ms" } });
});
after(async () => {
  await world.close();
});

const newId = (label: string) => `${label}-${randomBytes(5).toString("hex")}`;

/** A gate a transaction's callback waits on: the local transaction stays open (holding its barrier key) until opened. */
function gate() {
  let open!: () => void;
  let fail!: (error: Error) => void;
  const closed = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { closed, open: () => open(), fail: (error: Error) => fail(error) };
}

/**
 * A producer that prepared its message and died before its local transaction: the message is
 * prepared at the service (with the database's identity as its check context), and nothing
 * else happened.
 */
async function preparedThenCrashed(db: Executor, id: string): Promise<void> {
  const crashing = new TidingsClient({
    url: world.url,
    apiKey: world.apiKey,
    retries: 0,
    fetch: (async (url: string, init?: RequestInit) => {
      await fetch(url, init);
      throw new Error("the producer died here");
    }) as typeof fetch,
  });
  await assert.rejects(
    crashing.transaction(db, { id, topic: world.topic, payload: { id } }, async () => assert.fail("never runs"), { checkAfter: "1h" }),
    /died here/,
  );
  assert.equal((await world.tidings.messages.get(id))?.state, "prepared");
}

/** A check's HTTP answer through the handler's fetch form. */
async function ask(handler: CheckBackHandler, check: { body: string; headers: Record<string, string> }, method = "POST") {
  const response = await handler.fetch(
    new Request("http://local/tidings/check", { method, headers: check.headers, body: method === "GET" ? undefined : check.body }),
  );
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

for (const dialect of DIALECTS) {
  describe(`check-back handler on ${DIALECT_NAME[dialect]}`, () => {
    let database: OpenDatabase;
    let db: Executor;
    /** This database's identity: what the service sends back as the check's context for the messages transaction() prepared here. */
    let context: string;
    // InnoDB's lock wait is whole seconds: 1 s is its shortest.
    const shortWait = dialect === "mysql" ? 1000 : 150;
    before(async () => {
      database = await openDatabase(dialect, "checkback");
      db = database.db;
      context = await databaseIdentity(db);
      await createOrders(db);
    });
    after(async () => {
      world.useHandler(null);
      await database.close();
    });

    test("answers commit after a committed transaction and rollback for one that never ran, the same every time", async () => {
      const handler = world.tidings.checkBackHandler(db);
      const committed = newId("done");
      await addOrders(db, [committed]);
      await world.tidings.transaction(db, { id: committed, topic: world.topic, payload: {} }, (tx) => payOrder(tx, committed), { checkAfter: "1h" });
      const crashed = newId("crashed");
      await preparedThenCrashed(db, crashed);

      for (let check = 1; check <= 3; check++) {
        assert.deepEqual(await ask(handler, signedCheck(world.secret, committed, { checks: check, context })), { status: 200, body: { status: "commit" } });
        assert.deepEqual(await ask(handler, signedCheck(world.secret, crashed, { checks: check, context })), { status: 200, body: { status: "rollback" } });
      }
      assert.equal(await barrierOf(db, committed), "commit");
      assert.equal(await barrierOf(db, crashed), "rollback");
    });

    test("the check's context decides whose message it is: another database's gets 404 and writes nothing, this one's is decided", async () => {
      const handler = world.tidings.checkBackHandler(db);
      const other = await openDatabase(dialect, "checkother");
      let otherIdentity: string;
      try {
        otherIdentity = await databaseIdentity(other.db);
      } finally {
        await other.close();
      }
      assert.notEqual(otherIdentity, context, "each database has an identity of its own");
      const id = newId("crashed");
      await preparedThenCrashed(db, id);
      assert.equal(await world.storedCheckContext(id), context, "the prepare carried this database's identity");
      assert.equal(await countRows(db, "tidings_tx_intent"), 0, "transaction() records no intent");

      const foreign = await ask(handler, signedCheck(world.secret, id, { context: otherIdentity }));
      assert.equal(foreign.status, 404);
      assert.equal((foreign.body.error as { code: string }).code, "unknown_message");
      assert.equal(await barrierOf(db, id), null, "nothing written for another database's message");

      // This database's message whose local transaction never committed: decided, rolled back, the same every time.
      for (let check = 1; check <= 2; check++) {
        assert.deepEqual(await ask(handler, signedCheck(world.secret, id, { context, checks: check })), { status: 200, body: { status: "rollback" } });
      }
      assert.equal(await barrierOf(db, id), "rollback");
      assert.equal(await countRows(db, "tidings_tx_intent"), 0);
    });

    test("a message prepared without a context (by an earlier SDK, with its intent row) is still answered from the intent", async () => {
      const handler = world.tidings.checkBackHandler(db);
      const id = newId("older");
      // What transaction() did before prepares carried the database's identity.
      await recordIntent(db, id, world.topic, null);
      assert.equal((await world.tidings.messages.prepare({ id, topic: world.topic, payload: { id } }, { checkAfter: "1h" })).state, "prepared");
      assert.equal(await world.storedCheckContext(id), null);
      assert.equal((await ask(handler, signedCheck(world.secret, newId("older-unknown")))).status, 404, "no intent: unknown");
      assert.deepEqual(await ask(handler, signedCheck(world.secret, id)), { status: 200, body: { status: "rollback" } });
      assert.equal(await barrierOf(db, id), "rollback");
    });

    test("migrate gives the database one identity, kept when migrations run again, two at a time", async () => {
      await db.query("DELETE FROM tidings_sdk_migrations WHERE version = 5");
      const again = await Promise.all([migrate(db), migrate(db)]);
      assert.deepEqual(again.flat(), [5], "one of the two ran it again, the other found it done");
      const rows = await db.query<{ id: string }>("SELECT id FROM tidings_tx_database");
      assert.deepEqual(
        rows.map((r) => r.id),
        [context],
      );
    });

    test("a local transaction still running gets unknown; a check waiting behind it gets its real outcome", async () => {
      const quick = world.tidings.checkBackHandler(db, { lockTimeoutMs: shortWait });
      const patient = world.tidings.checkBackHandler(db, { lockTimeoutMs: 8000 });
      for (const ending of ["commits", "throws"] as const) {
        const sn = newId(`running-${ending}`);
        await addOrders(db, [sn]);
        const g = gate();
        let inside = false;
        const producing = world.tidings.transaction(
          db,
          { id: sn, topic: world.topic, payload: {} },
          async (tx) => {
            await payOrder(tx, sn);
            inside = true;
            await g.closed;
          },
          { checkAfter: "1h" },
        );
        await waitFor("the callback is running", () => inside);

        const started = Date.now();
        assert.deepEqual(await ask(quick, signedCheck(world.secret, sn, { context })), { status: 200, body: { status: "unknown" } });
        assert.ok(Date.now() - started >= shortWait - 50, "it waited for the lock before saying unknown");
        assert.equal(await barrierOf(db, sn), null, "unknown writes nothing");

        const waiting = ask(patient, signedCheck(world.secret, sn, { checks: 2, context }));
        await waitFor("the second check waiting for the transaction's barrier key", async () => (await lockWaiters(db)) > 0, 15_000, 150);
        if (ending === "commits") g.open();
        else g.fail(new Error("declined"));
        const settled = await producing.then(
          () => "committed",
          () => "rolled back",
        );
        const answer = await waiting;
        if (ending === "commits") {
          assert.equal(settled, "committed");
          assert.deepEqual(answer.body, { status: "commit" });
          assert.equal(await orderStatus(db, sn), "paid");
          assert.equal((await world.tidings.messages.get(sn))?.state, "committed");
        } else {
          assert.equal(settled, "rolled back");
          assert.deepEqual(answer.body, { status: "rollback" });
          assert.equal(await orderStatus(db, sn), "new");
          assert.equal((await world.tidings.messages.get(sn))?.state, "rolled_back");
        }
      }
    });

    test("bad input (signature, timestamp, body, unknown message, method) gets a 4xx and changes nothing", async () => {
      const handler = world.tidings.checkBackHandler(db);
      const id = newId("victim");
      await preparedThenCrashed(db, id); // a valid check would roll it back
      const server = createServer(handler.node);
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/tidings/check`;
      const overHttp = async (check: { body: string; headers: Record<string, string> }) => {
        const response = await fetch(url, { method: "POST", headers: check.headers, body: check.body });
        return { status: response.status, body: (await response.json()) as Record<string, unknown> };
      };
      const before = { barriers: await countRows(db, "tidings_tx_barrier"), intents: await countRows(db, "tidings_tx_intent") };
      const good = signedCheck(world.secret, id, { context });
      const otherSecret = `whsec_${randomBytes(24).toString("base64")}`;
      const cases: Array<[string, { body: string; headers: Record<string, string> }, number, string]> = [
        ["no signature headers", { body: good.body, headers: { "content-type": "application/json" } }, 401, "invalid_signature"],
        ["signed with another secret", signedCheck(otherSecret, id, { context }), 401, "invalid_signature"],
        ["signed ten minutes ago", signedCheck(world.secret, id, { at: new Date(Date.now() - 600_000), context }), 401, "invalid_signature"],
        ["body changed after signing", { body: good.body.replace('"checks":1', '"checks":2'), headers: good.headers }, 401, "invalid_signature"],
        ["signature of another message id", { body: good.body, headers: { ...good.headers, "webhook-id": newId("other") } }, 401, "invalid_signature"],
        ["body not JSON", signedCheck(world.secret, id, { body: "{not json" }), 400, "invalid_request"],
        ["body a JSON array", signedCheck(world.secret, id, { body: JSON.stringify([id]) }), 400, "invalid_request"],
        ["body without an id", signedCheck(world.secret, id, { body: JSON.stringify({ topic: "x", checks: 1 }) }), 400, "invalid_request"],
        ["body id is not the webhook-id", signedCheck(world.secret, id, { body: JSON.stringify({ id: newId("else"), checks: 1 }) }), 400, "invalid_request"],
        ["context not a string", signedCheck(world.secret, id, { body: JSON.stringify({ id, checks: 1, context: 7 }) }), 400, "invalid_request"],
        ["context over 200 characters", signedCheck(world.secret, id, { context: "c".repeat(201) }), 400, "invalid_request"],
        ["unknown message without a context", signedCheck(world.secret, newId("never-prepared-here")), 404, "unknown_message"],
        ["this message without its context (no intent recorded)", signedCheck(world.secret, id), 404, "unknown_message"],
        ["this message with another database's context", signedCheck(world.secret, id, { context: "another-database-identity" }), 404, "unknown_message"],
      ];
      try {
        for (const [name, check, status, code] of cases) {
          for (const [how, answer] of [
            ["fetch", await ask(handler, check)],
            ["node http", await overHttp(check)],
          ] as const) {
            assert.equal(answer.status, status, `${name} (${how}): ${JSON.stringify(answer.body)}`);
            assert.equal((answer.body.error as { code?: string } | undefined)?.code, code, `${name} (${how})`);
          }
        }
        assert.equal((await ask(handler, good, "GET")).status, 405);
        assert.deepEqual(
          { barriers: await countRows(db, "tidings_tx_barrier"), intents: await countRows(db, "tidings_tx_intent") },
          before,
          "nothing was written",
        );
        assert.equal(await barrierOf(db, id), null);
        assert.equal((await world.tidings.messages.get(id))?.state, "prepared");
        // The same check, well-formed and signed, is answered (and only now writes its barrier).
        assert.deepEqual(await overHttp(good), { status: 200, body: { status: "rollback" } });
      } finally {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    });

    test("a producer that answers unknown every time ends in doubt after the configured checks; a hand commit delivers it", async () => {
      world.useHandler(world.tidings.checkBackHandler(db, { lockTimeoutMs: shortWait }));
      const sn = newId("doubt");
      await addOrders(db, [sn]);
      const g = gate();
      // The local transaction hangs (holding its barrier key) far past every check.
      const producing = world.tidings.transaction(
        db,
        { id: sn, topic: world.topic, payload: { sn } },
        async (tx) => {
          await payOrder(tx, sn);
          await g.closed;
        },
        { checkAfter: "100ms" },
      );
      try {
        const doubtful = await waitFor(
          "in doubt",
          async () => {
            const m = await world.admin.messages.get(world.full(sn));
            return m?.inDoubtAt ? m : null;
          },
          30_000,
        );
        assert.equal(doubtful.state, "prepared");
        assert.equal(doubtful.checks, 3);
        assert.deepEqual(
          (await world.admin.messages.checks(world.full(sn))).map((c) => [c.check, c.answer]),
          [
            [1, "unknown"],
            [2, "unknown"],
            [3, "unknown"],
          ],
        );
        assert.ok((await world.admin.messages.list({ state: "in_doubt", topic: world.topic })).items.some((m) => m.id === sn));
        // The app's one message_in_doubt alert counts it among its examples.
        const alert = (await world.admin.alerts.list({ condition: "message_in_doubt" })).find((a) => a.examples.some((e) => e.messageId === world.full(sn)));
        assert.ok(alert, "an alert counts the message in doubt");
        assert.equal(world.deliveries(sn), undefined);

        // A person looks, sees the order is being paid, and commits by hand.
        assert.equal((await world.admin.messages.commit(world.full(sn))).state, "committed");
        await waitFor("delivery after the hand commit", () => world.deliveries(sn) === 1);
        // None of the app's messages is in doubt any more: its alert is resolved.
        assert.deepEqual((await world.admin.messages.list({ state: "in_doubt" })).items, []);
        await waitFor("the alert resolved with the commit", async () => (await world.admin.alerts.get(alert.id))?.state === "resolved");
      } finally {
        g.open();
        await producing; // its own commit of the message is idempotent
      }
      assert.equal(await orderStatus(db, sn), "paid");
      assert.equal(world.deliveries(sn), 1);
    });
  });
}

describe("check-back handler mounts", () => {
  let database: OpenDatabase;
  let handler: CheckBackHandler;
  let committed: string;
  let context: string;
  before(async () => {
    database = await openDatabase("postgres", "checkmount");
    context = await databaseIdentity(database.db);
    await createOrders(database.db);
    handler = world.tidings.checkBackHandler(database.db);
    committed = newId("mounted");
    await world.tidings.transaction(database.db, { id: committed, topic: world.topic, payload: {} }, async () => undefined, { checkAfter: "1h" });
  });
  after(async () => database.close());

  const listen = async (server: Server) => {
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/tidings/check`;
  };
  type Post = (check: { body: string; headers: Record<string, string> }) => Promise<{ status: number; body: unknown }>;
  const overHttp =
    (url: string): Post =>
    async (check) => {
      const response = await fetch(url, { method: "POST", headers: check.headers, body: check.body });
      return { status: response.status, body: await response.json() };
    };
  const mounts: Array<{ name: string; setup(): Promise<{ post: Post; close(): Promise<void> }> }> = [
    {
      name: "node:http",
      async setup() {
        const server = createServer(handler.node);
        const url = await listen(server);
        return { post: overHttp(url), close: () => new Promise<void>((r) => server.close(() => r())) };
      },
    },
    {
      name: "Express",
      async setup() {
        const app = express();
        app.post("/tidings/check", handler.node);
        app.use(express.json());
        const server = createServer(app);
        const url = await listen(server);
        return { post: overHttp(url), close: () => new Promise<void>((r) => server.close(() => r())) };
      },
    },
    {
      name: "Fastify",
      async setup() {
        const app = Fastify();
        await app.register(handler.fastify("/tidings/check"));
        await app.ready();
        return {
          post: async (check) => {
            const answer = await app.inject({ method: "POST", url: "/tidings/check", headers: check.headers, payload: check.body });
            return { status: answer.statusCode, body: answer.json() };
          },
          close: () => app.close(),
        };
      },
    },
    {
      name: "Hono",
      async setup() {
        const app = new Hono();
        app.post("/tidings/check", handler.hono);
        return {
          post: async (check) => {
            const response = await app.fetch(new Request("http://local/tidings/check", { method: "POST", headers: check.headers, body: check.body }));
            return { status: response.status, body: await response.json() };
          },
          close: async () => undefined,
        };
      },
    },
  ];
  for (const mount of mounts) {
    test(`on ${mount.name}: a signed check is answered from the barrier, a forged one refused`, async () => {
      const { post, close } = await mount.setup();
      try {
        assert.deepEqual(await post(signedCheck(world.secret, committed, { context })), { status: 200, body: { status: "commit" } });
        const forged = await post(signedCheck(`whsec_${randomBytes(24).toString("base64")}`, committed, { context }));
        assert.equal(forged.status, 401);
      } finally {
        await close();
      }
    });
  }
});

test("rotating the app's check-back secret: a handler given the old and the new secret accepts both, and only those", async () => {
  const database = await openDatabase("postgres", "checkrotate");
  try {
    const created = await world.admin.apps.create({ name: `rotating-${randomBytes(3).toString("hex")}` });
    const rotated = await world.admin.apps.update(created.name, { rotateSecret: true });
    assert.ok(rotated.secret && rotated.secret !== created.secret, "a new secret, shown once");
    assert.equal((await world.admin.apps.get(created.name))?.name, created.name);
    const client = new TidingsClient({ url: world.url, apiKey: created.apiKey, secret: [created.secret, rotated.secret!] });
    const id = newId("rotated");
    await client.transaction(database.db, { id, topic: world.topic, payload: {} }, async () => undefined, { checkAfter: "1h" });
    const handler = client.checkBackHandler(database.db);
    const context = await databaseIdentity(database.db);
    for (const secret of [created.secret, rotated.secret!]) {
      assert.deepEqual((await handler.receive(signedCheck(secret, id, { context }))).body, { status: "commit" });
    }
    assert.equal((await handler.receive(signedCheck(world.secret, id, { context }))).status, 401);
    await world.admin.apps.delete(created.name);
    assert.equal(await world.admin.apps.get(created.name), null);
  } finally {
    await database.close();
  }
});
