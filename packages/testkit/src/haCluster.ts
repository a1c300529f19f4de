import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const SCRIPT = fileURLToPath(new URL("../../../scripts/ha/cluster.sh", import.meta.url));

/** One Patroni node as `scripts/ha/cluster.sh status` reports it. */
export interface HaNode {
  readonly name: string;
  /** leader, sync_standby, replica, or down (its Patroni is dead). */
  readonly role: string;
  readonly patroniPid: number;
  /** null: no postmaster.pid (not started yet, or stopped). */
  readonly postmasterPid: number | null;
  readonly pgPort: number;
  readonly restPort: number;
}

/** The cluster's binaries are missing and could not be installed (the message names them). */
export class HaUnavailableError extends Error {}

export interface HaCluster {
  /** postgres:// URL of the `postgres` database through HAProxy (always the current primary). */
  readonly url: string;
  readonly dir: string;
  nodes(): Promise<HaNode[]>;
  /**
   * SIGKILLs the current primary's machine: its Patroni, its postmaster and every process of its
   * PostgreSQL at once, so nothing of it answers or shuts down cleanly. Returns that node and when.
   */
  killPrimary(): Promise<{ node: HaNode; at: number }>;
  /** Whether `node`'s Patroni says it is the primary (GET /primary answers 200). */
  isPrimary(node: HaNode): Promise<boolean>;
  stop(): Promise<void>;
}

function script(args: string[], timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile("bash", [SCRIPT, ...args], { timeout: timeoutMs, maxBuffer: 4 << 20 }, (error, stdout, stderr) => {
      const code = error ? (error as { code?: unknown }).code : 0;
      if (typeof code !== "number") reject(new Error(`cluster.sh ${args[0]} did not end in ${timeoutMs} ms: ${error?.message}\n${stderr}`));
      else resolve({ code, stdout, stderr });
    });
  });
}

const words = (line: string): Record<string, string> =>
  Object.fromEntries(line.split(" ").flatMap((w) => (w.includes("=") ? [w.split("=", 2) as [string, string]] : [])));

function parseNodes(stdout: string): HaNode[] {
  return stdout
    .split("\n")
    .filter((line) => line.startsWith("node "))
    .map((line) => {
      const w = words(line);
      return {
        name: w.name!,
        role: w.role!,
        patroniPid: Number(w.patroni),
        postmasterPid: w.postmaster && w.postmaster !== "-" ? Number(w.postmaster) : null,
        pgPort: Number(w.pg),
        restPort: Number(w.rest),
      };
    });
}

/** The pids whose parent is `pid` (a postmaster's backends, walsenders, checkpointer...). */
async function childrenOf(pid: number): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")"
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (ppid === pid) found.push(Number(entry));
  }
  return found;
}

const kill = (pid: number) => {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
};

/**
 * Starts `scripts/ha/cluster.sh` in a fresh temporary folder (etcd, two Patroni nodes with a
 * synchronous standby, HAProxy), resolved once a write through HAProxy works and the standby is
 * synchronous: about 20 s on a 2-core machine, most of it initdb and the standby's base backup.
 * Throws HaUnavailableError when its binaries are missing and cannot be installed.
 */
export async function startHaCluster(timeoutMs = 120_000): Promise<HaCluster> {
  // The script gives the folder to OS user postgres (as root) and removes it at stop.
  const dir = await mkdtemp(join(tmpdir(), "tidings-ha-"));
  const started = await script(["start", dir], timeoutMs);
  if (started.code === 3) throw new HaUnavailableError(started.stderr.trim());
  if (started.code !== 0) {
    await script(["stop", dir], 30_000).catch(() => {});
    throw new Error(`cluster.sh start failed (exit ${started.code}):\n${started.stderr}`);
  }
  const url = started.stdout.match(/^url (\S+)$/m)?.[1];
  if (!url) throw new Error(`cluster.sh start printed no url:\n${started.stdout}`);
  const nodes = async () => {
    const status = await script(["status", dir], 20_000);
    if (status.code !== 0) throw new Error(`cluster.sh status failed:\n${status.stderr}`);
    return parseNodes(status.stdout);
  };
  return {
    url,
    dir,
    nodes,
    async killPrimary() {
      const node = (await nodes()).find((n) => n.role === "leader");
      if (!node) throw new Error("no node leads: nothing to kill");
      const pids = [node.patroniPid, ...(node.postmasterPid ? [node.postmasterPid, ...(await childrenOf(node.postmasterPid))] : [])];
      const at = Date.now();
      for (const pid of pids) kill(pid);
      return { node, at };
    },
    async isPrimary(node) {
      try {
        const res = await fetch(`http://127.0.0.1:${node.restPort}/primary`, { signal: AbortSignal.timeout(1000) });
        await res.arrayBuffer();
        return res.status === 200;
      } catch {
        return false;
      }
    },
    async stop() {
      const stopped = await script(["stop", dir], 60_000);
      if (stopped.code !== 0) throw new Error(`cluster.sh stop failed:\n${stopped.stderr}`);
    },
  };
}
