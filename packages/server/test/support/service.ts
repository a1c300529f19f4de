import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import pino from "pino";
import { loadConfig } from "../../src/runtime/config.ts";
import { startService, type RunningService } from "../../src/runtime/service.ts";
import { SERVE_NODE_FLAGS } from "../../src/runtime/nodeFlags.ts";

export const ADMIN_KEY = "test-admin-key-0123456789";
const CLI = fileURLToPath(new URL("../../src/cli.ts", import.meta.url));

/** Runs the service in this process on a test database, on a free port. */
export async function startTestService(databaseUrl: string, env: Record<string, string> = {}): Promise<RunningService> {
  const config = loadConfig({
    DATABASE_URL: databaseUrl,
    TIDINGS_PORT: "0",
    TIDINGS_ADMIN_KEY: ADMIN_KEY,
    TIDINGS_POLL_INTERVAL: "100ms",
    TIDINGS_DATA_DIR: "/nonexistent-tidings-test-dir",
    ...env,
  });
  return startService(config, pino({ level: process.env.TIDINGS_TEST_LOG ?? "silent" }));
}

export interface ServiceProcess {
  readonly url: string;
  readonly child: ChildProcess;
  readonly output: () => string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Runs `tidings serve` as a real child process (to be killed with SIGKILL in crash tests). */
export async function spawnService(env: Record<string, string>, timeoutMs = 30_000): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [...SERVE_NODE_FLAGS, "--import", "tsx", CLI, "serve"], {
    env: { ...process.env, TIDINGS_PORT: "0", TIDINGS_ADMIN_KEY: ADMIN_KEY, TIDINGS_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`service did not start in ${timeoutMs} ms:\n${out}`)), timeoutMs);
    const onData = () => {
      const match = /Tidings is running at (\S+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        child.stdout!.off("data", onData);
        resolve(match[1]!);
      }
    };
    child.stdout!.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`service exited with ${code} before it started:\n${out}`));
    });
  });
  return {
    url,
    child,
    output: () => out,
    async kill(signal = "SIGKILL") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
