import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, startTestService, type RunningService } from "@tidings/testkit/service";
import { api } from "./support/api.ts";

let database: TestDatabase;
let service: RunningService;
let db: pg.Pool;
let admin: ReturnType<typeof api>;
let shop: ReturnType<typeof api>;
let billing: ReturnType<typeof api>;
let reader: ReturnType<typeof api>;
let viewer: ReturnType<typeof api>;

const lookup = (who: ReturnType<typeof api>, ids: unknown) => who.post("/v1/messages/lookup", { ids });

before(async () => {
  database = await createTestDatabase("message_lookup");
  service = await startTestService(database.url);
  db = new pg.Pool({ connectionString: database.url, max: 2 });
  admin = api(service.url, ADMIN_KEY);
  const key = async (body: object) => (await admin.post("/v1/apps", body)).body.apiKey as string;
  shop = api(service.url, await key({ name: "shop" }));
  billing = api(service.url, await key({ name: "billing" }));
  // Reads shop's orders (to reconcile what it consumes), not billing's invoices.
  reader = api(service.url, await key({ name: "reader", readTopics: ["orders.paid"] }));
  viewer = api(service.url, (await admin.post("/v1/operators", { name: "vi", role: "viewer" })).body.key);

  const send = async (who: ReturnType<typeof api>, body: object) => assert.equal((await who.post("/v1/messages", body)).status, 201);
  await send(shop, { id: "m-1", topic: "orders.paid", payload: {} });
  await send(shop, { id: "m-2", topic: "orders.paid", payload: {}, prepare: true });
  await send(billing, { id: "m-1", topic: "invoices.sent", payload: {} });
  await send(billing, { id: "b-only", topic: "invoices.sent", payload: {} });
  await send(admin, { id: "admin-1", topic: "orders.paid", payload: {} });
});

after(async () => {
  await service?.close();
  await db?.end();
  await database?.drop();
});

test("an app learns which of its ids the service has, and their state; another app's ids are missing, by bare or full id", async () => {
  const answer = await lookup(shop, ["m-1", "nope", "m-2", "b-only", "billing/b-only", "billing/m-1", "shop/m-1"]);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  assert.deepEqual(answer.body, {
    found: [
      { id: "m-1", state: "committed" },
      { id: "m-2", state: "prepared" },
      { id: "shop/m-1", state: "committed" },
    ],
    missing: ["nope", "b-only", "billing/b-only", "billing/m-1"],
  });
  // billing's own m-1 is billing's, not shop's.
  assert.deepEqual((await lookup(billing, ["m-1", "m-2"])).body, { found: [{ id: "m-1", state: "committed" }], missing: ["m-2"] });
});

test("each caller sees exactly what GET /v1/messages/:id shows it: read topics, the admin's own ids, a viewer", async () => {
  const ids = ["m-1", "m-2", "b-only", "admin-1", "shop/m-1", "shop/m-2", "billing/m-1", "billing/b-only", "reader/x", "nope"];
  for (const [name, who] of [
    ["shop", shop],
    ["billing", billing],
    ["reader", reader],
    ["admin key", admin],
    ["viewer", viewer],
  ] as const) {
    const answer = await lookup(who, ids);
    assert.equal(answer.status, 200, `${name}: ${JSON.stringify(answer.body)}`);
    const found: Array<{ id: string; state: string }> = [];
    const missing: string[] = [];
    for (const id of ids) {
      const one = await who.get(`/v1/messages/${encodeURIComponent(id)}`);
      if (one.status === 200) found.push({ id, state: one.body.state });
      else missing.push(id);
    }
    assert.deepEqual(answer.body, { found, missing }, `${name} sees by lookup what it sees one by one`);
  }
  // The cases that matter, spelled out.
  assert.deepEqual((await lookup(reader, ["shop/m-1", "billing/b-only"])).body.missing, ["billing/b-only"], "a read topic's messages, no others");
  assert.deepEqual((await lookup(admin, ["admin-1", "m-1", "shop/m-1"])).body.missing, ["m-1"], "the admin's bare id is its own message");
  assert.deepEqual((await lookup(viewer, ["shop/m-1", "billing/m-1"])).body.missing, [], "a viewer reads every app's");
});

test("1 to 1000 ids, each checked as the GET's id: 400 naming ids, or the bad one by its index", async () => {
  const many = Array.from({ length: 1000 }, (_, i) => `x-${i}`);
  many[500] = "m-1";
  const full = await lookup(shop, many);
  assert.equal(full.status, 200);
  assert.equal(full.body.found.length, 1);
  assert.equal(full.body.missing.length, 999);

  for (const ids of [[...many, "one-more"], [], "m-1"]) {
    const refused = await lookup(shop, ids);
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
    assert.equal(refused.body.error.field, "ids");
  }
  assert.equal((await shop.post("/v1/messages/lookup", {})).body.error.field, "ids");
  assert.equal((await shop.post("/v1/messages/lookup", { ids: ["m-1"], state: "x" })).body.error.field, "state");
  for (const [ids, field] of [
    [["m-1", "m-2", "x".repeat(201)], "ids[2]"],
    [["m-1", 7], "ids[1]"],
    [[""], "ids[0]"],
  ] as const) {
    const refused = await lookup(shop, ids);
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error.code, "invalid_request");
    assert.equal(refused.body.error.field, field, JSON.stringify(refused.body));
  }
});

test("messages of older days' partitions are found with today's", async () => {
  const day = new Date(Date.now() - 3 * 86_400_000).toISOString().slice(0, 10);
  await db.query("select tidings_create_day_partitions($1::date, $1::date)", [day]);
  await db.query(
    `insert into messages (id, app, topic, payload, state, day, created_at, committed_at)
     values ('shop/old-1', 'shop', 'orders.paid', '1', 'committed', $1::date, $1::date + time '12:00', $1::date + time '12:00')`,
    [day],
  );
  const days = await db.query("select tableoid::regclass::text as part from messages where id in ('shop/old-1', 'shop/m-1') order by id");
  assert.equal(new Set(days.rows.map((r) => r.part)).size, 2, "two days' partitions");
  assert.deepEqual((await lookup(shop, ["old-1", "m-1", "old-2"])).body, {
    found: [
      { id: "old-1", state: "committed" },
      { id: "m-1", state: "committed" },
    ],
    missing: ["old-2"],
  });
  assert.deepEqual((await lookup(billing, ["shop/old-1"])).body.missing, ["shop/old-1"]);
});
