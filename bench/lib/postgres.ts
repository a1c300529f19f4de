import { execFileSync, spawn } from "node:child_process";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";

/** The PostgreSQL 15 binaries of the Debian package; pgbench ships in the same package. */
export const PG_BIN = "/usr/lib/postgresql/15/bin";

/** A PostgreSQL server the bench creates its databases on. */
export interface PgServer {
  /** Connection URL of the maintenance database (`postgres`). */
  readonly adminUrl: string;
  /** The postmaster's pid when the bench started the server itself (for /proc sampling). */
  readonly postmasterPid: number | null;
  /** Settings that differ from PostgreSQL's defaults, for the report. */
  readonly settings: Record<string, string>;
  readonly hasStatStatements: boolean;
  /** The folder of the server's Unix socket, when the bench started the server itself. */
  readonly socketDir: string | null;
  stop(): Promise<void>;
}

/** Settings of the bench cluster. Durability stays ON: fsync, synchronous_commit and full_page_writes keep their defaults. */
export const BENCH_PG_SETTINGS: Record<string, string> = {
  // 2 GB of 24: the machine is dedicated to the run; a smaller cache would make the 1M backlog an I/O test.
  shared_buffers: "2GB",
  // Bulk inserts of 200k-1M rows would otherwise checkpoint every few seconds (full-page writes after each).
  max_wal_size: "8GB",
  max_connections: "300",
  shared_preload_libraries: "pg_stat_statements",
  "pg_stat_statements.track": "top",
};

function asPostgresUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("postgres:"));
  if (!line) throw new Error("running as root but the OS user postgres is missing (install postgresql-15)");
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

/** Installs postgresql-15 with apt when the binaries are missing (root only); never starts the distro's service. */
export function ensurePostgresBinaries(log: (line: string) => void): void {
  if (existsSync(join(PG_BIN, "initdb")) && existsSync(join(PG_BIN, "pgbench"))) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`PostgreSQL 15 binaries are missing in ${PG_BIN}; install postgresql-15 (as root: apt-get install postgresql-15)`);
  }
  log("installing postgresql-15 with apt-get (binaries missing) ...");
  // policy-rc.d exit 101 forbids invoke-rc.d from starting the distro's cluster on port 5432.
  const policy = "/usr/sbin/policy-rc.d";
  const created = !existsSync(policy);
  if (created) writeFileSync(policy, "#!/bin/sh\nexit 101\n", { mode: 0o755 });
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    execFileSync("apt-get", ["update"], { stdio: "inherit", env });
    execFileSync("apt-get", ["install", "-y", "--no-install-recommends", "postgresql-15", "postgresql-contrib"], { stdio: "inherit", env });
  } finally {
    if (created) rmSync(policy, { force: true });
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function run(bin: string, args: string[], cwd: string, user: { uid: number; gid: number } | null): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(PG_BIN, bin), args, { cwd, stdio: ["ignore", "pipe", "pipe"], ...(user ?? {}) });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`${bin} exited with ${code}:\n${out}`))));
  });
}

/**
 * initdb's a fresh cluster in a temp folder and starts it on a free port, as the OS user
 * postgres when we are root (the server refuses to run as root). Every parent folder must be
 * traversable by that user and the working directory readable by it.
 */
export async function startPrivatePostgres(log: (line: string) => void): Promise<PgServer> {
  ensurePostgresBinaries(log);
  const user = asPostgresUser();
  const dir = mkdtempSync(join(tmpdir(), "tidings-bench-pg-"));
  const data = join(dir, "data");
  const sock = join(dir, "sock");
  mkdirSync(data);
  mkdirSync(sock);
  chmodSync(dir, 0o755);
  chmodSync(data, 0o700);
  if (user) for (const p of [dir, data, sock]) chownSync(p, user.uid, user.gid);
  const started = performance.now();
  // --no-sync only skips initdb's own flush of the new files; the server runs with fsync on.
  await run(
    "initdb",
    ["-D", data, "-U", "postgres", "--auth-local=trust", "--auth-host=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions"],
    dir,
    user,
  );
  const port = await freePort();
  const options = [`-c listen_addresses=127.0.0.1`, `-p ${port}`, `-k ${sock}`, ...Object.entries(BENCH_PG_SETTINGS).map(([k, v]) => `-c ${k}=${v}`)];
  await run("pg_ctl", ["-D", data, "-l", join(dir, "postgres.log"), "-w", "-t", "60", "-o", options.join(" "), "start"], dir, user);
  const pid = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const check = await showSettings(adminUrl);
  if (check.fsync !== "on" || check.synchronous_commit !== "on") {
    throw new Error(`the bench PostgreSQL must run with durability on, got fsync=${check.fsync} synchronous_commit=${check.synchronous_commit}`);
  }
  log(
    `postgres: fresh cluster on 127.0.0.1:${port} in ${Math.round(performance.now() - started)} ms (fsync=${check.fsync}, synchronous_commit=${check.synchronous_commit}, data in ${dir})`,
  );
  let stopped = false;
  // A runner that dies without stop() (a crash, process.exit) must not leave the cluster behind:
  // SIGQUIT is PostgreSQL's immediate shutdown, and exit handlers may only do synchronous work.
  const onExit = () => {
    if (stopped) return;
    try {
      process.kill(pid, "SIGQUIT");
    } catch {
      /* already gone */
    }
  };
  process.once("exit", onExit);
  return {
    adminUrl,
    postmasterPid: pid,
    settings: { ...BENCH_PG_SETTINGS, fsync: check.fsync, synchronous_commit: check.synchronous_commit, full_page_writes: check.full_page_writes ?? "on" },
    hasStatStatements: true,
    socketDir: sock,
    async stop() {
      if (stopped) return;
      stopped = true;
      process.off("exit", onExit);
      await run("pg_ctl", ["-D", data, "-m", "fast", "-t", "60", "stop"], dir, user).catch(() => {
        try {
          process.kill(pid, "SIGQUIT");
        } catch {
          /* already gone */
        }
      });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function showSettings(url: string): Promise<Record<string, string>> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string; setting: string }>(
      "select name, setting from pg_settings where name in ('fsync', 'synchronous_commit', 'full_page_writes')",
    );
    return Object.fromEntries(rows.map((r) => [r.name, r.setting]));
  } finally {
    await client.end();
  }
}

/** An existing server (the smoke test's): the bench only creates and drops its own databases there. */
export async function useExistingPostgres(adminUrl: string): Promise<PgServer> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  let hasStatStatements = false;
  try {
    const { rows } = await client.query("select 1 from pg_extension where extname = 'pg_stat_statements'");
    hasStatStatements = rows.length > 0;
  } finally {
    await client.end();
  }
  return { adminUrl, postmasterPid: null, settings: {}, hasStatStatements, socketDir: null, stop: async () => {} };
}

export function databaseUrl(adminUrl: string, name: string): string {
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

/** The same database over the server's Unix socket instead of TCP (pg reads the socket folder from `host`). */
export function socketUrl(url: string, socketDir: string): string {
  const u = new URL(url);
  u.searchParams.set("host", socketDir);
  return u.toString();
}

export interface BenchDatabase {
  readonly name: string;
  readonly url: string;
  drop(): Promise<void>;
}

/** A fresh, uniquely named database on the server: each workload and system gets its own. */
export async function createDatabase(server: PgServer, label: string): Promise<BenchDatabase> {
  const name = `tidings_bench_${label.replace(/[^a-z0-9]/gi, "_").toLowerCase()}_${Math.random().toString(16).slice(2, 10)}`;
  const admin = new pg.Client({ connectionString: server.adminUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
    // Write out what earlier workloads left dirty in shared buffers now, before this system's
    // warm-up, so that none is charged with another's writes (PostgreSQL's CPU is read for the
    // whole server), and the full-page writes that follow a checkpoint fall in the warm-up.
    // A server where we may not checkpoint (--pg-url, not a superuser) is measured as it is.
    await admin.query("checkpoint").catch(() => {});
  } finally {
    await admin.end();
  }
  const url = databaseUrl(server.adminUrl, name);
  if (server.hasStatStatements) {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    await c.query("create extension if not exists pg_stat_statements").catch(() => {});
    await c.end();
  }
  return {
    name,
    url,
    async drop() {
      const c = new pg.Client({ connectionString: server.adminUrl });
      await c.connect();
      try {
        await c.query(`drop database if exists ${name} with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}
