import { cpus } from "node:os";
import type { LatencySummary } from "./load.ts";
import type { ProcessUsage } from "./procStats.ts";

/** One system's figure in a workload: Tidings, a peer, or the PostgreSQL limit (pgbench). */
export interface SystemResult {
  system: string;
  role: "tidings" | "peer" | "limit";
  /** The workload's figure: a rate (per second), or the p50 in ms for latency. */
  figure: number;
  unit: string;
  /** Messages (jobs, rows, deliveries) the figure was measured over. */
  messages: number;
  seconds: number;
  /** Latency from the producer's acknowledgement (201 reply, send/addJob resolved) to the handler. */
  latency?: LatencySummary;
  /** Latency end to end: from just before the producer sends (publish, send, addJob) to the handler. */
  endToEnd?: LatencySummary;
  processes: ProcessUsage[];
  /** How it was run and tuned. */
  config: string;
  extra?: Record<string, number | string>;
  /** cores / CPU seconds per message of the measured processes (see cpuCeiling). */
  cpuCeiling?: number;
}

export interface TargetCheck {
  target: string;
  actual: string;
  met: boolean;
  /** How far off, when missed ("missed by 12%"). */
  gap?: string;
}

export interface TopStatement {
  query: string;
  calls: number;
  totalMs: number;
  meanMs: number;
  rows: number;
}

export interface WorkloadResult {
  name: string;
  title: string;
  status: "ok" | "not-available" | "failed";
  reason?: string;
  startedAt: string;
  seconds: number;
  /** 1-minute load average at the start and the end: above ~2 on 2 cores, something else competed. */
  loadAverage?: { start: number; end: number };
  /** CPU time the hypervisor gave to other guests while the workload ran (/proc/stat steal), in %. */
  stolenPercent?: number;
  /** One core's time for a fixed piece of work (SHA-256 of 16 MB) before and after: the machine's speed then. */
  calibrationMs?: { start: number; end: number };
  systems: SystemResult[];
  ratios: Array<{ label: string; value: number }>;
  targets: TargetCheck[];
  notes: string[];
  /** pg_stat_statements of Tidings' measured phase, heaviest first (with --statements). */
  statements?: TopStatement[];
}

export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return "-";
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function pad(text: string, width: number, right = false): string {
  return right ? text.padStart(width) : text.padEnd(width);
}

/** "at least" target on a rate: met, or by how much it is missed. */
export function atLeast(target: string, actual: number, goal: number, unit: string): TargetCheck {
  const met = actual >= goal;
  return {
    target,
    actual: `${fmt(actual)} ${unit}`,
    met,
    ...(met ? {} : { gap: `missed by ${fmt(goal - actual)} ${unit} (${fmt((1 - actual / goal) * 100, 1)}% short)` }),
  };
}

/** "at most" target (latency, memory). */
export function atMost(target: string, actual: number, goal: number, unit: string, digits = 1): TargetCheck {
  const met = actual <= goal;
  return {
    target,
    actual: `${fmt(actual, digits)} ${unit}`,
    met,
    ...(met ? {} : { gap: `missed by ${fmt(actual - goal, digits)} ${unit} (${fmt((actual / goal - 1) * 100, 0)}% over)` }),
  };
}

export function ratio(a: number, b: number): number {
  return b > 0 ? Math.round((a / b) * 1000) / 1000 : NaN;
}

/**
 * The rate the measured processes' CPU cost allows on this machine's cores: cores / CPU seconds
 * per message. A figure near it is CPU-bound; far below it, bound by waiting (commits, round
 * trips, polling). pgbench's own client is not counted in its row.
 */
export function cpuCeiling(processes: readonly ProcessUsage[], cores = cpus().length): number {
  const perMessage = processes.reduce((sum, p) => sum + p.cpuPer1000, 0) / 1000;
  return perMessage > 0 ? Math.round(cores / perMessage) : NaN;
}

function usageCell(processes: readonly ProcessUsage[], key: "peakRssMb" | "cpuPer1000"): string {
  return processes.map((p) => `${p.name} ${key === "peakRssMb" ? fmt(p.peakRssMb) : fmt(p.cpuPer1000, 3)}`).join(" · ");
}

/** The machine's state while a workload ran: load average, CPU stolen by the host, calibration. */
export function machineState(w: WorkloadResult): string {
  if (!w.loadAverage) return "";
  const stolen = w.stolenPercent !== undefined ? `, CPU stolen by the host ${w.stolenPercent}%` : "";
  const calibration = w.calibrationMs ? `, calibration ${w.calibrationMs.start} → ${w.calibrationMs.end} ms` : "";
  return `load average ${w.loadAverage.start} → ${w.loadAverage.end}${stolen}${calibration}`;
}

/** The latency columns: from the producer's acknowledgement to the handler, then end to end (send → handler). */
export const LATENCY_HEADER = ["p50 ms", "p95 ms", "p99 ms", "max ms", "e2e p50 ms", "e2e p99 ms", "n"];
export const LATENCY_LEGEND = "p50 … max: producer's acknowledgement → handler; e2e: producer sends → handler";

/** A system's cells under LATENCY_HEADER ("-" for a measure it lacks). */
export function latencyCells(s: SystemResult): string[] {
  const l = s.latency;
  return [
    fmt(l?.p50 ?? NaN, 2),
    fmt(l?.p95 ?? NaN, 2),
    fmt(l?.p99 ?? NaN, 2),
    fmt(l?.max ?? NaN, 1),
    fmt(s.endToEnd?.p50 ?? NaN, 2),
    fmt(s.endToEnd?.p99 ?? NaN, 2),
    fmt(l?.count ?? s.endToEnd?.count ?? NaN),
  ];
}

/** The printed table of one workload. */
export function formatWorkload(w: WorkloadResult): string {
  const load = w.loadAverage ? ` [${w.seconds} s, ${machineState(w)}]` : "";
  const lines = [`\n== ${w.name}: ${w.title}${load}`];
  if (w.status === "not-available") {
    lines.push(`   not yet available: ${w.reason ?? ""}`);
    return lines.join("\n");
  }
  if (w.status === "failed") {
    lines.push(`   FAILED: ${w.reason ?? ""}`);
  }
  const latency = w.systems.some((s) => s.latency);
  const header = latency
    ? ["system", ...LATENCY_HEADER, "peak RSS MB", "CPU s / 1k msgs"]
    : ["system", "figure", "msgs", "secs", "CPU ceiling/s", "peak RSS MB", "CPU s / 1k msgs"];
  const rows = w.systems.map((s) =>
    latency && (s.latency || s.endToEnd)
      ? [s.system, ...latencyCells(s), usageCell(s.processes, "peakRssMb"), usageCell(s.processes, "cpuPer1000")]
      : [
          s.system,
          `${fmt(s.figure)} ${s.unit}`,
          fmt(s.messages),
          fmt(s.seconds, 2),
          fmt(cpuCeiling(s.processes)),
          usageCell(s.processes, "peakRssMb"),
          usageCell(s.processes, "cpuPer1000"),
        ],
  );
  if (latency) lines.push(`   ${LATENCY_LEGEND}`);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const numeric = (i: number) => i > 0 && i < header.length - 2;
  lines.push(`   ${header.map((h, i) => pad(h, widths[i]!, numeric(i))).join("  ")}`);
  for (const r of rows) lines.push(`   ${r.map((c, i) => pad(c, widths[i]!, numeric(i))).join("  ")}`);
  if (w.ratios.length) lines.push(`   ratios: ${w.ratios.map((r) => `${r.label} ${fmt(r.value, 2)}`).join(", ")}`);
  for (const t of w.targets) lines.push(`   target ${t.target}: ${t.met ? "MET" : "MISSED"} (${t.actual}${t.gap ? `; ${t.gap}` : ""})`);
  for (const s of w.systems) lines.push(`   · ${s.system}: ${s.config}`);
  for (const n of w.notes) lines.push(`   note: ${n}`);
  if (w.statements?.length) {
    lines.push("   heaviest statements (pg_stat_statements, Tidings' measured phase):");
    for (const st of w.statements.slice(0, 8)) {
      lines.push(
        `     ${fmt(st.totalMs)} ms total, ${fmt(st.calls)} calls, ${fmt(st.meanMs, 2)} ms mean, ${fmt(st.rows)} rows: ${st.query.replace(/\s+/g, " ").slice(0, 110)}`,
      );
    }
  }
  return lines.join("\n");
}
