import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { ADMIN_KEY, runTidings, spawnTidings, startTestService, type RunningService } from "@tidings/testkit/service";
import { waitFor } from "@tidings/testkit/wait";
import { api } from "./support/api.ts";

// `tidings listen` as a newcomer uses it: a real process receiving a real service's deliveries.

let database: TestDatabase;
let service: RunningService;

before(async () => {
  database = await createTestDatabase("listen");
  service = await startTestService(database.url);
});
after(async () => {
  await service?.close();
  await database?.drop();
});

test("tidings listen prints each delivery with its signature checked; a delivery signed with another secret is refused 401", async () => {
  const admin = api(service.url, ADMIN_KEY);
  // The subscription first (its secret is shown once), then the listener with that secret.
  const created = await admin.post("/v1/subscriptions", {
    name: "try-it",
    topic: "hello",
    endpoint: { type: "http", url: "http://127.0.0.1:9/" },
    enabled: false,
    retry: { schedule: [], maxAttempts: 1 },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const listener = await spawnTidings(["listen", "--port", "0", "--secret", created.body.secret], { ready: /Listening on (http:\/\/\S+)/ });
  try {
    const url = listener.ready[1]!;
    assert.equal((await admin.patch("/v1/subscriptions/try-it", { endpoint: { type: "http", url }, enabled: true })).status, 200);
    const sent = await admin.post("/v1/messages", { topic: "hello", payload: { greeting: "hi" } });
    assert.equal(sent.status, 201);
    const line = await waitFor("the delivery printed", () =>
      listener
        .output()
        .split("\n")
        .find((l) => l.includes(sent.body.id)),
    );
    assert.match(line, /hello {2}signature valid {2}→ 200 .*"greeting":"hi"/);
    await waitFor("the delivery recorded delivered", async () => (await admin.get(`/v1/messages/${sent.body.id}`)).body.deliveries[0].state === "delivered");

    // Another subscription's secret: the listener refuses it, and the delivery is not delivered.
    const other = await admin.post("/v1/subscriptions", {
      name: "not-mine",
      topic: "hello.other",
      endpoint: { type: "http", url },
      retry: { schedule: [], maxAttempts: 1 },
    });
    assert.equal(other.status, 201);
    const forged = await admin.post("/v1/messages", { topic: "hello.other", payload: {} });
    const refused = await waitFor("the refused delivery printed", () =>
      listener
        .output()
        .split("\n")
        .find((l) => l.includes(forged.body.id)),
    );
    assert.match(refused, /signature invalid {2}→ 401/);
    await waitFor("that delivery dead", async () => (await admin.get(`/v1/messages/${forged.body.id}`)).body.deliveries[0].state === "dead");
  } finally {
    await listener.kill("SIGTERM");
  }
});

test("tidings listen refuses a secret that is empty or not a signing secret (an unset variable), instead of checking nothing", async () => {
  for (const secret of ["", "not-a-secret"]) {
    const run = await runTidings(["listen", "--port", "0", "--secret", secret]);
    assert.equal(run.code, 2, `--secret ${JSON.stringify(secret)}: ${run.stdout}${run.stderr}`);
    assert.match(run.stderr, /--secret must be the subscription's signing secret/);
  }
});
