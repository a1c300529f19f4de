import { test } from "node:test";
import assert from "node:assert/strict";
import { Agent, request } from "undici";
import { startPrivatePostgres } from "./support/privatePostgres.ts";
import { ADMIN_KEY, spawnService } from "@tidings/testkit/service";
import { Receiver } from "@tidings/testkit/receiver";
import { api } from "./support/api.ts";
import { waitFor } from "@tidings/testkit/wait";

const TOTAL = 3000;

test(`every acknowledged message is delivered across a crash-restart of PostgreSQL (${TOTAL} messages)`, { timeout: 180_000 }, async () => {
  const postgres = await startPrivatePostgres();
  const receiver = await new Receiver().start();
  const service = await spawnService({ DATABASE_URL: postgres.url, TIDINGS_LEASE: "2s", TIDINGS_POLL_INTERVAL: "200ms" });
  const agent = new Agent({ connections: 16 });
  try {
    assert.equal(
      (await api(service.url, ADMIN_KEY).post("/v1/subscriptions", { name: "s", topic: "t", endpoint: { type: "http", url: `${receiver.url}/s` } })).status,
      201,
    );
    let next = 0;
    let acked = 0;
    let failedCalls = 0;
    let restarted: Promise<void> | null = null;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < TOTAL) {
          const i = next++;
          for (;;) {
            const res = await request(`${service.url}/v1/messages`, {
              method: "POST",
              dispatcher: agent,
              headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" },
              body: JSON.stringify({ id: `m-${i}`, topic: "t", payload: { i } }),
            });
            await res.body.dump();
            if (res.statusCode === 200 || res.statusCode === 201) break;
            failedCalls++;
            await new Promise((r) => setTimeout(r, 50));
          }
          if (++acked === TOTAL / 2) restarted = postgres.restart();
        }
      }),
    );
    await restarted;
    await waitFor("every message delivered", () => receiver.deliveredIds().size === TOTAL, 90_000, 100);
    const duplicates = receiver.received.length - TOTAL;
    console.log(
      `database restart: ${TOTAL} delivered; ${failedCalls} calls refused while it was down (retried by the producer); ${duplicates} duplicate deliveries`,
    );
    assert.equal((await fetch(`${service.url}/readyz`)).status, 200);
  } finally {
    await service.kill("SIGKILL");
    await agent.close();
    await receiver.stop();
    await postgres.stop();
  }
});
