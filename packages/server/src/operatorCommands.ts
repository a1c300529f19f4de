import { parseArgs } from "node:util";
import { parseDuration } from "./domain/duration.ts";

/**
 * `tidings retry-pending` and `tidings recover`: clients of a running service's HTTP API (they
 * need no database), with the admin key.
 */
export const OPERATOR_USAGE = `usage: tidings retry-pending <subscription> [--url URL] [--admin-key KEY]
       tidings recover <subscription> --since TIME [--until TIME] [--batch-size N] [--url URL] [--admin-key KEY]

  retry-pending   every pending delivery of the subscription waiting for a retry is due now
  recover         re-send the dead and failed deliveries of the messages created in [--since, --until)
                  (ISO 8601 times with a zone, e.g. 2026-12-05T08:00:00Z, or a duration ago: 90m, 6h, 2d),
                  following the job to its end; the same window asked again answers the same job

  --url URL          the service (env TIDINGS_URL, default http://127.0.0.1:7400)
  --admin-key KEY    the admin key (env TIDINGS_ADMIN_KEY)`;

/** How often `recover` reads its job's progress. */
const POLL_MS = 500;

class CommandError extends Error {}

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown> & { error?: { message?: string; field?: string } };
}

/** Each call is answered at once (`recover` asks with `Prefer: wait=0` and polls). */
const CALL_TIMEOUT_MS = 30_000;

function client(url: string, key: string) {
  return async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> => {
    let response: Response;
    try {
      response = await fetch(new URL(path, url), {
        method,
        // One deadline per call: a service that stops answering ends the command instead of hanging it.
        signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
        headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { "content-type": "application/json" }), ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new CommandError(`cannot reach ${url}: ${(error as Error).cause ?? (error as Error).message}`);
    }
    const text = await response.text();
    let parsed: Answer["body"];
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      throw new CommandError(`${method} ${path}: the service answered ${response.status} with no JSON`);
    }
    if (response.status >= 400) {
      const e = parsed.error;
      throw new CommandError(`${method} ${path}: ${response.status} ${e?.message ?? ""}${e?.field ? ` (field ${e.field})` : ""}`);
    }
    return { status: response.status, headers: response.headers, body: parsed };
  };
}

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
      help: { type: "boolean", short: "h" },
    },
  });
}

/** Runs one of the operators' commands; resolves to the exit code. */
export async function runOperatorCommand(command: "retry-pending" | "recover", argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
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
  if (!subscription || positionals.length > 1) return usage("name one subscription");
  if (!key) return usage("--admin-key or TIDINGS_ADMIN_KEY is required");
  if (command === "recover" && !values.since) return usage("--since is required");
  if (values["batch-size"] !== undefined && !/^\d+$/.test(values["batch-size"])) return usage("--batch-size must be a whole number");
  const call = client(values.url ?? env.TIDINGS_URL ?? "http://127.0.0.1:7400", key);
  const path = `/v1/subscriptions/${encodeURIComponent(subscription)}`;
  try {
    if (command === "retry-pending") {
      const { body } = await call("POST", `${path}/retry-pending`);
      console.log(`${subscription}: ${body.retried} pending deliveries due now`);
      return 0;
    }
    const request = {
      since: when(values.since),
      until: when(values.until),
      batchSize: values["batch-size"] === undefined ? undefined : Number(values["batch-size"]),
    };
    // Answered at once (wait=0): the progress is printed here, as the job goes.
    const started = await call("POST", `${path}/recover`, request, { prefer: "wait=0" });
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
