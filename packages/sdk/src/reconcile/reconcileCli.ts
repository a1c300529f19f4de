import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { TidingsClient } from "../client/client.ts";
import type { Envelope } from "../domain/envelope.ts";
import { parseDuration } from "../domain/duration.ts";
import type { ReconciliationReport } from "../client/apiTypes.ts";
import { connect } from "../executor/connect.ts";
import type { Executor } from "../executor/executor.ts";
import { Inbox } from "../inbox/inbox.ts";
import { Reconciler } from "./reconciler.ts";

export const RECONCILE_USAGE = `usage: tidings reconcile (--consumer SUBSCRIPTION | --topic TOPIC | --producer --topic TOPIC) [options]

Runs one reconciliation over a window and exits (a job for cron or a scheduler):
  a consumer: the service's committed messages of its subscription against its inbox, the
    missing ones applied through the inbox by --handler (without one they are only listed);
  a producer: its outbox rows of a topic against the service, rows marked sent that it does not know
    put back to be sent (--no-repair: only listed), and the rows the relay gave up on.
The report is sent to the service and printed. Exit code 0: nothing left to set right;
1: differences remain (listed); 2: bad options or the run failed.

  --consumer NAME      the subscription to reconcile (its consumer's database and inbox)
  --topic TOPIC        or a topic (the app needs it in its readTopics); with --producer, the outbox's topic
  --producer           reconcile the producer's outbox rows of --topic instead
  --since TIME         the window's start, ISO 8601 (or --window)
  --until TIME         the window's end (now)
  --window DURATION    the window up to --until, e.g. 2h (instead of --since)
  --handler MODULE     a module exporting handle(message, tx) (named or default): the business change
  --inbox NAME         the inbox's consumer name (default)
  --no-repair          only find: apply nothing, put nothing back
  --database-url URL   the consumer's or producer's database, postgres:// or mysql:// (env DATABASE_URL)
  --url URL            the Tidings service (env TIDINGS_URL)
  --api-key KEY        the app's API key (env TIDINGS_API_KEY)
  --page-size N        messages compared per page (1000)
  --name NAME          who ran it, in the report (host:pid)
  --json               print the report as JSON`;

type Handle = (message: Envelope, tx: Executor) => Promise<unknown>;

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      consumer: { type: "string" },
      topic: { type: "string" },
      producer: { type: "boolean" },
      since: { type: "string" },
      until: { type: "string" },
      window: { type: "string" },
      handler: { type: "string" },
      inbox: { type: "string" },
      "no-repair": { type: "boolean" },
      "database-url": { type: "string" },
      url: { type: "string" },
      "api-key": { type: "string" },
      "page-size": { type: "string" },
      name: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  }).values;
}

/** The handler a module exports: `handle` or its default export. */
async function loadHandler(path: string): Promise<Handle> {
  const module = (await import(pathToFileURL(resolve(path)).href)) as { handle?: unknown; default?: unknown };
  const handle = typeof module.handle === "function" ? module.handle : module.default;
  if (typeof handle !== "function") throw new Error(`${path} exports no handle(message, tx) function (named handle, or the default export)`);
  return handle as Handle;
}

function print(report: ReconciliationReport): void {
  const what = report.kind === "consumer" ? `consumer ${report.subscription ?? `topic ${report.topic}`}` : "producer";
  const c = report.counts;
  console.log(
    `tidings reconcile: ${what} ${report.since} .. ${report.until}: checked ${c.checked}, missing ${c.missing}, repaired ${c.repaired}, failed ${c.failed}`,
  );
  for (const d of report.differences) console.log(`  ${d.problem} ${d.id}: ${d.action}${d.error ? `: ${d.error}` : ""}`);
  if (report.differencesOmitted) console.log(`  … and ${report.differencesOmitted} more`);
}

/** `tidings reconcile`: one run; resolves to the exit code. */
export async function runReconcileCli(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const fail = (message: string) => {
    console.error(`tidings reconcile: ${message}\n\n${RECONCILE_USAGE}`);
    return 2;
  };
  let args: ReturnType<typeof parse>;
  try {
    args = parse(argv);
  } catch (error) {
    return fail((error as Error).message);
  }
  if (args.help) {
    console.log(RECONCILE_USAGE);
    return 0;
  }
  if (args.producer ? args.topic === undefined || args.consumer !== undefined : (args.consumer === undefined) === (args.topic === undefined)) {
    return fail("give --consumer SUBSCRIPTION, --topic TOPIC, or --producer --topic TOPIC");
  }
  if ((args.since === undefined) === (args.window === undefined)) return fail("give --since or --window (one of them)");
  const databaseUrl = args["database-url"] ?? env.DATABASE_URL;
  const url = args.url ?? env.TIDINGS_URL;
  const apiKey = args["api-key"] ?? env.TIDINGS_API_KEY;
  if (!databaseUrl || !url || !apiKey) return fail("--database-url, --url and --api-key are required (or DATABASE_URL, TIDINGS_URL, TIDINGS_API_KEY)");
  if (args["page-size"] !== undefined && !/^\d+$/.test(args["page-size"])) return fail(`--page-size must be a whole number, got "${args["page-size"]}"`);
  const repair = args["no-repair"] !== true;
  let window: { since: Date; until: Date };
  let handle: Handle | undefined;
  try {
    const until = args.until === undefined ? new Date() : new Date(args.until);
    if (Number.isNaN(until.getTime())) return fail(`--until must be a time (ISO 8601), got "${args.until}"`);
    const since = args.since !== undefined ? new Date(args.since) : new Date(until.getTime() - parseDuration(args.window!, "--window"));
    if (Number.isNaN(since.getTime())) return fail(`--since must be a time (ISO 8601), got "${args.since}"`);
    window = { since, until };
    if (args.handler !== undefined && repair) handle = await loadHandler(args.handler);
  } catch (error) {
    return fail((error as Error).message);
  }
  if (!args.producer && repair && handle === undefined) console.error("tidings reconcile: no --handler: the missing messages are listed, not applied");

  const connection = await connect(databaseUrl);
  try {
    const client = new TidingsClient({ url, apiKey });
    const common = {
      client,
      db: connection.db,
      name: args.name,
      pageSize: args["page-size"] === undefined ? undefined : Number(args["page-size"]),
      onEvent: (e: { type: string; error?: unknown }) => {
        if (e.type === "report_failed") console.error(`tidings reconcile: the report was not sent: ${(e.error as Error)?.message ?? String(e.error)}`);
      },
    };
    const reconciler = args.producer
      ? new Reconciler({ ...common, producer: { topic: args.topic!, repair } })
      : new Reconciler({
          ...common,
          consumer: {
            ...(args.consumer !== undefined ? { subscription: args.consumer } : { topic: args.topic! }),
            inbox: new Inbox({ consumer: args.inbox ?? "default", cleanupIntervalMs: 0 }),
            handle,
          },
        });
    const report = await reconciler.run(window);
    if (args.json) console.log(JSON.stringify(report, null, 2));
    else print(report);
    return report.counts.missing > report.counts.repaired ? 1 : 0;
  } catch (error) {
    console.error(`tidings reconcile: ${(error as Error).message}`);
    return 2;
  } finally {
    await connection.close();
  }
}
