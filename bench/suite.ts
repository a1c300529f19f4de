import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BenchContext } from "./lib/context.ts";
import { sql } from "./lib/context.ts";
import { startPrivatePostgres, useExistingPostgres, type PgServer } from "./lib/postgres.ts";
import { formatWorkload, type WorkloadResult } from "./lib/report.ts";
import { FULL, SMOKE } from "./lib/sizes.ts";
import { killRunningServices } from "./lib/tidingsProcess.ts";
import { runWorkload, selectWorkloads, WORKLOADS } from "./workloads/index.ts";

export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), "results");

export interface BenchOptions {
  /** Workload names or numbers; empty: all. */
  workloads: readonly string[];
  /** Tiny sizes, so that every workload runs in seconds (the smoke test). */
  smoke?: boolean;
  /** Use this existing server (creating and dropping databases on it) instead of a fresh private one. */
  pgUrl?: string;
  /** Run the peers too (default true). */
  peers?: boolean;
  /** Capture pg_stat_statements of Tidings' measured phases. */
  statements?: boolean;
  /** Folder for the service's --cpu-prof profiles. */
  cpuProfDir?: string;
  /** Extra environment for the service (TIDINGS_* settings to try). */
  serviceEnv?: Record<string, string>;
  /** Connect the service to PostgreSQL over the Unix socket (the bench's own server only). */
  serviceSocket?: boolean;
  /** Where to write the results JSON: a path, "auto" (bench/results/<date>.json), or null (nowhere). */
  out?: string | null;
  log?: (line: string) => void;
}

export interface BenchReport {
  date: string;
  startedAt: string;
  seconds: number;
  smoke: boolean;
  machine: { cpus: number; cpuModel: string; memoryGb: number; kernel: string; node: string; postgres: string };
  postgresSettings: Record<string, string>;
  serviceEnv: Record<string, string>;
  /** The service reached PostgreSQL over its Unix socket (else TCP on 127.0.0.1). */
  serviceSocket: boolean;
  workloads: WorkloadResult[];
  file?: string;
}

/** Runs the selected workloads on one PostgreSQL, prints each table as it completes, and writes the JSON. */
export async function runBench(options: BenchOptions): Promise<BenchReport> {
  const log = options.log ?? ((line: string) => console.log(line));
  const selected = selectWorkloads(options.workloads);
  const startedAt = new Date();
  const started = performance.now();
  let server: PgServer | null = null;
  const onSignal = (signal: NodeJS.Signals) => {
    log(`\n${signal}: stopping the services and PostgreSQL ...`);
    killRunningServices();
    void (server?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    server = options.pgUrl ? await useExistingPostgres(options.pgUrl) : await startPrivatePostgres(log);
    const [{ version }] = (await sql<{ version: string }>(server.adminUrl, "select version()")) as [{ version: string }];
    const ctx: BenchContext = {
      pg: server,
      sizes: options.smoke ? SMOKE : FULL,
      smoke: options.smoke ?? false,
      peers: options.peers ?? true,
      statements: options.statements ?? false,
      serviceEnv: options.serviceEnv ?? {},
      serviceSocket: options.serviceSocket ?? false,
      ...(options.cpuProfDir ? { cpuProfDir: options.cpuProfDir } : {}),
      log,
    };
    const workloads: WorkloadResult[] = [];
    for (const workload of selected) {
      const result = await runWorkload(ctx, workload);
      workloads.push(result);
      log(formatWorkload(result));
    }
    const report: BenchReport = {
      date: startedAt.toISOString().slice(0, 10),
      startedAt: startedAt.toISOString(),
      seconds: Math.round((performance.now() - started) / 1000),
      smoke: ctx.smoke,
      machine: {
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model ?? "unknown",
        memoryGb: Math.round(totalmem() / 2 ** 30),
        kernel: release(),
        node: process.version,
        postgres: version.split(" on ")[0] ?? version,
      },
      postgresSettings: server.settings,
      serviceEnv: ctx.serviceEnv,
      serviceSocket: ctx.serviceSocket ?? false,
      workloads,
    };
    const file = resultsFile(options, report, selected.length === WORKLOADS.length ? [] : selected.map((w) => w.name));
    if (file) {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
      report.file = file;
    }
    log(summary(report));
    return report;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    // Each workload stopped its own services (several runs may share this process).
    await server?.stop();
  }
}

function resultsFile(options: BenchOptions, report: BenchReport, subset: string[]): string | null {
  if (options.out === null || (options.out === undefined && options.smoke)) return null;
  if (options.out && options.out !== "auto") return options.out;
  const suffix = subset.length ? `-${subset.join("+")}` : "";
  return join(RESULTS_DIR, `${report.date}${suffix}.json`);
}

/** The closing lines: every target, met or missed, in one place. */
function summary(report: BenchReport): string {
  const lines = [`\n== summary (${report.seconds} s, ${report.machine.cpus} cores, ${report.machine.postgres}, node ${report.machine.node})`];
  for (const w of report.workloads) {
    if (w.status !== "ok") {
      lines.push(`   ${w.name}: ${w.status === "failed" ? "FAILED" : "not yet available"}: ${w.reason ?? ""}`);
      continue;
    }
    for (const t of w.targets) lines.push(`   ${w.name}: ${t.met ? "MET   " : "MISSED"} ${t.target} (${t.actual}${t.gap ? `; ${t.gap}` : ""})`);
  }
  if (report.file) lines.push(`   results written to ${report.file}`);
  return lines.join("\n");
}
