import { test } from "node:test";
import assert from "node:assert/strict";
import { createTestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, startTestService } from "@tidings/testkit/service";
import { Receiver } from "@tidings/testkit/receiver";
import { api } from "./support/api.ts";
import { waitFor } from "@tidings/testkit/wait";

test("finished messages are deleted after the retention period; dead, pending and prepared ones stay", async () => {
  const database = await createTestDatabase("retention");
  const service = await startTestService(database.url, { TIDINGS_RETENTION: "300ms", TIDINGS_RETENTION_INTERVAL: "100ms" });
  const receiver = await new Receiver((r) => (r.path === "/down" ? 500 : 200)).start();
  const admin = api(service.url, ADMIN_KEY);
  try {
    await admin.post("/v1/subscriptions", { name: "up", topic: "t.up", endpoint: { type: "http", url: `${receiver.url}/up` } });
    await admin.post("/v1/subscriptions", {
      name: "down",
      topic: "t.down",
      endpoint: { type: "http", url: `${receiver.url}/down` },
      retry: { schedule: [], maxAttempts: 1 },
    });
    await admin.post("/v1/subscriptions", { name: "paused", topic: "t.paused", enabled: false, endpoint: { type: "http", url: `${receiver.url}/paused` } });
    // Older first: the sweep goes oldest first, so once the newer finished ones are gone it has passed these.
    await admin.post("/v1/messages", { id: "dead-1", topic: "t.down", payload: 1 });
    await admin.post("/v1/messages", { id: "pending-1", topic: "t.paused", payload: 1 });
    await admin.post("/v1/messages", { id: "prepared-1", topic: "t.up", payload: 1, prepare: true, checkAfter: "1h" });
    await admin.post("/v1/messages", { id: "rolled-1", topic: "t.up", payload: 1, prepare: true, checkAfter: "1h" });
    await admin.post("/v1/messages/rolled-1/rollback");
    await admin.post("/v1/messages", { id: "done-1", topic: "t.up", payload: 1 });
    await waitFor("done-1 delivered", () => receiver.counts.get("done-1") === 1);
    await waitFor("done-1 deleted", async () => (await admin.get("/v1/messages/done-1")).status === 404);
    await waitFor("rolled-1 deleted", async () => (await admin.get("/v1/messages/rolled-1")).status === 404);
    for (const id of ["dead-1", "pending-1", "prepared-1"]) assert.equal((await admin.get(`/v1/messages/${id}`)).status, 200, id);
    assert.equal((await admin.get("/v1/messages/dead-1")).body.deliveries[0].state, "dead");
  } finally {
    await service.close();
    await receiver.stop();
    await database.drop();
  }
});
