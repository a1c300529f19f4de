import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import type { BenchContext } from "../lib/context.ts";
import { cpuCeiling, type WorkloadResult } from "../lib/report.ts";
import { backlog } from "./backlog.ts";
import { brokers } from "./brokers.ts";
import { inbox } from "./inbox.ts";
import { orderedDeliver } from "./orderedDeliver.ts";
import { deliver } from "./deliver.ts";
import { feed } from "./feed.ts";
import { latency } from "./latency.ts";
import { multiNode } from "./multiNode.ts";
import { publishBatch } from "./publishBatch.ts";
import { publishSingle } from "./publishSingle.ts";
import { reconcile } from "./reconcile.ts";
import { outboxRelay } from "./outboxRelay.ts";
import { partitions } from "./partitions.ts";
import { transactional } from "./transactional.ts";
import { NotAvailable } from "./notAvailable.ts";

export { NotAvailable };

type WorkloadBody = Omit<WorkloadResult, "name" | "startedAt" | "seconds" | "status">;

export interface Workload {
  /** Its number in the suite (docs/performance.md). */
  number: number;
  name: string;
  run(ctx: BenchContext): Promise<WorkloadBody>;
}

/** Every workload of the suite, in their numbered order. */
export const WORKLOADS: readonly Workload[] = [
  { number: 1, name: "publish-single", run: publishSingle },
  { number: 2, name: "publish-batch", run: publishBatch },
  { number: 3, name: "deliver", run: deliver },
  { number: 4, name: "latency", run: latency },
  { number: 5, name: "transactional", run: transactional },
  { number: 6, name: "backlog", run: backlog },
  { number: 7, name: "outbox-relay", run: outboxRelay },
  { number: 8, name: "brokers", run: brokers },
  { number: 9, name: "inbox", run: inbox },
  { number: 10, name: "ordered-deliver", run: orderedDeliver },
  { number: 11, name: "feed", run: feed },
  { number: 12, name: "reconcile", run: reconcile },
  { number: 13, name: "multi-node", run: multiNode },
  { number: 14, name: "partitions", run: partitions },
];

/** Picks workloads by name or number ("deliver", "3"); none given: all. */
export function selectWorkloads(names: readonly string[]): Workload[] {
  if (names.length === 0) return [...WORKLOADS];
  return names.map((n) => {
    const found = WORKLOADS.find((w) => w.name === n || String(w.number) === n);
    if (!found) throw new Error(`unknown workload "${n}"; known: ${WORKLOADS.map((w) => w.name).join(", ")}`);
    return found;
  });
}

const CALIBRATION_DATA = Buffer.alloc(16 * 1024 * 1024, 7);

/**
 * Milliseconds one core takes for SHA-256 of 16 MB, the best of three: the machine's speed at
 * that moment. On a shared host it moves without any CPU showing as stolen (a busy sibling
 * hyper-thread, say); two runs compare only at a similar figure.
 */
function calibrate(): number {
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    createHash("sha256").update(CALIBRATION_DATA).digest();
    best = Math.min(best, performance.now() - t);
  }
  return Math.round(best * 10) / 10;
}

/** The machine's CPU time so far (/proc/stat, all CPUs): in all, and what the host took ("steal"). */
function cpuTicks(): { total: number; steal: number } | null {
  try {
    const fields = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!.trim().split(/\s+/).slice(1, 9).map(Number);
    return { total: fields.reduce((a, b) => a + b, 0), steal: fields[7] ?? 0 };
  } catch {
    return null;
  }
}

/** The share of the CPU time between two readings that the hypervisor gave to others, in %. */
function stolen(a: ReturnType<typeof cpuTicks>, b: ReturnType<typeof cpuTicks>): number | null {
  if (!a || !b || b.total <= a.total) return null;
  return Math.round(((b.steal - a.steal) / (b.total - a.total)) * 1000) / 10;
}

/** Runs one workload; a failure or a missing part is reported in its result, never thrown. */
export async function runWorkload(ctx: BenchContext, workload: Workload): Promise<WorkloadResult> {
  const startedAt = new Date().toISOString();
  const started = performance.now();
  const seconds = () => Math.round((performance.now() - started) / 100) / 10;
  const load = () => Math.round(loadavg()[0]! * 100) / 100;
  const loadAverage = { start: load(), end: NaN };
  const cpuAtStart = cpuTicks();
  const calibrationMs = { start: calibrate(), end: NaN };
  ctx.log(`[${workload.number}] ${workload.name}`);
  try {
    const body = await workload.run(ctx);
    for (const s of body.systems) if (!s.latency && !s.endToEnd) s.cpuCeiling = cpuCeiling(s.processes);
    loadAverage.end = load();
    const stolenPercent = stolen(cpuAtStart, cpuTicks());
    calibrationMs.end = calibrate();
    return {
      name: workload.name,
      startedAt,
      seconds: seconds(),
      loadAverage,
      calibrationMs,
      ...(stolenPercent === null ? {} : { stolenPercent }),
      status: "ok",
      ...body,
    };
  } catch (error) {
    const notAvailable = error instanceof NotAvailable;
    if (!notAvailable) ctx.log(`  FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return {
      name: workload.name,
      title: notAvailable ? "not yet available" : "failed",
      status: notAvailable ? "not-available" : "failed",
      reason: error instanceof Error ? error.message : String(error),
      startedAt,
      seconds: seconds(),
      systems: [],
      ratios: [],
      targets: [],
      notes: [],
    };
  }
}
