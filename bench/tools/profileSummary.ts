import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

/**
 * Summarizes V8 .cpuprofile files (from `npm run bench -- --cpu-prof DIR ...`): self time by
 * area (our code by file, dependencies by package, node internals, GC, idle) and the heaviest
 * functions. `skip` seconds at the start (start-up: module loading, migrations) are left out.
 * Usage: node --import tsx bench/tools/profileSummary.ts <file-or-dir> [top] [skip-seconds]
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

function area(url: string, name: string): string {
  if (name === "(garbage collector)") return "(gc)";
  if (name === "(idle)" || name === "(program)" || name === "(root)") return name;
  if (!url) return "(native)";
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  const ours = /\/(packages\/[^/]+\/src\/.*)$/.exec(url);
  if (ours) return ours[1]!;
  if (url.startsWith("node:")) return url;
  return url.replace(/^file:\/\//, "");
}

function summarize(file: string, top: number, skipSeconds: number): string {
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let at = 0;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (at >= skipSeconds * 1e6) selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  });
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const idle = [...selfUs.entries()].filter(([id]) => byId.get(id)?.callFrame.functionName === "(idle)").reduce((a, [, us]) => a + us, 0);
  const areas = new Map<string, number>();
  const functions = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id)!;
    const { functionName, url, lineNumber } = node.callFrame;
    const a = area(url, functionName);
    areas.set(a, (areas.get(a) ?? 0) + us);
    const key = `${functionName || "(anonymous)"}  ${a}${url ? `:${lineNumber + 1}` : ""}`;
    functions.set(key, (functions.get(key) ?? 0) + us);
  }
  const busy = total - idle;
  const pct = (us: number) => `${((us / busy) * 100).toFixed(1).padStart(5)}%`;
  const ms = (us: number) =>
    `${Math.round(us / 1000)
      .toLocaleString("en-US")
      .padStart(7)} ms`;
  const lines = [
    `${file}: ${(total / 1e6).toFixed(1)} s sampled, ${(busy / 1e6).toFixed(1)} s busy (${((busy / total) * 100).toFixed(0)}%); shares are of busy time`,
    "  by area:",
  ];
  for (const [a, us] of [...areas]
    .filter(([a]) => a !== "(idle)")
    .sort((x, y) => y[1] - x[1])
    .slice(0, top))
    lines.push(`    ${ms(us)} ${pct(us)}  ${a}`);
  lines.push("  heaviest functions (self time):");
  for (const [f, us] of [...functions]
    .filter(([f]) => !f.startsWith("(idle)"))
    .sort((x, y) => y[1] - x[1])
    .slice(0, top))
    lines.push(`    ${ms(us)} ${pct(us)}  ${f}`);
  return lines.join("\n");
}

const target = process.argv[2];
const top = Number(process.argv[3] ?? 25);
const skip = Number(process.argv[4] ?? 0);
if (!target) {
  console.error("usage: node --import tsx bench/tools/profileSummary.ts <file.cpuprofile | dir> [top]");
  process.exit(2);
}
const files = statSync(target).isDirectory()
  ? readdirSync(target)
      .filter((f) => f.endsWith(".cpuprofile"))
      .map((f) => join(target, f))
  : [target];
for (const f of files) console.log(summarize(f, top, skip));
