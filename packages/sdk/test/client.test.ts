import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { TidingsClient, TidingsError } from "../src/index.ts";

/** A real HTTP server on a free port, answering with `handle`; counts the requests it got. */
async function server(handle: (req: IncomingMessage, res: ServerResponse, n: number) => void) {
  let n = 0;
  const s = createServer((req, res) => handle(req, res, ++n));
  await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
    requests: () => n,
    close: () => {
      s.closeAllConnections();
      return new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
}

test("the client's default transport: idempotent calls retried after 5xx, the answer parsed, the key sent", async () => {
  const seen: string[] = [];
  const s = await server((req, res, n) => {
    seen.push(String(req.headers.authorization));
    if (n < 3) return void res.writeHead(503).end();
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ id: "m-1", state: "committed" }));
  });
  try {
    const client = new TidingsClient({ url: s.url, apiKey: "k-123", retries: 2 });
    const message = await client.messages.get("m-1");
    assert.equal(message?.id, "m-1");
    assert.equal(s.requests(), 3);
    assert.deepEqual(new Set(seen), new Set(["Bearer k-123"]));
  } finally {
    await s.close();
  }
});

test("the client's default transport: a 4xx is a TidingsError naming the field, not retried; 404 on get is null", async () => {
  const s = await server((req, res) => {
    if (req.method === "GET")
      return void res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: { code: "not_found", message: "no" } }));
    res
      .writeHead(400, { "content-type": "application/json" })
      .end(JSON.stringify({ error: { code: "invalid", message: "topic is required", field: "topic" } }));
  });
  try {
    const client = new TidingsClient({ url: s.url, apiKey: "k", retries: 2 });
    assert.equal(await client.messages.get("nope"), null);
    await assert.rejects(client.messages.send({ topic: "order.paid", payload: {} }), (error: unknown) => {
      assert.ok(error instanceof TidingsError);
      assert.equal(error.status, 400);
      assert.equal(error.field, "topic");
      return true;
    });
    assert.equal(s.requests(), 2);
  } finally {
    await s.close();
  }
});

test("the client's default transport: no answer in time is a timeout, a closed port a network error", async () => {
  const s = await server(() => {
    // never answers
  });
  try {
    const client = new TidingsClient({ url: s.url, apiKey: "k", retries: 0, timeoutMs: 200 });
    await assert.rejects(client.messages.get("m"), (error: unknown) => error instanceof TidingsError && error.code === "timeout");
  } finally {
    await s.close();
  }
  const closed = new TidingsClient({ url: s.url, apiKey: "k", retries: 1 });
  await assert.rejects(
    closed.messages.get("m"),
    (error: unknown) => error instanceof TidingsError && error.code === "network" && /ECONNREFUSED/.test(error.message),
  );
});
