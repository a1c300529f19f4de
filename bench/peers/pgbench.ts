import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { withDatabase, measure, sql, type BenchContext } from "../lib/context.ts";
import { payloadSqlLiteral, TOPIC } from "../lib/payload.ts";
import { PG_BIN } from "../lib/postgres.ts";
import { summarize } from "../lib/load.ts";
import type { ProcessUsage } from "../lib/procStats.ts";
import type { SystemResult } from "../lib/report.ts";

// A table shaped like a message store's: identity key, topic, jsonb payload, timestamp.
const TABLE = `create table bench_messages (
  id bigint generated always as identity primary key,
  topic text not null,
  payload jsonb not null,
  created_at timestamptz not null default now()
)`;

function pgEnv(dbUrl: string): NodeJS.ProcessEnv {
  const u = new URL(dbUrl);
  return {
    ...process.env,
    PGHOST: u.hostname,
    PGPORT: u.port || "5432",
    PGUSER: decodeURIComponent(u.username || "postgres"),
    PGPASSWORD: decodeURIComponent(u.password),
    PGDATABASE: u.pathname.slice(1),
  };
}

function runPgbench(args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(PG_BIN, "pgbench"), args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`pgbench exited with ${code}:\n${out}`))));
  });
}

/**
 * Runs pgbench (`args`, then `-f` the script) on a fresh database holding the plain table, the
 * INSERT script in a folder of its own (where `-l` logs go too), measured as one phase; `read`
 * makes the result of its output, the folder and the processes' usage.
 */
async function runInsertScript(
  ctx: BenchContext,
  label: string,
  script: string,
  args: (dir: string) => string[],
  read: (out: string, dir: string, processes: ProcessUsage[]) => SystemResult,
): Promise<SystemResult> {
  return withDatabase(ctx, `${label}_pgbench`, async (db) => {
    await sql(db.url, TABLE);
    const dir = mkdtempSync(join(tmpdir(), "tidings-bench-pgbench-"));
    const file = join(dir, "insert.sql");
    writeFileSync(file, script);
    try {
      const { result: out, processes } = await measure(
        ctx,
        null,
        () => 0,
        () => runPgbench([...args(dir), "-f", file], pgEnv(db.url)),
      );
      return read(out, dir, processes);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

/**
 * The PostgreSQL limit: pgbench INSERTs of the same payload into a plain table, each its own
 * transaction (autocommit), prepared statements, for a fixed time. `rowsPerInsert` 1 is the
 * single-message limit; 100 the batch limit (one multi-row VALUES statement per transaction).
 */
export async function pgbenchInsert(
  ctx: BenchContext,
  label: string,
  opts: { clients: number; seconds: number; rowsPerInsert: number },
): Promise<SystemResult> {
  const row = `('${TOPIC}', ${payloadSqlLiteral()})`;
  const script = `INSERT INTO bench_messages (topic, payload) VALUES ${Array(opts.rowsPerInsert).fill(row).join(", ")};\n`;
  const threads = Math.min(2, opts.clients);
  const args = ["-n", "-M", "prepared", "-c", String(opts.clients), "-j", String(threads), "-T", String(opts.seconds)];
  return runInsertScript(
    ctx,
    label,
    script,
    () => args,
    (out, _dir, processes) => {
      const tps = Number(/tps = ([\d.]+) \(without initial connection time\)/.exec(out)?.[1] ?? NaN);
      const tx = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? NaN);
      if (!Number.isFinite(tps)) throw new Error(`could not read pgbench's tps:\n${out}`);
      const rows = tx * opts.rowsPerInsert;
      for (const p of processes) p.cpuPer1000 = rows > 0 ? Math.round((p.cpuSeconds * 1000 * 10_000) / rows) / 10_000 : 0;
      return {
        system: `pgbench ${opts.rowsPerInsert === 1 ? "single-row" : `${opts.rowsPerInsert}-row`} INSERT (limit)`,
        role: "limit",
        figure: Math.round(tps * opts.rowsPerInsert),
        unit: "rows/s",
        messages: rows,
        seconds: opts.seconds,
        processes: processes.filter((p) => p.name !== "runner"),
        config: `${opts.clients} clients, ${threads} threads, -M prepared, ${opts.seconds} s, ${opts.rowsPerInsert} row(s) per INSERT, one transaction each`,
        extra: { tps: Math.round(tps) },
      } satisfies SystemResult;
    },
  );
}

/**
 * The latency limit: pgbench single-row INSERTs of the same payload at `rate`/s (`-R`, open loop),
 * each its own durable commit, logged per transaction (`-l`). pgbench measures each from its
 * scheduled start, so waiting behind a slow commit counts, as it does for the message workloads:
 * what one durable commit costs on this machine's disk at that rate, with no HTTP and no queue.
 */
export async function pgbenchLatency(ctx: BenchContext, label: string, rate: number, seconds: number): Promise<SystemResult> {
  const clients = 8;
  const args = (dir: string) => [
    ...["-n", "-M", "prepared", "-c", String(clients), "-j", "2", "-R", String(rate), "-T", String(Math.max(1, Math.round(seconds)))],
    ...["-l", "--log-prefix", join(dir, "tx")],
  ];
  const script = `INSERT INTO bench_messages (topic, payload) VALUES ('${TOPIC}', ${payloadSqlLiteral()});\n`;
  return runInsertScript(ctx, label, script, args, (out, dir, processes) => {
    // Each line: client, transaction, latency µs, script, epoch s, µs[, schedule lag µs].
    const latencies: number[] = [];
    for (const name of readdirSync(dir).filter((f) => f.startsWith("tx"))) {
      for (const line of readFileSync(join(dir, name), "utf8").split("\n")) {
        const us = Number(line.split(" ")[2]);
        if (line && Number.isFinite(us)) latencies.push(us / 1000);
      }
    }
    if (latencies.length === 0) throw new Error(`pgbench logged no transaction:\n${out}`);
    const latency = summarize(latencies);
    for (const p of processes) p.cpuPer1000 = Math.round((p.cpuSeconds * 1000 * 10_000) / latencies.length) / 10_000;
    return {
      system: "pgbench single-row INSERT at the same rate (limit)",
      role: "limit",
      figure: latency.p50,
      unit: "ms p50 (commit)",
      messages: latencies.length,
      seconds,
      // No acknowledgement before a handler here: its one measure is send → committed.
      endToEnd: latency,
      processes: processes.filter((p) => p.name !== "runner"),
      config: `-R ${rate} (open loop), ${clients} clients, 2 threads, -M prepared, one durable commit per row; latency from each transaction's scheduled start`,
    } satisfies SystemResult;
  });
}
