import { existsSync } from "node:fs";
import { CommanderError } from "commander";
import { buildProgram } from "./cli/program.ts";

/**
 * The `tidings` command's entry point: the settings of `.env`, the program (cli/program.ts),
 * and `serve` and `migrate`, the commands that start the service's parts (only this file may
 * import them).
 */

/** `.env` in the working directory, as most tools read it; a variable already set wins over the file. */
function loadDotEnv(): void {
  if (existsSync(".env")) process.loadEnvFile(".env");
}

/** Starts the service's parts for `serve` and `migrate`; resolves to the exit code. */
async function runServiceCommand(command: "serve" | "migrate"): Promise<number> {
  const [{ default: pino }, { ConfigError, loadConfig }, { startService }, { startEmbeddedDb }, { createPool }, { migrate }] = await Promise.all([
    import("pino"),
    import("./runtime/config.ts"),
    import("./runtime/service.ts"),
    import("./runtime/embeddedDb.ts"),
    import("./store/db.ts"),
    import("./store/migrate.ts"),
  ]);
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`tidings: ${error.message}`);
      return 2;
    }
    throw error;
  }
  const log = pino({
    level: config.logLevel,
    base: { svc: "tidings" },
    redact: { paths: ["req.headers.authorization", "*.secret", "*.apiKey", "*.password"], censor: "[redacted]" },
  });

  if (command === "migrate") {
    const embedded = config.databaseUrl ? null : await startEmbeddedDb(config.dataDir, log);
    const db = createPool(config.databaseUrl ?? embedded!.url, 2, undefined, config.dbPooling);
    try {
      const applied = await migrate(db);
      console.log(applied.length ? `applied migrations ${applied.join(", ")}` : "the database is up to date");
    } finally {
      await db.end();
      await embedded?.stop();
    }
    return 0;
  }

  if (command === "serve") {
    // Only when OTEL_* asks for traces is the OpenTelemetry SDK loaded at all.
    const tracing = await (await import("./runtime/tracing.ts")).startTracing(process.env, log);
    let service: Awaited<ReturnType<typeof startService>>;
    try {
      service = await startService(config, log);
    } catch (error) {
      // A setting the database showed to be wrong (a pooler not declared): said as a setting is.
      if (!(error instanceof ConfigError)) throw error;
      await tracing?.shutdown();
      console.error(`tidings: ${error.message}`);
      return 2;
    }
    const lines = [
      `Tidings is running at ${service.url}`,
      `  console:  ${service.url}/console`,
      `  API docs: ${service.url}/openapi.json`,
      // The key is shown once, when it was generated; after that it is read from where it is kept.
      service.adminKeyGenerated
        ? `  admin key (generated, kept in ${config.dataDir}/admin-key): ${service.adminKey}`
        : config.adminKey
          ? "  admin key: from TIDINGS_ADMIN_KEY"
          : `  admin key: kept in ${config.dataDir}/admin-key`,
    ];
    process.stdout.write(`\n${lines.join("\n")}\n\n`);
    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        log.info({ signal }, "shutting down");
        resolve();
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
    await service.close();
    await tracing?.shutdown();
    return 0;
  }

  return 2;
}

/** What an exception of the argument parser means as an exit code: 0 after a help asked for, 2 for bad usage. */
const parserExit = (error: CommanderError): number => (error.code === "commander.helpDisplayed" || error.code === "commander.version" ? 0 : 2);

async function main(argv: string[]): Promise<number> {
  loadDotEnv();
  const program = buildProgram({ serve: () => runServiceCommand("serve"), migrate: () => runServiceCommand("migrate") });
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) return parserExit(error);
    throw error;
  }
  return Number(process.exitCode ?? 0);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error("tidings:", error instanceof Error ? (error.stack ?? error.message) : error);
    process.exit(1);
  },
);
