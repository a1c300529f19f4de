import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createServer } from "node:net";
import { Receiver } from "@tidings/testkit/receiver";
import { api } from "./support/api.ts";
import { waitFor } from "@tidings/testkit/wait";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Runs `npm start` as a user would, with no DATABASE_URL: the embedded PostgreSQL. */
function npmStart(dataDir: string, port: number) {
  const env: NodeJS.ProcessEnv = { ...process.env, TIDINGS_DATA_DIR: dataDir, TIDINGS_PORT: String(port), TIDINGS_LOG_LEVEL: "warn" };
  delete env.DATABASE_URL;
  delete env.TIDINGS_ADMIN_KEY;
  const child = spawn("npm", ["start"], { cwd: ROOT, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    output: () => out,
    /** After a failure: nothing of this run may outlive the test. */
    kill() {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
    },
    /** Stops the whole process group the way Ctrl-C would. */
    async stop() {
      process.kill(-child.pid!, "SIGINT");
      return exited;
    },
  };
}

test("npm start runs the service on the embedded PostgreSQL, delivers a message, and keeps its data over a restart", { timeout: 120_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "tidings-start-"));
  const port = await freePort();
  const receiver = await new Receiver().start();
  const runs: Array<ReturnType<typeof npmStart>> = [];
  try {
    const started = Date.now();
    let run = npmStart(dataDir, port);
    runs.push(run);
    await waitFor("the start banner", () => run.output().includes("Tidings is running at"), 30_000);
    const seconds = (Date.now() - started) / 1000;
    console.log(`first start (initdb included) took ${seconds.toFixed(1)} s`);
    assert.ok(seconds < 30);
    const key = /admin key \(generated[^)]*\): (\S+)/.exec(run.output())?.[1];
    assert.ok(key, `the admin key is printed:\n${run.output()}`);
    assert.equal((await readFile(join(dataDir, "admin-key"), "utf8")).trim(), key);
    const admin = api(`http://127.0.0.1:${port}`, key);
    assert.equal((await admin.post("/v1/subscriptions", { name: "hook", topic: "demo", endpoint: { type: "http", url: `${receiver.url}/hook` } })).status, 201);
    // What the README tells a user to run.
    const curl = spawn("curl", [
      "-s",
      "-X",
      "POST",
      `http://127.0.0.1:${port}/v1/messages`,
      "-H",
      `Authorization: Bearer ${key}`,
      "-H",
      "content-type: application/json",
      "-d",
      '{"id":"hello-1","topic":"demo","payload":{"hello":"world"}}',
    ]);
    await new Promise((resolve) => curl.once("exit", resolve));
    await waitFor("the delivery", () => receiver.counts.get("hello-1") === 1);
    assert.deepEqual(JSON.parse(receiver.received[0]!.body).payload, { hello: "world" });
    await run.stop();
    // A clean shutdown stops the embedded PostgreSQL too.
    await waitFor("the embedded PostgreSQL to stop", () => !existsSync(join(dataDir, "pg", "postmaster.pid")), 15_000);

    run = npmStart(dataDir, port);
    runs.push(run);
    await waitFor("the second start", () => run.output().includes("Tidings is running at"), 30_000);
    // Printed once, when generated: a restart says where it is kept, not the key.
    assert.match(run.output(), /admin key: kept in \S+admin-key/);
    assert.ok(!run.output().includes(key), run.output());
    const again = await admin.get("/v1/messages/hello-1");
    assert.equal(again.status, 200);
    assert.equal(again.body.deliveries[0].state, "delivered");
    assert.equal((await admin.get("/v1/subscriptions/hook")).status, 200);
    await run.stop();
    await waitFor("the embedded PostgreSQL to stop", () => !existsSync(join(dataDir, "pg", "postmaster.pid")), 15_000);
  } finally {
    for (const r of runs) r.kill();
    // The embedded server runs in a session of its own: stop it if the run did not.
    const pidFile = join(dataDir, "pg", "postmaster.pid");
    if (existsSync(pidFile)) process.kill(Number((await readFile(pidFile, "utf8")).split("\n")[0]), "SIGQUIT");
    await receiver.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
});
