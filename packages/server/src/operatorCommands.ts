import { parseArgs } from "node:util";
import { parseDuration } from "./domain/duration.ts";
import { aboutSubscription, client, CommandError, serviceUrl, subscriptionPath } from "./operatorClient.ts";
import { showSubscription, showSubscriptions } from "./subscriptionCommands.ts";

/**
 * `tidings retry-pending`, `recover`, `subscriptions` and `subscription`: clients of a running
 * service's HTTP API (they need no database), with the admin key.
 */
export const OPERATOR_USAGE = `usage: tidings subscriptions [--topic TOPIC] [--json] [--url URL] [--admin-key KEY]
       tidings subscription <subscription> [--json] [--url URL] [--admin-key KEY]
       tidings retry-pending <subscription> [--url URL] [--admin-key KEY]
       tidings recover <subscription> --since TIME [--until TIME] [--batch-size N] [--url URL] [--admin-key KEY]

  subscriptions   a table of the subscriptions (those of one topic with --topic): target, paused or not,
                  ordering, limits (rateLimit, maxInFlight), circuit state, pending and dead deliveries
  subscription    one subscription's policies (ordering, onDead, retry, maxInFlight, rateLimit, circuit),
                  its endpoint's health (circuit state, failures in a row, probe and throttle times)
                  and the circuit's last transitions
  retry-pending   every pending delivery of the subscription waiting for a retry is due now
  recover         re-send the dead and failed deliveries of the messages created in [--since, --until)
                  (ISO 8601 times with a zone, e.g. 2026-12-05T08:00:00Z, or a duration ago: 90m, 6h, 2d),
                  following the job to its end; the same window asked again answers the same job

  --json             subscriptions, subscription: print the API's answer as is
  --url URL          the service (env TIDINGS_URL, default http://127.0.0.1:7400)
  --admin-key KEY    the admin key, or an operator's key with the role needed (env TIDINGS_ADMIN_KEY)`;

/** How often `recover` reads its job's progress. */
const POLL_MS = 500;

/** A time as given, or a duration (`6h`) as that long before now. */
function when(value: string | undefined): string | undefined {
  const ago = value === undefined ? undefined : parseDuration(value);
  return ago === undefined ? value : new Date(Date.now() - ago).toISOString();
}

const progressLine = (job: Record<string, unknown>): string => {
  const total = Number(job.total);
  const done = Number(job.done);
  const pct = total === 0 ? 100 : Math.floor((done / total) * 100);
  return `${done}/${total} re-sent (${pct}%), ${job.batches} batches, ${job.state}`;
};

/** The options and the subscription given; throws on an unknown option or a missing value. */
function parseOperatorArgs(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: "string" },
      "admin-key": { type: "string" },
      since: { type: "string" },
      until: { type: "string" },
      "batch-size": { type: "string" },
      topic: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
}

const OPERATOR_COMMANDS = ["subscriptions", "subscription", "retry-pending", "recover"] as const;
export type OperatorCommand = (typeof OPERATOR_COMMANDS)[number];
export const isOperatorCommand = (command: string): command is OperatorCommand => (OPERATOR_COMMANDS as readonly string[]).includes(command);

/** Runs one of the operators' commands; resolves to the exit code. */
export async function runOperatorCommand(command: OperatorCommand, argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed: ReturnType<typeof parseOperatorArgs>;
  try {
    parsed = parseOperatorArgs(argv);
  } catch (error) {
    console.error(`tidings ${command}: ${(error as Error).message}\n\n${OPERATOR_USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(OPERATOR_USAGE);
    return 0;
  }
  const key = values["admin-key"] ?? env.TIDINGS_ADMIN_KEY;
  const subscription = positionals[0];
  const usage = (problem: string) => {
    console.error(`tidings ${command}: ${problem}\n\n${OPERATOR_USAGE}`);
    return 2;
  };
  if (command === "subscriptions" && positionals.length > 0) return usage("takes no subscription (tidings subscription <name> shows one)");
  if (command !== "subscriptions" && (!subscription || positionals.length > 1)) return usage("name one subscription");
  if (!key) return usage("--admin-key or TIDINGS_ADMIN_KEY is required");
  if (command === "recover" && !values.since) return usage("--since is required");
  if (values["batch-size"] !== undefined && !/^\d+$/.test(values["batch-size"])) return usage("--batch-size must be a whole number");
  const call = client(serviceUrl(values.url, env), key);
  try {
    if (command === "subscriptions") return await showSubscriptions(call, { topic: values.topic, json: values.json === true });
    if (command === "subscription") return await showSubscription(call, subscription!, { json: values.json === true });
    const path = subscriptionPath(subscription!);
    if (command === "retry-pending") {
      const { body } = await aboutSubscription(subscription!, () => call("POST", `${path}/retry-pending`));
      console.log(`${subscription}: ${body.retried} pending deliveries due now`);
      return 0;
    }
    const request = {
      since: when(values.since),
      until: when(values.until),
      batchSize: values["batch-size"] === undefined ? undefined : Number(values["batch-size"]),
    };
    // Answered at once (wait=0): the progress is printed here, as the job goes.
    const started = await aboutSubscription(subscription!, () => call("POST", `${path}/recover`, request, { prefer: "wait=0" }));
    let job = started.body;
    console.log(`${subscription}: recovery job ${job.id}${started.headers.get("idempotent-replayed") === "true" ? " (asked before: the same job)" : ""}`);
    let shown = "";
    for (;;) {
      const line = progressLine(job);
      if (line !== shown) console.log(`  ${line}`);
      shown = line;
      if (job.state !== "running") break;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      job = (await call("GET", `/v1/jobs/${encodeURIComponent(String(job.id))}`)).body;
    }
    if (job.state === "failed") {
      console.error(`tidings recover: the job failed: ${job.error}`);
      return 1;
    }
    return 0;
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    console.error(`tidings ${command}: ${error.message}`);
    return 1;
  }
}
