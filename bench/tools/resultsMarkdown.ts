import { readFileSync } from "node:fs";
import type { BenchReport } from "../suite.ts";
import { fmt, LATENCY_HEADER, LATENCY_LEGEND, latencyCells, machineState } from "../lib/report.ts";

/**
 * Renders a results file (bench/results/<date>.json) as the markdown tables of
 * docs/performance.md. Usage: node --import tsx bench/tools/resultsMarkdown.ts <results.json>
 */

const file = process.argv[2];
if (!file) {
  console.error("usage: node --import tsx bench/tools/resultsMarkdown.ts <results.json>");
  process.exit(2);
}
const report = JSON.parse(readFileSync(file, "utf8")) as BenchReport;
const out: string[] = [];
const m = report.machine;
out.push(
  `Run of ${report.startedAt} (${report.seconds} s): ${m.cpus} cores (${m.cpuModel}), ${m.memoryGb} GB, Linux ${m.kernel}, Node ${m.node}, ${m.postgres}.`,
  "",
);

const usage = (procs: BenchReport["workloads"][number]["systems"][number]["processes"], key: "peakRssMb" | "cpuPer1000") =>
  procs.map((p) => `${p.name} ${key === "peakRssMb" ? fmt(p.peakRssMb) : fmt(p.cpuPer1000, 3)}`).join(" · ");

for (const w of report.workloads) {
  const load = w.loadAverage ? ` — ${machineState(w)}` : "";
  out.push(`### ${w.name}: ${w.title}${load}`, "");
  if (w.status !== "ok") {
    out.push(`${w.status === "failed" ? "**Failed**" : "Not yet available"}: ${w.reason ?? ""}`, "");
    continue;
  }
  const latency = w.systems.some((s) => s.latency);
  if (latency) {
    out.push(`| system | ${LATENCY_HEADER.join(" | ")} | peak RSS MB | CPU s / 1k msgs |`, `|---|${LATENCY_HEADER.map(() => "--:").join("|")}|---|---|`);
    for (const s of w.systems) {
      out.push(`| ${s.system} | ${latencyCells(s).join(" | ")} | ${usage(s.processes, "peakRssMb")} | ${usage(s.processes, "cpuPer1000")} |`);
    }
    out.push("", `${LATENCY_LEGEND}.`);
  } else {
    out.push("| system | figure | msgs | secs | CPU ceiling/s | peak RSS MB | CPU s / 1k msgs |", "|---|--:|--:|--:|--:|---|---|");
    for (const s of w.systems) {
      out.push(
        `| ${s.system} | ${fmt(s.figure)} ${s.unit} | ${fmt(s.messages)} | ${fmt(s.seconds, 2)} | ${fmt(s.cpuCeiling ?? NaN)} | ${usage(s.processes, "peakRssMb")} | ${usage(s.processes, "cpuPer1000")} |`,
      );
    }
  }
  out.push("");
  if (w.ratios.length) out.push(`Ratios: ${w.ratios.map((r) => `${r.label} **${fmt(r.value, 2)}**`).join(", ")}.`, "");
  for (const t of w.targets) out.push(`- ${t.met ? "✅ met" : "❌ **missed**"}: ${t.target} — ${t.actual}${t.gap ? `; ${t.gap}` : ""}`);
  out.push("");
  for (const s of w.systems) out.push(`- *${s.system}*: ${s.config}`);
  for (const n of w.notes) out.push(`- note: ${n}`);
  out.push("");
}
console.log(out.join("\n"));
