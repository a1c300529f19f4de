import { parseArgs } from "node:util";
import { TidingsClient } from "../client/client.ts";
import { connect } from "../executor/connect.ts";
import { migrate } from "../schema/migrate.ts";
import { Relay, type RelayEvent, type RelayOptions } from "./relay.ts";

export const RELAY_USAGE = `usage: tidings relay [options]

Ships the rows of a tidings_outbox table to the Tidings service (the outbox sidecar).

  --database-url URL   the producer's database, postgres:// or mysql:// (env DATABASE_URL)
  --url URL            the Tidings service (env TIDINGS_URL)
  --api-key KEY        the producer app's API key (env TIDINGS_API_KEY)
  --batch-size N       rows per batch call (500)
  --concurrency N      batches in flight (1)
  --poll-interval MS   the compensation scan (1000 with LISTEN on PostgreSQL, else 200)
  --max-attempts N     sends before a row is marked failed (25)
  --retention-days N   delete sent rows after N days (7)
  --name NAME          the relay's name in its heartbeats (host:pid)
  --heartbeat-interval MS
                       how often it reports its counts to the service (10000; 0: never)
  --app NAME           the app it ships for, with the admin key only
  --migrate            create/update the SDK's tables first
  --quiet              print errors only
  --debug              print each heartbeat that failed too`;

function int(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new Error(`--${name} must be a whole number, got "${value}"`);
  return Number(value);
}

/** The options given; throws on an unknown option or a missing value. */
function parseRelayArgs(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      "database-url": { type: "string" },
      url: { type: "string" },
      "api-key": { type: "string" },
      "batch-size": { type: "string" },
      concurrency: { type: "string" },
      "poll-interval": { type: "string" },
      "max-attempts": { type: "string" },
      "retention-days": { type: "string" },
      name: { type: "string" },
      "heartbeat-interval": { type: "string" },
      app: { type: "string" },
      debug: { type: "boolean" },
      migrate: { type: "boolean" },
      quiet: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  }).values;
}

/** `tidings relay`: runs until SIGINT/SIGTERM; resolves to the exit code. */
export async function runRelayCli(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let args: ReturnType<typeof parseRelayArgs>;
  try {
    args = parseRelayArgs(argv);
  } catch (error) {
    console.error(`tidings relay: ${(error as Error).message}\n\n${RELAY_USAGE}`);
    return 2;
  }
  if (args.help) {
    console.log(RELAY_USAGE);
    return 0;
  }
  const databaseUrl = args["database-url"] ?? env.DATABASE_URL;
  const url = args.url ?? env.TIDINGS_URL;
  const apiKey = args["api-key"] ?? env.TIDINGS_API_KEY;
  if (!databaseUrl || !url || !apiKey) {
    console.error(`tidings relay: --database-url, --url and --api-key are required (or DATABASE_URL, TIDINGS_URL, TIDINGS_API_KEY)\n\n${RELAY_USAGE}`);
    return 2;
  }
  let options: RelayOptions;
  try {
    const days = int("retention-days", args["retention-days"]);
    options = {
      batchSize: int("batch-size", args["batch-size"]),
      concurrency: int("concurrency", args.concurrency),
      pollIntervalMs: int("poll-interval", args["poll-interval"]),
      maxAttempts: int("max-attempts", args["max-attempts"]),
      retentionMs: days === undefined ? undefined : days * 86_400_000,
      name: args.name,
      heartbeatIntervalMs: int("heartbeat-interval", args["heartbeat-interval"]),
      app: args.app,
    };
  } catch (error) {
    console.error(`tidings relay: ${(error as Error).message}`);
    return 2;
  }

  const connection = await connect(databaseUrl);
  let sent = 0;
  const quiet = args.quiet ?? false;
  const debug = args.debug ?? false;
  const onEvent = (event: RelayEvent) => {
    if (event.type === "heartbeat") {
      // A lost heartbeat changes nothing the relay does: only worth a line when asked for.
      if (debug && event.error !== null) console.error(`tidings relay: heartbeat failed: ${(event.error as Error)?.message ?? String(event.error)}`);
    } else if (event.type === "sent") {
      sent += event.ids.length;
      if (!quiet) console.log(`tidings relay: sent ${event.ids.length} (total ${sent})`);
    } else if (event.type === "error") console.error(`tidings relay: error: ${(event.error as Error)?.message ?? String(event.error)}`);
    else if (event.type === "failed") console.error(`tidings relay: gave up on ${event.ids.length}: ${event.error}`);
    else if (!quiet) console.log(`tidings relay: ${event.ids.length} to retry in ${event.delayMs} ms: ${event.error}`);
  };
  try {
    if (args.migrate) await migrate(connection.db);
    let relay: Relay;
    try {
      relay = new Relay(connection.db, new TidingsClient({ url, apiKey, retries: 0 }), { ...options, onEvent });
    } catch (error) {
      console.error(`tidings relay: ${(error as Error).message}`);
      return 2;
    }
    await relay.start();
    console.log(`tidings relay is running (${connection.db.dialect}) -> ${url}`);
    await new Promise<void>((resolve) => {
      process.once("SIGINT", () => resolve());
      process.once("SIGTERM", () => resolve());
    });
    await relay.stop();
    return 0;
  } finally {
    await connection.close();
  }
}
