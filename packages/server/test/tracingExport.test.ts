// `tidings serve` as a real process with the OTEL_* variables set: its spans go over OTLP
// (HTTP, protobuf) to a collector stand-in, in the trace of the publish request's traceparent,
// with the service's name as its resource, and they are flushed when the process is stopped.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, spawnService, type ServiceProcess } from "@tidings/testkit/service";
import { waitFor } from "@tidings/testkit/wait";

interface Export {
  path: string;
  contentType: string | undefined;
  body: Buffer;
}

let db: TestDatabase;
let collector: Server;
const exports: Export[] = [];
let service: ServiceProcess;

before(async () => {
  db = await createTestDatabase("tracing_export");
  collector = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      exports.push({ path: req.url ?? "", contentType: req.headers["content-type"], body: Buffer.concat(chunks) });
      res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
  service = await spawnService({
    DATABASE_URL: db.url,
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${(collector.address() as AddressInfo).port}`,
    OTEL_SERVICE_NAME: "tidings-under-test",
  });
});
after(async () => {
  await service.kill();
  await new Promise((resolve) => collector.close(resolve));
  await db.drop();
});

test("with OTEL_EXPORTER_OTLP_ENDPOINT set, the publish span goes over OTLP in the caller's trace, flushed at shutdown", async () => {
  const traceId = randomBytes(16).toString("hex");
  const response = await fetch(`${service.url}/v1/messages`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json", traceparent: `00-${traceId}-${randomBytes(8).toString("hex")}-01` },
    body: JSON.stringify({ topic: "t.exported", payload: { n: 1 } }),
  });
  assert.equal(response.status, 201);
  await service.kill("SIGTERM");
  const sent = await waitFor("spans exported", () => exports.find((e) => e.body.includes("publish t.exported")), 10_000);
  assert.equal(sent.path, "/v1/traces");
  assert.equal(sent.contentType, "application/x-protobuf");
  assert.ok(sent.body.includes(Buffer.from(traceId, "hex")), "the span is in the request's trace");
  assert.ok(sent.body.includes("tidings-under-test"), "the resource names the service");
});
