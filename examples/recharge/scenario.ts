import { randomBytes } from "node:crypto";
import pg from "pg";
import { fromPg, Inbox, migrate, Outbox, Reconciler, TidingsClient, type Executor, type ReconciliationReport } from "@tidings/sdk";
import { ACCOUNT_SCHEMA, credit, startAccountServer, type FlakyStats } from "./accountService.ts";
import { runTidings, type Child } from "./processes.ts";
import { expectedBalances, RECHARGE_SCHEMA, RECHARGE_TOPIC, recordRecharge } from "./rechargeService.ts";

export interface ScenarioOptions {
  /** A PostgreSQL the scenario may create (and drop) databases on. */
  postgresUrl: string;
  recharges?: number;
  accounts?: number;
  /** Share of the account service's calls that fail; default 0.3. */
  failureRate?: number;
  /** How many times the relay process is killed with SIGKILL; default 2. */
  relayKills?: number;
  /** How long the account service is down, half way through (every call answered 503); default 3000 ms. */
  downMs?: number;
  /** Producers recording recharges at once; default 8. */
  producers?: number;
  seed?: number;
  log?: (line: string) => void;
  /** Keep the databases afterwards (to look at them). */
  keep?: boolean;
}

export interface ScenarioResult {
  recharges: number;
  accounts: number;
  seed: number;
  relayKills: Array<{ afterSent: number; pendingAtKill: number }>;
  receiver: FlakyStats;
  /** The account service's reconciliation runs (every second, over the last 10 minutes but the last 2 seconds). */
  reconciliation: { runs: number; repaired: number; failed: number; reportsSent: number; finalMissing: number };
  outbox: { pending: number; sent: number; failed: number };
  inbox: { applied: number; failed: number; attempts: number };
  /** Rows in the account service's credit journal, and distinct message ids among them. */
  credits: { rows: number; distinctMessages: number };
  /** Accounts whose balance is not the sum of their recharges (expected: none). */
  wrongBalances: Array<{ account: string; expected: number; actual: number }>;
  balancesChecked: number;
  seconds: number;
}

/** A small seeded PRNG (mulberry32), so a run can be repeated. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function createDatabase(adminUrl: string, name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

async function dropDatabases(adminUrl: string, names: string[]): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    for (const name of names) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}

async function api(url: string, key: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const response = await fetch(url + path, {
    method: body === undefined ? "GET" : "POST",
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await response.json()) as Record<string, unknown>;
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status} ${JSON.stringify(json)}`);
  return json;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

/**
 * The recharge -> account demo, for real: a recharge service and an account service, each with its own
 * PostgreSQL database; recharges go out through the outbox, a `tidings relay` process ships them
 * to a `tidings serve` process, which notifies the account service's webhook receiver. The
 * receiver fails a share of its calls (before or after its commit), the relay is killed with
 * SIGKILL along the way, and the account service is down for a while half way: the
 * subscription gives up after 4 attempts, and the account service's scheduled reconciliation
 * applies what it missed. At the end every balance must equal the sum of its recharges.
 */
export async function runRechargeScenario(options: ScenarioOptions): Promise<ScenarioResult> {
  const started = Date.now();
  const total = options.recharges ?? 2000;
  const accountCount = options.accounts ?? 50;
  const failureRate = options.failureRate ?? 0.3;
  const kills = options.relayKills ?? 2;
  const downMs = options.downMs ?? 3000;
  const seed = options.seed ?? randomBytes(4).readUInt32BE(0);
  const random = prng(seed);
  const log = options.log ?? (() => undefined);
  const suffix = randomBytes(4).toString("hex");
  const names = { service: `tidings_demo_service_${suffix}`, recharge: `tidings_demo_recharge_${suffix}`, account: `tidings_demo_account_${suffix}` };

  const children: Child[] = [];
  const pools: pg.Pool[] = [];
  let accountServer: Awaited<ReturnType<typeof startAccountServer>> | null = null;
  let reconciler: Reconciler | null = null;
  try {
    const urls = {
      service: await createDatabase(options.postgresUrl, names.service),
      recharge: await createDatabase(options.postgresUrl, names.recharge),
      account: await createDatabase(options.postgresUrl, names.account),
    };
    log(`databases: ${names.service} (service), ${names.recharge} (recharge service), ${names.account} (account service)`);

    const adminKey = `demo-admin-${randomBytes(12).toString("hex")}`;
    const service = await runTidings(
      ["serve"],
      { DATABASE_URL: urls.service, TIDINGS_PORT: "0", TIDINGS_ADMIN_KEY: adminKey, TIDINGS_LOG_LEVEL: "warn", TIDINGS_POLL_INTERVAL: "200ms" },
      /Tidings is running at (\S+)/,
    );
    children.push(service);
    const serviceUrl = service.ready;
    log(`tidings serve: ${serviceUrl} (pid ${service.process.pid})`);

    const rechargePool = new pg.Pool({ connectionString: urls.recharge, max: 10 });
    const accountPool = new pg.Pool({ connectionString: urls.account, max: 10 });
    pools.push(rechargePool, accountPool);
    const rechargeDb: Executor = fromPg(rechargePool);
    const accountDb: Executor = fromPg(accountPool);
    await migrate(rechargeDb);
    await rechargeDb.query(RECHARGE_SCHEMA);
    await migrate(accountDb);
    for (const ddl of ACCOUNT_SCHEMA) await accountDb.query(ddl);

    const app = await api(serviceUrl, adminKey, "/v1/apps", { name: "recharge" });
    const apiKey = String(app.apiKey);
    const inbox = new Inbox({ consumer: "account" });
    const server = await startAccountServer({ db: accountDb, inbox, failureRate, random });
    accountServer = server;
    // Short retries, and few: a delivery that runs out of them (the account service down, or
    // unlucky) goes dead, and the account service's reconciliation applies its message instead.
    const subscription = await api(serviceUrl, adminKey, "/v1/subscriptions", {
      name: "account",
      topic: RECHARGE_TOPIC,
      endpoint: { type: "http", url: server.url },
      retry: { schedule: ["50ms", "100ms", "200ms"], maxAttempts: 4 },
      // No circuit breaker, so that the deliveries of the outage go dead (with one, they would
      // wait for its probe, up to 30 s, and be sent then; reconciliation would catch them up first).
      circuit: null,
    });
    server.use(String(subscription.secret));
    log(`account service receiver: ${server.url} (fails ${Math.round(failureRate * 100)}% of calls, half before and half after its commit; 4 attempts)`);

    // The account service reconciles: every second, the service's committed recharges of the
    // last 10 minutes against its inbox (its own app's key, which may read the topic), leaving
    // out the last 2 seconds: those deliveries are still being tried.
    const accountApp = await api(serviceUrl, adminKey, "/v1/apps", { name: "account", readTopics: [RECHARGE_TOPIC] });
    const reports: ReconciliationReport[] = [];
    let reportsSent = 0;
    reconciler = new Reconciler({
      client: new TidingsClient({ url: serviceUrl, apiKey: String(accountApp.apiKey) }),
      db: accountDb,
      consumer: { subscription: "account", inbox, handle: credit },
      name: "account-service",
      onEvent(event) {
        if (event.type === "run") {
          reports.push(event.report);
          reportsSent++;
          if (event.report.counts.repaired > 0)
            log(`reconciliation: ${event.report.counts.checked} checked, ${event.report.counts.repaired} missed recharges applied`);
        } else if (event.type === "report_failed") reportsSent--;
        else log(`reconciliation failed: ${String(event.error)}`);
      },
    });
    reconciler.start({ every: "1s", window: "10m", delay: "2s" });

    const relayArgs = ["relay", "--database-url", urls.recharge, "--url", serviceUrl, "--api-key", apiKey, "--batch-size", "50", "--quiet"];
    const startRelay = async () => {
      const relay = await runTidings(relayArgs, {}, /tidings relay is running/);
      children.push(relay);
      log(`tidings relay started (pid ${relay.process.pid})`);
      return relay;
    };
    let relay = await startRelay();
    const outbox = new Outbox({ db: rechargeDb });

    // Producers record recharges while a watcher kills the relay at 1/(kills+1), 2/(kills+1)... of the way.
    const relayKills: ScenarioResult["relayKills"] = [];
    let produced = 0;
    const producers = Array.from({ length: options.producers ?? 8 }, async () => {
      while (produced < total) {
        const n = ++produced;
        await recordRecharge(rechargeDb, outbox, {
          rechargeNo: `R${String(n).padStart(6, "0")}`,
          account: `acct-${String(Math.floor(random() * accountCount)).padStart(3, "0")}`,
          amount: 1 + Math.floor(random() * 500),
        });
      }
    });
    const watcher = (async () => {
      for (let k = 1; k <= kills; k++) {
        const threshold = Math.floor((total * k) / (kills + 1));
        await until(`${threshold} rows sent`, async () => (await outbox.counts()).sent >= threshold, 120_000);
        await relay.kill("SIGKILL");
        const counts = await outbox.counts();
        relayKills.push({ afterSent: counts.sent, pendingAtKill: counts.pending });
        log(`relay killed with SIGKILL after ${counts.sent} sent; ${counts.pending} rows pending in the outbox`);
        await sleep(300);
        relay = await startRelay();
      }
    })();
    // Half way, the account service goes down for a while: the deliveries of that time go dead.
    const outage = (async () => {
      if (downMs <= 0) return;
      await until(`${Math.floor(total / 2)} rows sent`, async () => (await outbox.counts()).sent >= Math.floor(total / 2), 120_000);
      server.setDown(true);
      log(`account service down for ${downMs} ms (every call answered 503)`);
      await sleep(downMs);
      server.setDown(false);
      log(`account service back up after ${server.stats.refusedWhileDown} calls refused`);
    })();
    await Promise.all(producers);
    log(`${total} recharges recorded`);
    await watcher;
    await outage;

    await until("every outbox row sent", async () => (await outbox.counts()).sent === total, 120_000);
    log(`outbox: all ${total} rows sent`);
    await until("every recharge applied", async () => (await inbox.counts(accountDb)).applied === total, 180_000);
    // Deliveries whose reply was "lost" after commit are still being retried: wait for them too.
    await until(
      "no delivery pending",
      async () => ((await api(serviceUrl, adminKey, "/v1/messages?deliveryState=pending&limit=1")).items as unknown[]).length === 0,
      180_000,
    );
    log("service: no delivery pending");
    await reconciler.stop();
    // One more run over everything: nothing may be missing now.
    const last = await reconciler.run({ since: new Date(started - 60_000) });
    log(`reconciliation: a last run checked ${last.counts.checked}, ${last.counts.missing} missing`);

    // The checks.
    const expected = await expectedBalances(rechargeDb);
    const actualRows = await accountDb.query<{ id: string; balance: string }>("SELECT id, balance FROM accounts");
    const actual = new Map(actualRows.map((r) => [r.id, Number(r.balance)]));
    const wrongBalances: ScenarioResult["wrongBalances"] = [];
    for (const account of new Set([...expected.keys(), ...actual.keys()])) {
      const e = expected.get(account) ?? 0;
      const a = actual.get(account) ?? 0;
      if (e !== a) wrongBalances.push({ account, expected: e, actual: a });
    }
    const [creditRow] = await accountDb.query<{ rows: string; distinct_messages: string }>(
      "SELECT COUNT(*) AS rows, COUNT(DISTINCT message_id) AS distinct_messages FROM credits",
    );
    const [inboxRow] = await accountDb.query<{ applied: string; failed: string; attempts: string }>(
      "SELECT COUNT(*) FILTER (WHERE status = 'applied') AS applied, COUNT(*) FILTER (WHERE status = 'failed') AS failed, COALESCE(SUM(attempts), 0) AS attempts FROM tidings_inbox",
    );
    await relay.kill("SIGTERM");

    return {
      recharges: total,
      accounts: expected.size,
      seed,
      relayKills,
      receiver: { ...server.stats },
      reconciliation: {
        runs: reports.length,
        repaired: reports.reduce((n, r) => n + r.counts.repaired, 0),
        failed: reports.reduce((n, r) => n + r.counts.failed, 0),
        reportsSent,
        finalMissing: last.counts.missing,
      },
      outbox: await outbox.counts(),
      inbox: { applied: Number(inboxRow!.applied), failed: Number(inboxRow!.failed), attempts: Number(inboxRow!.attempts) },
      credits: { rows: Number(creditRow!.rows), distinctMessages: Number(creditRow!.distinct_messages) },
      wrongBalances,
      balancesChecked: expected.size,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await reconciler?.stop();
    await accountServer?.close();
    for (const child of children.reverse()) await child.kill("SIGKILL");
    for (const pool of pools) await pool.end();
    if (!options.keep) await dropDatabases(options.postgresUrl, Object.values(names));
  }
}
