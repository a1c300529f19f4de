// fromPg prepares the SDK's own statements once per connection, and only those: a user's SQL
// through the same executor is sent as written, and { prepare: false } prepares nothing.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import pg from "pg";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { fromPg, migrate, Outbox, TidingsClient } from "../src/index.ts";

let database: TestDatabase;
before(async () => {
  database = await createTestDatabase("sdk_prepared", { empty: true });
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  await migrate(fromPg(client));
  await client.end();
});
after(() => database.drop());

/** Adds two outbox messages and runs a user's own statement on one connection; the statements it holds prepared after. */
async function preparedAfterUse(options?: { prepare: boolean }): Promise<string[]> {
  const client = new pg.Client({ connectionString: database.url });
  await client.connect();
  try {
    const db = fromPg(client, options);
    // The relay is never started: nothing is sent, the client only has to exist.
    const outbox = new Outbox({ db, tidings: new TidingsClient({ url: "http://127.0.0.1:9", apiKey: "unused" }) });
    for (let i = 0; i < 2; i++) await db.transaction((tx) => outbox.add(tx, { topic: "prepared.t", payload: { i } }));
    const mine = await db.query<{ n: number }>("select count(*)::int as n from tidings_outbox where topic = $1", ["prepared.t"]);
    assert.ok(mine[0]!.n >= 2);
    const { rows } = await client.query("select name, statement from pg_prepared_statements order by name");
    return rows.map((r) => `${r.name}: ${r.statement}`);
  } finally {
    await client.end();
  }
}

test("the SDK's statements are prepared once per connection, the user's SQL is not", async () => {
  const prepared = await preparedAfterUse();
  assert.ok(prepared.length >= 1, "no statement prepared");
  assert.ok(
    prepared.every((s) => s.startsWith("tidings_sdk_")),
    prepared.join("\n"),
  );
  assert.ok(
    prepared.some((s) => /insert into tidings_outbox/i.test(s)),
    prepared.join("\n"),
  );
  assert.ok(!prepared.some((s) => s.includes("count(*)::int as n")), "the user's own statement was prepared");
});

test("{ prepare: false } prepares nothing", async () => {
  assert.deepEqual(await preparedAfterUse({ prepare: false }), []);
});
