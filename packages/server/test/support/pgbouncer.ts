import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, chown, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { TEST_PG_URL } from "@tidings/testkit/db";
import { freePort, postgresUser } from "./privatePostgres.ts";

/** Debian's pgbouncer (the package `pgbouncer`; .ci/run installs it, without starting its service). */
export const PGBOUNCER = process.env.TIDINGS_PGBOUNCER_BIN ?? "/usr/sbin/pgbouncer";

/** Why the PgBouncer tests cannot run here, or false. */
export const withoutPgBouncer = (): string | false =>
  existsSync(PGBOUNCER) ? false : `no pgbouncer at ${PGBOUNCER}: install the Debian package pgbouncer (.ci/run does)`;

export interface PgBouncer {
  readonly port: number;
  /** The URL of database `name` through the pooler, as the test PostgreSQL's user. */
  url(name: string): string;
  /** A statement on PgBouncer's admin console (SHOW POOLS, SHOW STATS…): its rows. */
  admin(sql: string): Promise<Record<string, unknown>[]>;
  /** What pgbouncer has written (its log), for failure messages. */
  output(): string;
  stop(): Promise<void>;
}

/**
 * A PgBouncer of one test, in front of the test PostgreSQL: own directory, free port,
 * `pool_mode = transaction` and `poolSize` server connections per database and user; `settings`:
 * more of its [pgbouncer] section (query_wait_timeout…).
 */
export async function startPgBouncer(poolSize: number, settings: Record<string, string | number> = {}): Promise<PgBouncer> {
  const upstream = new URL(TEST_PG_URL);
  const user = decodeURIComponent(upstream.username || "postgres");
  const runAs = await postgresUser();
  const dir = await mkdtemp(join(tmpdir(), "tidings-test-pgbouncer-"));
  await chmod(dir, 0o755);
  if (runAs) await chown(dir, runAs.uid, runAs.gid);
  // The test PostgreSQL trusts local connections; pgbouncer must still know the user (auth_file).
  await writeFile(join(dir, "users.txt"), `"${user}" "${decodeURIComponent(upstream.password)}"\n`, { mode: 0o644 });
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const ini = [
      "[databases]",
      `* = host=${upstream.hostname} port=${upstream.port || 5432}`,
      "[pgbouncer]",
      "listen_addr = 127.0.0.1",
      `listen_port = ${port}`,
      "unix_socket_dir =",
      "auth_type = trust",
      `auth_file = ${join(dir, "users.txt")}`,
      `admin_users = ${user}`,
      "pool_mode = transaction",
      `default_pool_size = ${poolSize}`,
      "max_client_conn = 500",
      ...Object.entries(settings).map(([name, value]) => `${name} = ${value}`),
    ].join("\n");
    const iniFile = join(dir, "pgbouncer.ini");
    await writeFile(iniFile, `${ini}\n`, { mode: 0o644 });
    const child: ChildProcess = spawn(PGBOUNCER, [iniFile], { cwd: dir, stdio: ["ignore", "pipe", "pipe"], ...(runAs ?? {}) });
    let out = "";
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    const up = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 15_000);
      const onData = () => {
        if (/process up/.test(out)) {
          clearTimeout(timer);
          resolve(true);
        }
      };
      child.stdout!.on("data", onData);
      child.stderr!.on("data", onData);
      child.once("exit", () => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    if (!up) {
      child.kill("SIGKILL");
      await exited;
      // The free port was taken meanwhile by another test process: another one.
      if (attempt < 3 && /Address already in use/i.test(out)) continue;
      await rm(dir, { recursive: true, force: true });
      throw new Error(`pgbouncer did not start:\n${out}`);
    }
    const url = (name: string) => {
      const u = new URL(TEST_PG_URL);
      u.port = String(port);
      u.pathname = `/${name}`;
      return u.toString();
    };
    return {
      port,
      url,
      async admin(sql: string) {
        const client = new pg.Client({ connectionString: url("pgbouncer") });
        await client.connect();
        try {
          return (await client.query(sql)).rows;
        } finally {
          await client.end();
        }
      },
      output: () => out,
      async stop() {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
        await exited;
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
}
