/**
 * Failed attempts per client address, for console sign-ins and for API keys (one instance
 * each): after `maxFailures` within `windowMs`, that address is refused (429 with Retry-After)
 * until the window that began with its first failure ends. `succeeded` clears a count (sign-ins
 * call it; API keys do not). Kept in memory, per process, in a bounded map: enough to make
 * guessing a key by hand (or by script) hopeless, with no state to clean up in the database.
 */
export class SignInLimiter {
  private readonly failures = new Map<string, { count: number; since: number }>();

  constructor(
    private readonly maxFailures = 10,
    private readonly windowMs = 15 * 60_000,
    private readonly maxTracked = 10_000,
  ) {}

  /** How long `address` must wait before it may try again (0: it may try now). */
  retryAfterMs(address: string, now = Date.now()): number {
    const entry = this.failures.get(address);
    if (!entry) return 0;
    if (now - entry.since >= this.windowMs) {
      this.failures.delete(address);
      return 0;
    }
    return entry.count >= this.maxFailures ? entry.since + this.windowMs - now : 0;
  }

  failed(address: string, now = Date.now()): void {
    const entry = this.failures.get(address);
    if (entry && now - entry.since < this.windowMs) {
      entry.count++;
      return;
    }
    if (this.failures.size >= this.maxTracked) this.forgetExpired(now);
    this.failures.set(address, { count: 1, since: now });
  }

  succeeded(address: string): void {
    this.failures.delete(address);
  }

  private forgetExpired(now: number): void {
    for (const [address, entry] of this.failures) if (now - entry.since >= this.windowMs) this.failures.delete(address);
    // Still full (a flood from many addresses): drop the oldest entries rather than grow.
    for (const address of this.failures.keys()) {
      if (this.failures.size < this.maxTracked) break;
      this.failures.delete(address);
    }
  }
}
