import { execFile, spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { bundled } from "./bundle.ts";
import { loadConfig, startService, type RunningService } from "@tidings/server";
import { SERVE_NODE_FLAGS } from "../../server/src/runtime/nodeFlags.ts";

export type { RunningService };

export const ADMIN_KEY = "test-admin-key-0123456789";
const CLI = fileURLToPath(new URL("../../server/src/cli.ts", import.meta.url));
/**
 * The `tidings` command as `npm start` runs it, bundled once per test process beside
 * `dist/tidings.mjs` (where it finds its files): it starts in about half the time tsx takes.
 */
const tidingsBundle = (): string => bundled(CLI, fileURLToPath(new URL(`../../server/dist/tidings.test-${process.pid}.mjs`, import.meta.url)));

/** Runs the service in this process on a test database, on a free port. */
export async function startTestService(databaseUrl: string, env: Record<string, string> = {}): Promise<RunningService> {
  const config = loadConfig({
    DATABASE_URL: databaseUrl,
    TIDINGS_PORT: "0",
    TIDINGS_ADMIN_KEY: ADMIN_KEY,
    TIDINGS_POLL_INTERVAL: "100ms",
    // Alerts whose condition cleared (re-sent, skipped, committed…) are resolved within this.
    TIDINGS_ALERT_INTERVAL: "200ms",
    TIDINGS_DATA_DIR: "/nonexistent-tidings-test-dir",
    ...env,
  });
  return startService(config, pino({ level: process.env.TIDINGS_TEST_LOG ?? "silent" }));
}

export interface TidingsProcess {
  readonly child: ChildProcess;
  output(): string;
  /** SIGKILL by default: the process gets no chance to finish anything. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Runs `tidings <args>` as a real child process (to be killed with SIGKILL in crash tests),
 * resolved with the first match of `ready` in its standard output.
 */
export async function spawnTidings(
  args: readonly string[],
  options: { env?: Record<string, string>; nodeFlags?: readonly string[]; ready: RegExp; timeoutMs?: number },
): Promise<TidingsProcess & { readonly ready: RegExpExecArray }> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const child = spawn(process.execPath, [...(options.nodeFlags ?? []), tidingsBundle(), ...args], {
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const ready = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`tidings ${args[0]} did not start in ${timeoutMs} ms:\n${out}`)), timeoutMs);
    const onData = () => {
      const match = options.ready.exec(out);
      if (match) {
        clearTimeout(timer);
        child.stdout!.off("data", onData);
        resolve(match);
      }
    };
    child.stdout!.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`tidings ${args[0]} exited with ${code} before it started:\n${out}`));
    });
  });
  return {
    child,
    ready,
    output: () => out,
    async kill(signal = "SIGKILL") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

/** What a `tidings` command that ends left: its exit code and its output. */
export interface TidingsRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `tidings <args>` (from the same bundle) to its end, within `timeoutMs`; a non-zero exit is
 * an answer, not an error. `input` is its standard input (none: empty), `cwd` where it runs, `tty`:
 * on a terminal (its output then as the terminal shows it).
 */
export function runTidings(
  args: readonly string[],
  env: Record<string, string> = {},
  timeoutMs = 60_000,
  options: { input?: string; cwd?: string; tty?: boolean } = {},
): Promise<TidingsRun> {
  const command = [process.execPath, tidingsBundle(), ...args];
  // tty: on a terminal of its own (script(1) gives it one), as a person runs it.
  const quoted = command.map((word) => `'${word.replaceAll("'", "'\\''")}'`).join(" ");
  const [file, argv] = options.tty ? ["script", ["-qec", quoted, "/dev/null"]] : [command[0]!, command.slice(1)];
  return new Promise((resolve, reject) => {
    const child = execFile(file, argv, { env: { ...process.env, ...env }, timeout: timeoutMs, cwd: options.cwd }, (error, stdout, stderr) => {
      const code = error ? (error as { code?: unknown }).code : 0;
      if (typeof code !== "number") reject(new Error(`tidings ${args[0]} did not end: ${error?.message}\n${stdout}${stderr}`));
      else resolve({ code, stdout, stderr });
    });
    child.stdin?.end(options.input ?? "");
  });
}

export interface ServiceProcess extends TidingsProcess {
  readonly url: string;
}

/** Runs `tidings serve` as a real child process, with the Node flags `npm start` gives it. */
export async function spawnService(env: Record<string, string>, timeoutMs = 30_000): Promise<ServiceProcess> {
  const service = await spawnTidings(["serve"], {
    env: { TIDINGS_PORT: "0", TIDINGS_ADMIN_KEY: ADMIN_KEY, TIDINGS_LOG_LEVEL: "warn", ...env },
    nodeFlags: SERVE_NODE_FLAGS,
    ready: /Tidings is running at (\S+)/,
    timeoutMs,
  });
  return { ...service, url: service.ready[1]! };
}
