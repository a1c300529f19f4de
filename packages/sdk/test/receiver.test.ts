import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import express from "express";
import Fastify from "fastify";
import { Hono } from "hono";
import { Webhook } from "standardwebhooks";
import { createReceiver, fastifyPlugin, honoHandler, Inbox, nodeHandler, type Envelope, type Executor, type Receiver } from "../src/index.ts";
import { openDatabase, type OpenDatabase } from "./support/databases.ts";

const SECRET = `whsec_${randomBytes(24).toString("base64")}`;
const signer = new Webhook(SECRET);

let database: OpenDatabase;
let receiver: Receiver;
let failNext = false;
const inbox = new Inbox({ consumer: "receiver-test" });

before(async () => {
  database = await openDatabase("postgres", "receiver");
  await database.db.query("CREATE TABLE balances (account text PRIMARY KEY, balance integer NOT NULL)");
  receiver = createReceiver({
    secret: [`whsec_${randomBytes(24).toString("base64")}`, SECRET], // rotation: an old secret and the current one
    db: database.db,
    inbox,
    async handle(message: Envelope, tx: Executor) {
      const { account, amount } = message.payload as { account: string; amount: number };
      await tx.query(
        "INSERT INTO balances (account, balance) VALUES ($1, $2) ON CONFLICT (account) DO UPDATE SET balance = balances.balance + EXCLUDED.balance",
        [account, amount],
      );
      if (failNext) {
        failNext = false;
        throw new Error("account service is read-only right now");
      }
    },
  });
});
after(async () => {
  await database.close();
});

function delivery(id: string, payload: unknown, options: { at?: Date; body?: string; secret?: Webhook } = {}) {
  const body = options.body ?? JSON.stringify({ id, topic: "recharge.paid", tag: null, key: id, payload, headers: {}, createdAt: new Date().toISOString() });
  const at = options.at ?? new Date();
  return {
    body,
    headers: {
      "content-type": "application/json",
      "webhook-id": id,
      "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
      "webhook-signature": (options.secret ?? signer).sign(id, at, body),
      "tidings-attempt": "1",
    },
  };
}

async function balance(account: string): Promise<number | null> {
  const [row] = await database.db.query<{ balance: number }>("SELECT balance FROM balances WHERE account = $1", [account]);
  return row ? row.balance : null;
}

/** Mounts the receiver on each framework and posts one delivery through it. */
type Post = (d: ReturnType<typeof delivery>) => Promise<{ status: number; body: unknown }>;

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks/tidings`;
}
async function postTo(url: string, d: ReturnType<typeof delivery>) {
  const response = await fetch(url, { method: "POST", headers: d.headers, body: d.body });
  return { status: response.status, body: (await response.json()) as unknown };
}

const mounts: Array<{ name: string; setup(): Promise<{ post: Post; close(): Promise<void> }> }> = [
  {
    name: "node:http",
    async setup() {
      const handler = nodeHandler(receiver);
      const server = createServer((req, res) => handler(req, res));
      const url = await listen(server);
      return { post: (d) => postTo(url, d), close: () => new Promise<void>((r) => server.close(() => r())) };
    },
  },
  {
    name: "Express",
    async setup() {
      const app = express();
      app.post("/webhooks/tidings", nodeHandler(receiver));
      app.use(express.json()); // the rest of the app may parse JSON: the receiver was mounted first
      const server = createServer(app);
      const url = await listen(server);
      return { post: (d) => postTo(url, d), close: () => new Promise<void>((r) => server.close(() => r())) };
    },
  },
  {
    name: "Fastify",
    async setup() {
      const app = Fastify();
      await app.register(fastifyPlugin(receiver, "/webhooks/tidings"));
      app.post("/other", async (request) => request.body); // JSON parsing elsewhere is untouched
      await app.ready();
      const post: Post = async (d) => {
        const answer = await app.inject({ method: "POST", url: "/webhooks/tidings", headers: d.headers, payload: d.body });
        return { status: answer.statusCode, body: answer.json() };
      };
      const other = await app.inject({ method: "POST", url: "/other", payload: { a: 1 } });
      assert.deepEqual(other.json(), { a: 1 });
      return { post, close: () => app.close() };
    },
  },
  {
    name: "Hono",
    async setup() {
      const app = new Hono();
      app.post("/webhooks/tidings", honoHandler(receiver));
      const post: Post = async (d) => {
        const response = await app.fetch(new Request("http://local/webhooks/tidings", { method: "POST", headers: d.headers, body: d.body }));
        return { status: response.status, body: (await response.json()) as unknown };
      };
      return { post, close: async () => undefined };
    },
  },
];

for (const mount of mounts) {
  describe(`receiver mounted on ${mount.name}`, () => {
    let post: Post;
    let close: () => Promise<void>;
    const account = `acct-${mount.name}`;
    before(async () => ({ post, close } = await mount.setup()));
    after(async () => close());

    test("applies a signed delivery once and answers 200; a redelivery is a duplicate", async () => {
      const d = delivery(`m-${mount.name}-1`, { account, amount: 100 });
      assert.deepEqual(await post(d), { status: 200, body: { status: "applied" } });
      assert.deepEqual(await post(d), { status: 200, body: { status: "duplicate" } });
      assert.equal(await balance(account), 100);
    });

    test("refuses a bad signature, a stale timestamp and a foreign secret with 401, changing nothing", async () => {
      const good = delivery(`m-${mount.name}-2`, { account, amount: 1 });
      const tampered = { ...good, body: good.body.replace('"amount":1', '"amount":1000') };
      const stale = delivery(`m-${mount.name}-3`, { account, amount: 1 }, { at: new Date(Date.now() - 10 * 60_000) });
      const foreign = delivery(`m-${mount.name}-4`, { account, amount: 1 }, { secret: new Webhook(`whsec_${randomBytes(24).toString("base64")}`) });
      const unsigned = { ...good, headers: { "content-type": "application/json" } };
      for (const d of [tampered, stale, foreign, unsigned]) {
        const answer = await post(d as typeof good);
        assert.equal(answer.status, 401);
        assert.equal((answer.body as { error: { code: string } }).error.code, "invalid_signature");
      }
      assert.equal(await balance(account), 100);
      assert.equal(await inbox.get(database.db, `m-${mount.name}-2`), null);
    });

    test("refuses a malformed envelope or one whose id is not the webhook-id with 400", async () => {
      const notJson = delivery(`m-${mount.name}-5`, null, { body: "this is not json" });
      const noTopic = delivery(`m-${mount.name}-6`, null, { body: JSON.stringify({ id: `m-${mount.name}-6`, payload: {} }) });
      const otherId = delivery(`m-${mount.name}-7`, null, { body: JSON.stringify({ id: "someone-else", topic: "t", payload: {} }) });
      for (const d of [notJson, noTopic, otherId]) assert.equal((await post(d)).status, 400);
      assert.equal(await balance(account), 100);
    });

    test("answers 500 when the handler throws: the change is rolled back and the failure recorded", async () => {
      const d = delivery(`m-${mount.name}-8`, { account, amount: 7 });
      failNext = true;
      const answer = await post(d);
      assert.equal(answer.status, 500);
      assert.equal(await balance(account), 100, "rolled back");
      const record = await inbox.get(database.db, `m-${mount.name}-8`);
      assert.equal(record?.status, "failed");
      assert.match(record?.lastError ?? "", /read-only right now/);
      assert.deepEqual(await post(d), { status: 200, body: { status: "applied" } }, "the retry applies it");
      assert.equal(await balance(account), 107);
    });
  });
}

test("Express: a receiver mounted behind express.json() says how to fix it instead of failing signatures", async () => {
  const app = express();
  app.use(express.json());
  app.post("/webhooks/tidings", nodeHandler(receiver));
  const server = createServer(app);
  const url = await listen(server);
  try {
    const answer = await postTo(url, delivery("m-parsed", { account: "x", amount: 1 }));
    assert.equal(answer.status, 500);
    assert.match(JSON.stringify(answer.body), /before express\.json\(\)/);
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});
