/** How the relay spaces out re-sends of a row whose send failed. */
export interface BackoffPolicy {
  /** Delay after the first failure. */
  readonly baseMs: number;
  /** Cap on the delay. */
  readonly maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 1_000, maxMs: 300_000 };

/**
 * Delay before the next send after `failures` failed sends (1 = the first failure):
 * base × 2^(failures-1), capped, with ±20% jitter so rows that failed together (a service
 * outage) do not come back in one burst. Defaults: 1s, 2s, 4s … 5 min.
 */
export function backoffDelayMs(failures: number, policy: BackoffPolicy = DEFAULT_BACKOFF, random = Math.random): number {
  const exponent = Math.min(Math.max(failures, 1) - 1, 30);
  const raw = Math.min(policy.baseMs * 2 ** exponent, policy.maxMs);
  return Math.round(raw * (0.8 + 0.4 * random()));
}
