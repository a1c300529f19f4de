import { spawn } from "node:child_process";
import { chmod, chown, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const PG_BIN = process.env.TIDINGS_PG_BIN ?? "/usr/lib/postgresql/15/bin";

/** As root, the OS user postgres (PostgreSQL and PgBouncer refuse to run as root); otherwise null: run as ourselves. */
export async function postgresUser(): Promise<{ uid: number; gid: number } | null> {
  if (process.getuid?.() !== 0) return null;
  const line = (await readFile("/etc/passwd", "utf8")).split("\n").find((l) => l.startsWith("postgres:"));
  if (!line) throw new Error("running as root without an OS user postgres");
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

/** A port nothing listens on now, on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

function run(bin: string, args: string[], cwd: string, user: { uid: number; gid: number } | null): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(PG_BIN, bin), args, { cwd, stdio: ["ignore", "pipe", "pipe"], ...(user ?? {}) });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${bin} ${args.join(" ")} exited with ${code}:\n${out}`))));
  });
}

export interface PrivatePostgres {
  readonly url: string;
  /** Crash-restarts the server (`-m immediate`: no clean shutdown, recovery from WAL). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** A PostgreSQL cluster owned by one test (Debian's binaries), so that the test may restart it. */
export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const user = await postgresUser();
  const dir = await mkdtemp(join(tmpdir(), "tidings-test-pg-"));
  const data = join(dir, "data");
  await mkdir(data);
  await chmod(dir, 0o755);
  await chmod(data, 0o700);
  if (user) for (const p of [dir, data]) await chown(p, user.uid, user.gid);
  await run(
    "initdb",
    ["-D", data, "-U", "postgres", "--auth-host=trust", "--auth-local=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions"],
    dir,
    user,
  );
  const port = await freePort();
  const options = `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir}`;
  const ctl = (...args: string[]) => run("pg_ctl", ["-D", data, "-l", join(dir, "log"), "-w", "-t", "60", "-o", options, ...args], dir, user);
  await ctl("start");
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    restart: () => ctl("-m", "immediate", "restart"),
    async stop() {
      await ctl("-m", "immediate", "stop").catch(() => {});
      await rm(dir, { recursive: true, force: true });
    },
  };
}
