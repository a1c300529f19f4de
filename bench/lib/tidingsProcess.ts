import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Pool } from "undici";
import { SERVE_NODE_FLAGS } from "../../packages/server/src/runtime/nodeFlags.ts";

/** What `npm start` runs: the bundled service (built once per bench process, as `prestart` does). */
const BUNDLE = fileURLToPath(new URL("../../packages/server/dist/tidings.mjs", import.meta.url));
const BUILD = fileURLToPath(new URL("../../scripts/build.mjs", import.meta.url));
let built = false;

function buildOnce(): void {
  if (built) return;
  const result = spawnSync(process.execPath, [BUILD, "--quiet"], { stdio: "inherit" });
  if (result.status !== 0) throw new Error(`building the service bundle failed (exit ${result.status})`);
  built = true;
}
export const BENCH_ADMIN_KEY = "bench-admin-key-0123456789abcdef";

/** Services still running, so an interrupted run can end them. */
const running = new Set<ChildProcess>();

/** SIGKILLs every service this process started and has not stopped (for an interrupted run). */
export function killRunningServices(): void {
  for (const child of running) child.kill("SIGKILL");
  running.clear();
}

export interface TidingsOptions {
  databaseUrl: string;
  /** Extra environment for the service (TIDINGS_* settings to try). */
  env?: Record<string, string>;
  /** Write a V8 CPU profile of the service into this folder when it exits. */
  cpuProfDir?: string;
}

/** `tidings serve` as its own process, so its RSS and CPU can be read from /proc. */
export class TidingsProcess {
  private constructor(
    readonly url: string,
    readonly child: ChildProcess,
    private readonly output: () => string,
    /** An HTTP/1.1 keep-alive pool to the service for the bench's own API calls. */
    readonly http: Pool,
  ) {}

  get pid(): number {
    return this.child.pid!;
  }

  static async start(options: TidingsOptions, timeoutMs = 60_000): Promise<TidingsProcess> {
    buildOnce();
    const nodeArgs = [...SERVE_NODE_FLAGS];
    if (options.cpuProfDir) {
      mkdirSync(options.cpuProfDir, { recursive: true });
      nodeArgs.push("--cpu-prof", "--cpu-prof-dir", options.cpuProfDir);
    }
    const child = spawn(process.execPath, [...nodeArgs, BUNDLE, "serve"], {
      env: {
        ...process.env,
        DATABASE_URL: options.databaseUrl,
        TIDINGS_PORT: "0",
        TIDINGS_ADMIN_KEY: BENCH_ADMIN_KEY,
        TIDINGS_LOG_LEVEL: "warn",
        TIDINGS_DATA_DIR: "/nonexistent-tidings-bench-dir",
        ...options.env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    running.add(child);
    child.once("exit", () => running.delete(child));
    let out = "";
    const append = (d: Buffer) => {
      out += d.toString();
      if (out.length > 200_000) out = out.slice(-100_000);
    };
    child.stdout!.on("data", append);
    child.stderr!.on("data", append);
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`tidings did not start in ${timeoutMs} ms:\n${out}`)), timeoutMs);
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
        reject(new Error(`tidings exited with ${code} before it started:\n${out}`));
      });
    });
    const http = new Pool(url, { connections: 8, keepAliveTimeout: 60_000 });
    return new TidingsProcess(url, child, () => out, http);
  }

  /** A JSON API call with the admin key; throws on an unexpected status. */
  async call<T = unknown>(method: "GET" | "POST" | "PATCH" | "DELETE", path: string, body?: unknown, expect = [200, 201, 204]): Promise<T> {
    const response = await this.http.request({
      method,
      path,
      headers: { authorization: `Bearer ${BENCH_ADMIN_KEY}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.body.text();
    if (!expect.includes(response.statusCode)) {
      throw new Error(`${method} ${path} answered ${response.statusCode}: ${text.slice(0, 500)}`);
    }
    return (text ? JSON.parse(text) : null) as T;
  }

  /** Creates a producer app and returns its API key. */
  async createApp(name: string): Promise<string> {
    const created = await this.call<{ apiKey: string }>("POST", "/v1/apps", { name });
    return created.apiKey;
  }

  async createSubscription(name: string, topic: string, url: string, enabled: boolean): Promise<void> {
    await this.call("POST", "/v1/subscriptions", { name, topic, endpoint: { type: "http", url }, enabled });
  }

  async setSubscriptionEnabled(name: string, enabled: boolean): Promise<void> {
    await this.call("PATCH", `/v1/subscriptions/${name}`, { enabled });
  }

  /** The value of a Prometheus counter or gauge from /metrics (0 when absent). */
  async metric(name: string): Promise<number> {
    const response = await this.http.request({ method: "GET", path: "/metrics" });
    const text = await response.body.text();
    const line = text.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
    return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
  }

  /** SIGTERM and wait (the service drains and, with --cpu-prof, writes its profile). */
  async stop(timeoutMs = 20_000): Promise<void> {
    await this.http.close().catch(() => {});
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
    await exited;
    clearTimeout(timer);
  }

  get log(): string {
    return this.output();
  }
}
