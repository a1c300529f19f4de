import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { client, CommandError, MAX_ANSWER_BYTES } from "../src/cli/client.ts";
import type { RunningService } from "../src/runtime/service.ts";
import { api } from "./support/api.ts";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { Receiver } from "@tidings/testkit/receiver";
import { ADMIN_KEY, runTidings, spawnTidings, startTestService } from "@tidings/testkit/service";
import { waitFor } from "@tidings/testkit/wait";

/** The `tidings` command against a running service, each command a process of its own. */
describe("the tidings command", () => {
  let db: TestDatabase;
  let service: RunningService;
  let receiver: Receiver;
  let admin: ReturnType<typeof api>;
  let work: string;
  /** Receiver paths answered 500. */
  const down = new Set<string>(["/dead"]);

  before(async () => {
    db = await createTestDatabase("cli");
    service = await startTestService(db.url);
    receiver = await new Receiver((r) => (down.has(r.path) ? 500 : 200)).start();
    admin = api(service.url, ADMIN_KEY);
    work = await mkdtemp(join(tmpdir(), "tidings-cli-"));
  });
  after(async () => {
    await service?.close();
    await receiver?.stop();
    await db?.drop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const env = () => ({ TIDINGS_URL: service.url, TIDINGS_KEY: ADMIN_KEY });
  const tidings = (args: string[], options: { input?: string; cwd?: string; tty?: boolean; env?: Record<string, string> } = {}) =>
    runTidings(args, options.env ?? env(), 60_000, options);
  /** `tidings <args>`, which must exit 0: its standard output. */
  const ok = async (...args: string[]) => {
    const ran = await tidings(args);
    assert.equal(ran.code, 0, `tidings ${args.join(" ")}: ${ran.stderr}`);
    return ran.stdout;
  };
  const subscribe = async (name: string, topic: string, extra: Record<string, unknown> = {}) => {
    const created = await admin.post("/v1/subscriptions", { name, topic, endpoint: { type: "http", url: `${receiver.url}/${name}` }, ...extra });
    assert.equal(created.status, 201, JSON.stringify(created.body));
  };

  test("--help lists the commands of the README's table; a bad flag or a missing argument exits 2 with the usage", async () => {
    const [help, badFlag, missing, noCommand, noKey] = await Promise.all([
      ok("--help"),
      tidings(["send", "t.x", "--bogus"]),
      tidings(["get"]),
      tidings([]),
      tidings(["list"], { env: { TIDINGS_URL: service.url, TIDINGS_KEY: "", TIDINGS_ADMIN_KEY: "" } }),
    ]);
    const listed = [...help.matchAll(/^ {2}([a-z][a-z-]*)(?: [<[][^\s]+)?\s{2,}\S/gm)].map((m) => m[1]).filter((c) => c !== "help");
    const readme = await readFile(fileURLToPath(new URL("../../../README.md", import.meta.url)), "utf8");
    const inTable = [...readme.matchAll(/^\| `tidings ([a-z-]+)/gm)].map((m) => m[1]);
    assert.deepEqual(inTable, listed, "the README's table of commands is the help's list");

    assert.equal(badFlag.code, 2);
    assert.match(badFlag.stderr, /unknown option '--bogus'/);
    assert.match(badFlag.stderr, /Usage: tidings send \[options\] <topic>/);
    assert.deepEqual([missing.code, /missing required argument 'messageId'/.test(missing.stderr)], [2, true]);
    assert.deepEqual([noCommand.code, /Usage: tidings <command>/.test(noCommand.stderr)], [2, true]);
    assert.deepEqual([noKey.code, /--key or TIDINGS_KEY is required/.test(noKey.stderr)], [2, true]);
  });

  test("send (--data, a file, stdin), get, list with filters and paging, resend; --json prints the API's answers", async () => {
    await subscribe("orders", "order.paid");
    const file = join(work, "payload.json");
    await writeFile(file, JSON.stringify({ sn: 2 }));
    const [first, fromFile, fromStdin] = await Promise.all([
      tidings(["send", "order.paid", "--data", '{"sn":1}', "--key", "k1", "--header", "trace=abc", "--id", "order-1"]),
      tidings(["send", "order.paid", "--data-file", file, "-k", "k2", "--json"]),
      tidings(["send", "order.paid", "--key", "k1"], { input: '{"sn":3}' }),
    ]);
    assert.deepEqual([first.code, first.stdout], [0, "order-1\n"], first.stderr);
    const sentJson = JSON.parse(fromFile.stdout);
    assert.deepEqual([sentJson.topic, sentJson.key, sentJson.payload], ["order.paid", "k2", { sn: 2 }]);
    assert.match(fromStdin.stdout, /^[0-9a-f-]{36}\n$/, fromStdin.stderr);
    await waitFor("the three delivered", () => receiver.received.filter((r) => r.path === "/orders").length >= 3);

    const [shown, shownJson, byKey, page1] = await Promise.all([
      ok("get", "order-1"),
      ok("get", "order-1", "--json"),
      ok("list", "--topic", "order.paid", "--message-key", "k1", "--json"),
      ok("list", "--topic", "order.paid", "--limit", "2"),
    ]);
    assert.match(shown, /^message order-1$/m);
    assert.match(shown, /^ {2}headers +trace=abc$/m);
    assert.match(shown, /^ {2}payload +\{"sn":1\}$/m);
    assert.match(shown, /^ {2}orders +delivered +1 /m);
    assert.match(shown, /^ {2}\S+ +orders +1 +delivered +200 /m);
    const got = JSON.parse(shownJson);
    assert.deepEqual([got.id, got.deliveries[0].state, got.attempts[0].statusCode], ["order-1", "delivered", 200]);
    assert.deepEqual(
      JSON.parse(byKey).items.map((m: { key: string }) => m.key),
      ["k1", "k1"],
    );
    const cursor = /^more: --cursor (\d+)$/m.exec(page1)?.[1];
    assert.ok(cursor, page1);
    assert.equal(page1.split("\n")[0]!.trim().split(/ {2,}/).join("|"), "ID|APP|TOPIC|KEY|STATE|CREATED|PAYLOAD");
    const page2 = JSON.parse(await ok("list", "--topic", "order.paid", "--limit", "2", "--cursor", cursor, "--json"));
    // The three were sent at once: which is oldest is theirs to decide; the second page holds the one the first did not.
    assert.deepEqual([page2.items.length, page2.nextCursor, page1.includes(page2.items[0].id)], [1, null, false]);

    assert.equal(await ok("resend", "order-1"), "order-1: 1 delivery sent again\n");
    await waitFor("delivered again", () => receiver.received.filter((r) => r.path === "/orders" && r.id.endsWith("order-1")).length === 2);
  });

  test("an API refusal shows its message and field and exits 1; .env is read, the environment winning over it", async () => {
    const refused = await tidings(["send", "not a topic", "--data", "{}"]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^tidings send: POST \/v1\/messages: 400 .*\(field topic\)\n$/);
    const badJson = await tidings(["send", "t.x", "--data", "{nope"]);
    assert.deepEqual([badJson.code, /--data is not JSON/.test(badJson.stderr)], [2, true]);

    const dir = await mkdtemp(join(work, "dotenv-"));
    await writeFile(join(dir, ".env"), `TIDINGS_URL=${service.url}\nTIDINGS_KEY=${ADMIN_KEY}\n`);
    const fromFile = await tidings(["apps", "--json"], { cwd: dir, env: {} });
    assert.equal(fromFile.code, 0, fromFile.stderr);
    assert.ok(Array.isArray(JSON.parse(fromFile.stdout).items));
    const overridden = await tidings(["apps"], { cwd: dir, env: { TIDINGS_URL: "http://127.0.0.1:1" } });
    assert.deepEqual([overridden.code, /cannot reach http:\/\/127\.0\.0\.1:1/.test(overridden.stderr)], [1, true]);
  });

  test("apps: create (key printed once, working), list, update, rotate-key, delete", async () => {
    const created = await ok("apps", "create", "shop", "--read-topics", "order.paid");
    assert.match(created, /^app shop created$/m);
    const key = /API key \(shown this once\): +(\S+)/.exec(created)?.[1];
    assert.ok(key, created);
    const asApp = await tidings(["send", "shop.event", "--data", "1", "--api-key", key]);
    assert.equal(asApp.code, 0, asApp.stderr);

    const listed = await ok("apps");
    assert.match(listed, /^shop +enabled +- +order\.paid +\S+$/m);
    assert.match(await ok("apps", "update", "shop", "--disable"), /^app shop updated \(disabled\)$/m);
    const disabled = await tidings(["list"], { env: { TIDINGS_URL: service.url, TIDINGS_KEY: key } });
    assert.deepEqual([disabled.code, /403/.test(disabled.stderr)], [1, true]);
    const rotated = JSON.parse(await ok("apps", "rotate-key", "shop", "--json"));
    assert.match(rotated.apiKey, /\S{20,}/);
    assert.equal(await ok("apps", "delete", "shop"), "app shop deleted\n");
    const gone = await tidings(["apps", "delete", "shop"]);
    assert.deepEqual([gone.code, gone.stderr], [1, "tidings apps delete: no app named shop\n"]);
  });

  test("subscriptions: create, the table, update, delete; subscription <name> shows one", async () => {
    const created = await ok(
      "subscriptions",
      "create",
      "crm",
      "--topic",
      "user.created",
      "--endpoint",
      `${receiver.url}/crm`,
      "--retry",
      "1m,5m",
      "--ordering",
      "key",
    );
    assert.match(created, new RegExp(`^subscription crm created: user\\.created → ${receiver.url}/crm$`, "m"));
    assert.match(created, /^its signing secret, shown this once:\nwhsec_\S+$/m);
    const table = await ok("subscriptions", "--topic", "user.created");
    assert.match(table, /^crm +user\.created +\S+ +enabled +key, block /m);
    assert.match(await ok("subscriptions", "update", "crm", "--pause", "--rate-limit", "5"), /^subscription crm updated: .* \(paused\)$/m);
    assert.match(await ok("subscription", "crm"), /^ {2}rateLimit +5 attempts\/s/m);
    const invalid = await tidings(["subscriptions", "update", "crm", "--ordering", "sideways"]);
    assert.deepEqual([invalid.code, /400 .*\(field ordering\)/.test(invalid.stderr)], [1, true], invalid.stderr);
    assert.equal(await ok("subscriptions", "delete", "crm"), "subscription crm deleted\n");
  });

  test("resend-dead follows the job over 200 dead deliveries, progress lines before the last; --no-wait; jobs list and show", async () => {
    await subscribe("dead", "t.dead", { retry: { schedule: [], maxAttempts: 1 }, circuit: null });
    const sent = await admin.post("/v1/messages/batch", { messages: Array.from({ length: 200 }, (_, i) => ({ topic: "t.dead", payload: { i } })) });
    assert.equal(sent.status, 201);
    const dead = async () => (await admin.get("/v1/deliveries?state=dead&subscription=dead&limit=1000")).body.items.length;
    await waitFor("200 dead", async () => (await dead()) === 200);

    // On a terminal: a bar redrawn in place. The receiver still fails: the 50 re-sent die again.
    const onTty = await tidings(["resend-dead", "dead", "--limit", "50", "--batch-size", "1"], { tty: true });
    assert.equal(onTty.code, 0, onTty.stdout);
    assert.match(onTty.stdout, /^dead: re-send job \S+\r?\n\r {2}\[-{30}\] 0\/50 re-sent \(0%\), 0 batches, running/);
    // The last redraw, the rest of the line erased (ESC [K), then the line ends.
    assert.ok(
      // (the terminal writes each line end as CR LF)
      onTty.stdout.replaceAll("\r\n", "\n").endsWith(`\r  [${"#".repeat(30)}] 50/50 re-sent (100%), 50 batches, succeeded\u001b[K\n`),
      JSON.stringify(onTty.stdout.slice(-200)),
    );
    await waitFor("200 dead again", async () => (await dead()) === 200);
    down.delete("/dead");

    const followed = await ok("resend-dead", "dead", "--batch-size", "1");
    const lines = followed.trim().split("\n");
    assert.match(lines[0]!, /^dead: re-send job \S+$/);
    const progress = lines.slice(1).map((line) => /^ {2}(\d+)\/200 re-sent \((\d+)%\), (\d+) batches, (running|succeeded)$/.exec(line));
    assert.ok(progress.every(Boolean), followed);
    assert.ok(progress.length >= 2, `progress before the end:\n${followed}`);
    assert.equal(progress[0]![4], "running");
    const done = progress.map((p) => Number(p![1]));
    assert.deepEqual(
      done,
      [...done].sort((a, b) => a - b),
      "progress only grows",
    );
    assert.equal(lines.at(-1), "  200/200 re-sent (100%), 200 batches, succeeded");
    const jobId = lines[0]!.split(" ").at(-1)!;

    const [noWait, listed, shown] = await Promise.all([
      tidings(["resend-dead", "dead", "--no-wait"]),
      ok("jobs", "--subscription", "dead"),
      ok("jobs", "show", jobId, "--json"),
    ]);
    assert.match(noWait.stdout, /^\S+\n$/, noWait.stderr);
    assert.match(listed, new RegExp(`^${jobId} +resend_dead +dead +succeeded +200/200 `, "m"));
    assert.deepEqual([JSON.parse(shown).id, JSON.parse(shown).state], [jobId, "succeeded"]);
  });

  test("tail prints new messages and delivery changes, one line each, until Ctrl-C", async () => {
    await subscribe("tailed", "t.tail");
    down.add("/tailed");
    const since = new Date(Date.now() - 1000).toISOString();
    await admin.post("/v1/messages", { id: "tail-1", topic: "t.tail", key: "a", payload: {} });
    const tail = await spawnTidings(["tail", "--topic", "t.tail", "--since", since, "--interval", "100ms"], {
      env: env(),
      ready: /message +\S*tail-1 +t\.tail +key a +committed/,
    });
    try {
      await waitFor("the failed attempt", () => /delivery +\S*tail-1 → tailed +pending +attempt 1 +500/.test(tail.output()));
      down.delete("/tailed");
      await admin.post("/v1/messages/tail-1/resend", {});
      await waitFor("the delivery", () => /delivery +\S*tail-1 → tailed +delivered +attempt \d/.test(tail.output()));
      await admin.post("/v1/messages", { id: "tail-2", topic: "t.tail", payload: {} });
      await waitFor("the next message", () => /message +\S*tail-2 +t\.tail +committed/.test(tail.output()));
      assert.equal(tail.output().match(/tail-1 +t\.tail/g)?.length, 1, "each message once");
    } finally {
      await tail.kill("SIGINT");
    }
    assert.equal(tail.child.exitCode, 0);
  });

  test("doctor: ok for the service, database, migrations, key and clock; a failing endpoint fails it (exit 1)", async () => {
    await subscribe("broken", "t.broken", { retry: { schedule: ["1h"], maxAttempts: 3 }, circuit: { failures: 1, probeEvery: "1h" } });
    down.add("/broken");
    await admin.post("/v1/messages", { topic: "t.broken", payload: {} });
    await waitFor("the circuit open", async () => (await admin.get("/v1/subscriptions/broken")).body.health?.state === "open");

    const [checked, asJson, unreachable] = await Promise.all([
      tidings(["doctor"]),
      tidings(["doctor", "--json"]),
      tidings(["doctor", "--url", "http://127.0.0.1:1"]),
    ]);
    assert.equal(checked.code, 1, checked.stderr);
    const out = checked.stdout;
    assert.match(out, new RegExp(`^ok +service +${service.url} answers, version 0\\.1\\.0 \\(\\d+ ms\\)$`, "m"));
    assert.match(out, /^ok +clock +this machine and the service agree/m);
    assert.match(out, /^ok +database +reachable$/m);
    assert.match(out, /^ok +migrations +up to date \(\d+\)$/m);
    assert.match(out, /^ok +key +accepted$/m);
    assert.match(out, /^ok +endpoint orders +\S+\/orders answers HEAD 200 \(\d+ ms\); circuit closed$/m);
    assert.match(out, /^fail +endpoint broken +\S+\/broken answers HEAD 500 \(\d+ ms\); circuit open$/m);
    const report = JSON.parse(asJson.stdout);
    assert.equal(report.ok, false);
    assert.deepEqual(report.checks.find((c: { check: string }) => c.check === "endpoint broken").status, "fail");
    assert.deepEqual([unreachable.code, /^fail +service +http:\/\/127\.0\.0\.1:1 cannot be reached/m.test(unreachable.stdout)], [1, true]);
  });
});

test("a command reads at most MAX_ANSWER_BYTES of an answer: an endless one fails the command instead of filling its memory", async () => {
  let written = 0;
  const chunk = Buffer.alloc(1024 * 1024, 32);
  const server = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.write("[");
    // Chunked, no length said: written until the client stops reading (or far past the cap).
    const more = () => {
      while (written < MAX_ANSWER_BYTES * 2 && !res.destroyed) {
        written += chunk.length;
        if (!res.write(chunk)) return void res.once("drain", more);
      }
      res.end();
    };
    more();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const call = client(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, "key");
    await assert.rejects(
      call("GET", "/v1/messages"),
      (error: unknown) => error instanceof CommandError && /answer is larger than 67108864 bytes/.test(error.message),
    );
    assert.ok(written < MAX_ANSWER_BYTES * 2, `the server could write ${written} bytes: the client read on past the cap`);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
