/** A subscription's limits across all service processes; null: none. */
export interface Limits {
  /** Attempts per second. */
  readonly rateLimit: number | null;
  /** Deliveries leased (in flight, or about to start) at once. */
  readonly maxInFlight: number | null;
}

/**
 * The token bucket's size: a fifth of a second's worth (at least one), so attempts go out
 * evenly rather than a second's worth at once, and a measured second never holds more than
 * 1.2 × the rate.
 */
export const burstOf = (rate: number): number => Math.max(1, rate / 5);

/**
 * How many deliveries a claim may take now, and the tokens the bucket holds before it takes
 * them (null: no rate limit). `tokens`/`elapsedMs` as stored (null: a bucket never drawn from,
 * full); `leased`: the subscription's deliveries leased now.
 */
export function bucketTake(
  limits: Limits,
  want: number,
  tokens: number | null,
  elapsedMs: number | null,
  leased: number,
): { n: number; tokens: number | null } {
  let n = Math.max(0, want);
  let available: number | null = null;
  if (limits.rateLimit !== null) {
    const burst = burstOf(limits.rateLimit);
    available = tokens === null || elapsedMs === null ? burst : Math.min(burst, tokens + (Math.max(0, elapsedMs) / 1000) * limits.rateLimit);
    n = Math.min(n, Math.floor(available));
  }
  if (limits.maxInFlight !== null) n = Math.min(n, Math.max(0, limits.maxInFlight - leased));
  return { n, tokens: available };
}
