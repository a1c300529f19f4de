import pg from "pg";
import { fromPg, migrate, type Executor } from "@tidings/sdk";
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

/**
 * A short name of a system for ratio labels: its first word, and what sets it apart from others
 * of the same name ("pg-boss 10.4.2 signed POST" → "pg-boss POST", "… no-op" → "pg-boss no-op").
 */
export function shortName(system: SystemResult): string {
  if (system.role === "limit") return "limit";
  const words = system.system.split(" ");
  const variant = words.includes("POST") ? " POST" : words.includes("no-op") ? " no-op" : "";
  return `${words[0]}${variant}`;
}

/** Ratios of Tidings' figure to each other system's ("tidings/pg-boss 7.5", "tidings/pg-boss POST 3.1"). */
export function ratiosToOthers(tidings: SystemResult, others: readonly SystemResult[]): WorkloadResult["ratios"] {
  return others.map((o) => ({ label: `tidings/${shortName(o)}`, value: ratio(tidings.figure, o.figure) }));
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

/** Accounts a business UPDATE spreads over: enough that 32 concurrent transactions rarely wait on a row lock. */
export const ACCOUNTS = 1_000;

/**
 * A user's own database for the SDK workloads: a pool, the SDK's tables, and an `accounts` table
 * of ACCOUNTS rows for the business update. Ends the pool after `fn`.
 */
export async function withAccounts<T>(url: string, poolSize: number, fn: (pool: pg.Pool, db: Executor) => Promise<T>): Promise<T> {
  const pool = new pg.Pool({ connectionString: url, max: poolSize });
  pool.on("error", () => {});
  try {
    const db = fromPg(pool);
    await migrate(db);
    await pool.query(`create table accounts (id int primary key, balance bigint not null default 0)`);
    await pool.query(`insert into accounts (id) select g from generate_series(1, ${ACCOUNTS}) g`);
    return await fn(pool, db);
  } finally {
    await pool.end();
  }
}

/** The business change of the SDK workloads: one account's balance + 1. */
export const creditAccount = (tx: Executor, i: number) => tx.query("update accounts set balance = balance + 1 where id = $1", [(i % ACCOUNTS) + 1]);
