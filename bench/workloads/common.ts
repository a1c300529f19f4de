import type { BenchContext } from "../lib/context.ts";
import { closedLoop } from "../lib/load.ts";
import { Producer } from "../lib/producer.ts";
import { atMost, ratio, type SystemResult, type TargetCheck, type WorkloadResult } from "../lib/report.ts";
import type { TidingsProcess } from "../lib/tidingsProcess.ts";

/** The memory target: service RSS ≤ 200 MB throughout. */
export const SERVICE_RSS_LIMIT_MB = 200;

export function serviceRssTarget(tidings: SystemResult): TargetCheck {
  const service = tidings.processes.find((p) => p.name === "service");
  return atMost(`service RSS ≤ ${SERVICE_RSS_LIMIT_MB} MB`, service?.peakRssMb ?? NaN, SERVICE_RSS_LIMIT_MB, "MB", 0);
}

/** Ratios of Tidings' figure to each other system's ("tidings/pg-boss 10.4.2 7.5"). */
export function ratiosToOthers(tidings: SystemResult, others: readonly SystemResult[]): WorkloadResult["ratios"] {
  return others.map((o) => ({ label: `tidings/${o.role === "limit" ? "limit" : o.system.split(" ")[0]}`, value: ratio(tidings.figure, o.figure) }));
}

/**
 * Stores `count` messages through the batch API (1,000 a request, 4 at a time): the backlog of
 * the deliver and backlog workloads, committed before the subscription is enabled.
 */
export async function seedMessages(ctx: BenchContext, service: TidingsProcess, apiKey: string, count: number): Promise<number> {
  const producer = new Producer(service.url, apiKey, 4);
  const started = performance.now();
  try {
    const batch = Math.min(1_000, count);
    await closedLoop(Math.ceil(count / batch), 4, (b) => producer.publishBatch(b * batch, Math.min(batch, count - b * batch)));
  } finally {
    await producer.close();
  }
  const seconds = (performance.now() - started) / 1000;
  ctx.log(`  seeded ${count.toLocaleString("en-US")} messages in ${seconds.toFixed(1)} s`);
  return seconds;
}

/** Runs a peer unless peers are off; a peer that fails is reported, not fatal to the workload. */
export async function peer(ctx: BenchContext, notes: string[], name: string, fn: () => Promise<SystemResult>): Promise<SystemResult | null> {
  if (!ctx.peers) return null;
  ctx.log(`  ${name} ...`);
  const started = performance.now();
  try {
    const result = await fn();
    ctx.log(`  ${name}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
    return result;
  } catch (error) {
    if (ctx.smoke) throw error;
    notes.push(`${name} failed: ${error instanceof Error ? error.message : String(error)}`);
    ctx.log(`  ${name} FAILED: ${String(error)}`);
    return null;
  }
}
