/**
 * Closed loop: `concurrency` producers, each sending its next item as soon as the last one
 * was answered, until `total` items are done. Returns the elapsed seconds. The first error
 * stops the run and is thrown: a benchmark that loses requests measures nothing.
 */
export async function closedLoop(total: number, concurrency: number, send: (index: number) => Promise<void>): Promise<number> {
  return (await timedLoop(total, concurrency, Infinity, send)).seconds;
}

/**
 * A closed loop that also stops starting new items after `maxSeconds` (slow peers: the rate
 * is the same, the run shorter). Returns the items done and the elapsed seconds.
 */
export async function timedLoop(
  total: number,
  concurrency: number,
  maxSeconds: number,
  send: (index: number) => Promise<void>,
): Promise<{ done: number; seconds: number }> {
  let next = 0;
  let done = 0;
  let failed: unknown = null;
  const started = performance.now();
  const deadline = started + maxSeconds * 1000;
  async function producer(): Promise<void> {
    while (failed === null && performance.now() < deadline) {
      const index = next++;
      if (index >= total) return;
      try {
        await send(index);
        done++;
      } catch (error) {
        failed ??= error;
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, producer));
  if (failed !== null) throw failed;
  return { done, seconds: (performance.now() - started) / 1000 };
}

/** Slow peers stop starting new items after this long; their rate is measured over what they did. */
export const PEER_MAX_SECONDS = 30;

/**
 * Open loop: starts item i at `i / rate` seconds whether or not earlier items were answered
 * (as independent clients would), for `count` items. Resolves when all are answered.
 */
export async function openLoop(count: number, ratePerSecond: number, send: (index: number) => Promise<void>): Promise<{ seconds: number; lateMs: number }> {
  const intervalMs = 1000 / ratePerSecond;
  const started = performance.now();
  const inFlight: Promise<void>[] = [];
  let failed: unknown = null;
  let lateMs = 0;
  for (let i = 0; i < count && failed === null; i++) {
    const due = started + i * intervalMs;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    lateMs = Math.max(lateMs, performance.now() - due);
    inFlight.push(
      send(i).catch((error: unknown) => {
        failed ??= error;
      }),
    );
  }
  await Promise.all(inFlight);
  if (failed !== null) throw failed;
  return { seconds: (performance.now() - started) / 1000, lateMs };
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  /** Deliveries that reached the handler before the producer had its reply (counted as 0 ms). */
  beforeReply: number;
}

/** Latencies in ms; negative ones (handler ran before the producer saw its reply) count as 0. */
export function summarize(latenciesMs: readonly number[]): LatencySummary {
  const beforeReply = latenciesMs.filter((l) => l < 0).length;
  const sorted = latenciesMs.map((l) => Math.max(0, l)).sort((a, b) => a - b);
  const r = (v: number) => Math.round(v * 100) / 100;
  return {
    count: sorted.length,
    p50: r(percentile(sorted, 50)),
    p95: r(percentile(sorted, 95)),
    p99: r(percentile(sorted, 99)),
    max: r(sorted[sorted.length - 1] ?? NaN),
    beforeReply,
  };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `check` every `intervalMs` until it is true; throws `what` after `timeoutMs`. */
export async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Warm-up before a measured phase (a fresh process's JIT, pools, prepared statements): about 5% of the run, not counted. */
export function warmupCount(total: number): number {
  return Math.min(1_000, Math.max(10, Math.round(total / 20)));
}
