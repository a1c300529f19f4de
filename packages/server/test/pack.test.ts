// The published packages as a user gets them: built and packed (scripts/pack.mjs), installed from
// the tarballs into a project outside the workspace, and run by plain `node` with no TypeScript
// loader: the service from the server package's `tidings` command, a producer (outbox + relay,
// and transaction()) and a receiver written against the installed SDK.
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import pg from "pg";
import { createTestDatabase, type TestDatabase } from "@tidings/testkit/db";
import { waitFor } from "@tidings/testkit/wait";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const run = promisify(execFile);
const ADMIN_KEY = "pack-test-admin-key-0123456789";

const cleanups: Array<() => Promise<unknown>> = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
});

/** What the processes of the installed project see: no loader (NODE_OPTIONS cleared), node on the PATH for the bin's shebang. */
function envFor(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { ...process.env, NODE_OPTIONS: "", PATH: `${dirname(process.execPath)}:${process.env.PATH}`, ...extra };
}

/** Starts a long-running process of the installed project; resolves with the first match of `ready` in its output. */
async function start(command: string, args: string[], cwd: string, env: Record<string, string>, ready: RegExp) {
  const child: ChildProcess = spawn(command, args, { cwd, env: envFor(env), stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    const code = await exited;
    clearTimeout(timer);
    return code;
  };
  cleanups.push(stop);
  const ended = exited.then((code) => {
    throw new Error(`${args.join(" ")} exited (${code}) before it was ready:\n${out}`);
  });
  const match = await Promise.race([waitFor(`${args.join(" ")} to be ready`, () => ready.exec(out), 30_000), ended]);
  return { match, output: () => out, stop };
}

async function admin(url: string, method: string, path: string, body: unknown): Promise<any> {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  assert.ok(response.ok, `${method} ${path}: HTTP ${response.status} ${JSON.stringify(answer)}`);
  return answer;
}

const RECEIVER = `import http from "node:http";
import pg from "pg";
import { createReceiver, fromPg, Inbox, migrate, nodeHandler } from "@tidings/sdk";

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
const db = fromPg(pool);
await migrate(db);
await db.query("create table if not exists received (id text primary key, sn text not null)");
const receiver = createReceiver({
  secret: process.env.SUBSCRIPTION_SECRET,
  db,
  inbox: new Inbox({ consumer: "inventory" }),
  handle: async (message, tx) => {
    await tx.query("insert into received (id, sn) values ($1, $2)", [message.id, message.payload.sn]);
  },
});
const server = http.createServer(nodeHandler(receiver)).listen(0, "127.0.0.1", () => {
  console.log(\`receiving at http://127.0.0.1:\${server.address().port}/hooks\`);
});
process.on("SIGTERM", () => server.close(() => pool.end()));
`;

const PRODUCER = `import pg from "pg";
import { fromPg, migrate, Outbox, TidingsClient } from "@tidings/sdk";

console.log("sdk from", import.meta.resolve("@tidings/sdk"));
const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
const db = fromPg(pool);
await migrate(db);
await db.query("create table if not exists orders (sn text primary key)");
const tidings = { url: process.env.TIDINGS_URL, apiKey: process.env.TIDINGS_API_KEY };
const outbox = new Outbox({ db, tidings });
for (const sn of ["1001", "1002"]) {
  await db.transaction(async (tx) => {
    await tx.query("insert into orders (sn) values ($1)", [sn]);
    await outbox.add(tx, { id: \`order-\${sn}-paid\`, topic: "order.paid", key: sn, payload: { sn } });
  });
}
await outbox.start();
const client = new TidingsClient({ ...tidings, secret: process.env.TIDINGS_APP_SECRET });
await client.transaction(db, { id: "order-1003-paid", topic: "order.paid", key: "1003", payload: { sn: "1003" } }, async (tx) => {
  await tx.query("insert into orders (sn) values ($1)", ["1003"]);
});
console.log("produced");
process.on("SIGTERM", async () => {
  await outbox.stop();
  await pool.end();
});
`;

// The packages' declarations as a TypeScript user compiles against them: a wrong call must be an
// error (were the types missing, everything would be \`any\` and the directive unused: an error too).
const TYPES_CHECK = `import { Outbox, TidingsError, type Envelope } from "@tidings/sdk";
import { parseDuration } from "@tidings/server";
const outbox: Outbox = new Outbox({ tidings: { url: "http://127.0.0.1:7400", apiKey: "key" } });
export const ms: number | undefined = parseDuration("10s");
export const topicOf = (m: Envelope): string => m.topic;
export const codeOf = (e: unknown): string | null => (e instanceof TidingsError ? e.code : null);
// @ts-expect-error: a message needs a topic
void outbox.add(null as never, { id: "order-1-paid" });
`;

test("the packed SDK and server, installed from their tarballs without a TypeScript loader, carry a producer's messages to a receiver", async () => {
  const work = await mkdtemp(join(tmpdir(), "tidings-pack-"));
  cleanups.push(() => rm(work, { recursive: true, force: true }));
  const timings: string[] = [];
  const timed = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    const value = await fn();
    timings.push(`${what} ${Math.round(performance.now() - t0)} ms`);
    return value;
  };

  const out = join(work, "packages");
  await timed("pack", () => run(process.execPath, [join(ROOT, "scripts/pack.mjs"), "--quiet", "--out", out], { cwd: ROOT }));
  const tarballs = (await readdir(out)).filter((f) => f.endsWith(".tgz")).sort();
  assert.deepEqual(tarballs, ["tidings-sdk-0.1.0.tgz", "tidings-server-0.1.0.tgz"]);

  const app = join(work, "app");
  await run("mkdir", [app]);
  await writeFile(join(app, "package.json"), JSON.stringify({ name: "pack-test-app", private: true, type: "module" }));
  await timed("npm install", () =>
    run("npm", ["install", ...tarballs.map((f) => join(out, f)), "pg", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"], {
      cwd: app,
      env: envFor({}),
    }),
  );
  await writeFile(join(app, "receiver.mjs"), RECEIVER);
  await writeFile(join(app, "producer.mjs"), PRODUCER);

  // `npx tidings` from the installed server: built JavaScript behind a shebang.
  const help = await run("npx", ["--no", "--", "tidings", "--help"], { cwd: app, env: envFor({}) });
  assert.match(help.stdout, /Usage: tidings <command>/);
  // `tidings relay` is the installed SDK's (its "./relay-cli" export).
  const relayHelp = await run("npx", ["--no", "--", "tidings", "relay", "--help"], { cwd: app, env: envFor({}) });
  assert.match(relayHelp.stdout, /--database-url/);
  // JavaScript and declarations only: no TypeScript source for Node to refuse inside node_modules.
  for (const pkg of ["sdk", "server"]) {
    const { stdout } = await run("find", [join(app, "node_modules/@tidings", pkg), "-name", "*.ts", "-not", "-name", "*.d.ts"]);
    assert.equal(stdout, "", `TypeScript sources in @tidings/${pkg}`);
  }

  // Empty databases: the service's migrations and the SDK's tables come from the SQL inside the packages.
  const databases: TestDatabase[] = [];
  cleanups.push(() => Promise.all(databases.map((d) => d.drop())));
  for (const label of ["pack_service", "pack_producer", "pack_consumer"]) databases.push(await createTestDatabase(label, { empty: true }));
  const [serviceDb, producerDb, consumerDb] = databases as [TestDatabase, TestDatabase, TestDatabase];

  const service = await timed("service start", () =>
    start(
      join(app, "node_modules/.bin/tidings"),
      ["serve"],
      app,
      {
        DATABASE_URL: serviceDb.url,
        TIDINGS_PORT: "0",
        TIDINGS_ADMIN_KEY: ADMIN_KEY,
        TIDINGS_DATA_DIR: join(work, "data"),
        TIDINGS_LOG_LEVEL: "warn",
        TIDINGS_POLL_INTERVAL: "100ms",
      },
      /Tidings is running at (\S+)/,
    ),
  );
  const url = service.match[1]!;
  const producerApp = await admin(url, "POST", "/v1/apps", { name: "orders" });
  // The receiver needs the subscription's secret, the subscription the receiver's address: the
  // subscription comes first (nothing is published yet), its endpoint is set once the receiver listens.
  const subscription = await admin(url, "POST", "/v1/subscriptions", {
    name: "inventory",
    topic: "order.paid",
    endpoint: { type: "http", url: "http://127.0.0.1:9/hooks" },
  });
  const receiver = await start(
    process.execPath,
    ["receiver.mjs"],
    app,
    { DATABASE_URL: consumerDb.url, SUBSCRIPTION_SECRET: subscription.secret },
    /receiving at (\S+)/,
  );
  await admin(url, "PATCH", "/v1/subscriptions/inventory", { endpoint: { type: "http", url: receiver.match[1]! } });

  const producer = await timed("producer", () =>
    start(
      process.execPath,
      ["producer.mjs"],
      app,
      { DATABASE_URL: producerDb.url, TIDINGS_URL: url, TIDINGS_API_KEY: producerApp.apiKey, TIDINGS_APP_SECRET: producerApp.secret },
      /produced/,
    ),
  );
  assert.match(producer.output(), new RegExp(`sdk from file://${app}/node_modules/@tidings/sdk/dist/index\\.js`));

  const consumer = new pg.Client({ connectionString: consumerDb.url });
  await consumer.connect();
  cleanups.push(() => consumer.end());
  const expected = ["orders/order-1001-paid", "orders/order-1002-paid", "orders/order-1003-paid"];
  const received = await waitFor(`the receiver to apply ${expected.join(", ")}`, async () => {
    const { rows } = await consumer.query<{ id: string }>("select id from received order by id");
    return rows.length === expected.length ? rows.map((r) => r.id) : null;
  });
  assert.deepEqual(received, expected);
  const { rows: inbox } = await consumer.query<{ n: number }>("select count(*)::int as n from tidings_inbox where status = 'applied'");
  assert.equal(inbox[0]!.n, 3, "each message recorded once in the receiver's inbox");

  assert.equal(await producer.stop(), 0, producer.output());
  assert.equal(await receiver.stop(), 0, receiver.output());
  assert.equal(await service.stop(), 0, service.output());

  await writeFile(join(app, "check.ts"), TYPES_CHECK);
  await writeFile(
    join(app, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        module: "nodenext",
        moduleResolution: "nodenext",
        noEmit: true,
        skipLibCheck: true,
        typeRoots: [join(ROOT, "node_modules/@types")],
        types: ["node"],
      },
      files: ["check.ts"],
    }),
  );
  await timed("tsc", () =>
    run(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], { cwd: app }).catch((error) => {
      throw new Error(`the packages' declarations do not compile: ${error.stdout}`);
    }),
  );
  console.log(`pack test: ${timings.join(", ")}`);
});
