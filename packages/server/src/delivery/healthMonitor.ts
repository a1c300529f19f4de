import type { Logger } from "pino";
import { admits, count, HEALTHY, merge, NO_RESULTS, pauseDue, probeDue, type Health, type Tally } from "../domain/circuitBreaker.ts";
import type { AttemptResult, ClaimBatch, LeasedDelivery } from "../domain/delivery.ts";
import type { SubscriptionRow } from "../domain/subscription.ts";
import type { HealthChange } from "../store/subscriptionHealth.ts";

export interface HealthOps {
  load(): Promise<{ now: number; health: Map<number, Health> }>;
  record(tallies: ReadonlyMap<number, Tally>): Promise<HealthChange[]>;
  takeProbe(subscriptionId: number, probeEveryMs: number): Promise<boolean>;
  giveBackProbe(subscriptionId: number): Promise<void>;
  /** Claims one due delivery of the subscription (the probe). */
  claimOne(subscriptionId: number): Promise<ClaimBatch>;
  pause(subscriptionId: number, pauseAfterMs: number): Promise<boolean>;
  subscription(id: number): SubscriptionRow | undefined;
  enabledIds(): readonly number[];
  /** Hands a probe to the dispatcher. */
  push(deliveries: readonly LeasedDelivery[]): void;
  /** Deliveries became due (a circuit closed, a throttle ended): claim now. */
  wake(): void;
  /** Claim at this time (ms since the epoch, our clock): a throttle ends then. */
  wakeAt(time: number): void;
  opened(subscription: SubscriptionRow): void;
}

/**
 * How much longer than a Retry-After a subscription is held: the database's clock is known to a
 * node only within half a round trip, and no delivery may start before the time a receiver named.
 */
const CLOCK_MARGIN_MS = 25;

/** How often a subscription whose results are all successes resets its shared failure count. */
const RESET_EVERY_MS = 1000;

/**
 * This node's side of the subscriptions' circuit breakers, whose state lives in the database
 * (subscription_health) and is shared by every node. It keeps a copy of that state (reloaded
 * each poll interval and on every node's announcement of a change), says which subscriptions
 * claims and pushes must leave out now, counts attempt results into the shared state, and takes
 * the probes and automatic pauses that are due.
 */
export class HealthMonitor {
  private view = new Map<number, Health>();
  /** The database's clock minus ours (ms): due times are the database's. */
  private skew = 0;
  private pending = new Map<number, Tally>();
  /** Successes that count, not yet written (see onResults). */
  private held = new Map<number, Tally>();
  /** The subscriptions whose failures are being written: their count is not yet in the view. */
  private writingFailures = new Set<number>();
  private writing = false;
  private timer: NodeJS.Timeout | null = null;
  private ticking = false;
  private stopped = false;
  private started = false;
  private readonly lastReset = new Map<number, number>();

  constructor(
    private readonly ops: HealthOps,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    await this.refresh();
    this.started = true;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  private now(): number {
    return Date.now() + this.skew;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), this.intervalMs);
    this.timer.unref();
  }

  /** Reloads the shared state (another node announced a change). */
  changed(): void {
    if (!this.started || this.stopped) return;
    void this.refresh().then(
      () => this.ops.wake(),
      () => {},
    );
  }

  private async refresh(): Promise<void> {
    const sent = Date.now();
    const { now, health } = await this.ops.load();
    // The statement ran about halfway through the round trip.
    this.skew = now - (sent + Date.now()) / 2;
    this.view = health;
    for (const h of health.values()) this.wakeWhenThrottleEnds(h);
  }

  /** A subscription held back by a Retry-After is claimed again as soon as it ends, not on the next tick. */
  private wakeWhenThrottleEnds(h: Health): void {
    if (h.throttledUntil !== null && h.throttledUntil > this.now()) this.ops.wakeAt(h.throttledUntil - this.skew + CLOCK_MARGIN_MS + 1);
  }

  health(subscriptionId: number): Health {
    return this.view.get(subscriptionId) ?? HEALTHY;
  }

  /** Whether a delivery of the subscription may start now (a probe always may). */
  admits(subscription: SubscriptionRow, delivery?: LeasedDelivery): boolean {
    return delivery?.probe === true || this.admitsNow(subscription.id, subscription.circuit);
  }

  /** Whether claims should leave the subscription out now. */
  holds(subscriptionId: number): boolean {
    return !this.admitsNow(subscriptionId, this.ops.subscription(subscriptionId)?.circuit ?? null);
  }

  private admitsNow(subscriptionId: number, circuit: SubscriptionRow["circuit"]): boolean {
    return admits(this.view.get(subscriptionId), circuit, this.now() - CLOCK_MARGIN_MS);
  }

  /** Counts written attempt results into the shared state. */
  onResults(results: readonly AttemptResult[]): void {
    const now = Date.now();
    for (const r of results) {
      const throttled = r.retryAfterMs === undefined ? null : r.startedAt.getTime() + r.latencyMs + r.retryAfterMs + this.skew;
      this.pending.set(r.subscriptionId, count(this.pending.get(r.subscriptionId) ?? NO_RESULTS, r.outcome === "delivered", throttled, r.probe));
    }
    // Successes alone change nothing stored while the circuit is closed with no failures counted
    // (as far as this node knows: failures other nodes counted are seen on the next reload) and no
    // failure ratio counts them; then they are dropped. Otherwise they are written at most once a
    // second, and held here between: a failure written meanwhile takes them along, before it
    // (a success dropped instead would let failures on either side of it add up to a run).
    for (const [id, t] of this.pending) {
      const held = this.held.get(id);
      if (held) {
        this.pending.set(id, merge(held, t));
        this.held.delete(id);
      }
      if (t.failures > 0 || t.throttledUntil !== null) continue;
      const h = this.view.get(id);
      if (h && h.state !== "closed") continue;
      const counted = (h !== undefined && h.consecutiveFailures > 0) || this.writingFailures.has(id) || !!this.ops.subscription(id)?.circuit?.ratio;
      if (counted && now - (this.lastReset.get(id) ?? 0) >= RESET_EVERY_MS) continue;
      if (counted) this.held.set(id, this.pending.get(id)!);
      this.pending.delete(id);
    }
    void this.flush();
  }

  /** Writes the successes that count and waited for a failure (each poll interval). */
  private release(): void {
    for (const [id, t] of this.held) this.pending.set(id, merge(t, this.pending.get(id) ?? NO_RESULTS));
    this.held.clear();
    void this.flush();
  }

  private async flush(): Promise<void> {
    if (this.writing || this.pending.size === 0) return;
    this.writing = true;
    try {
      while (this.pending.size > 0 && !this.stopped) {
        const tallies = this.pending;
        this.pending = new Map();
        let changes: HealthChange[];
        for (const [id, t] of tallies) if (t.failures > 0) this.writingFailures.add(id);
        try {
          changes = await this.ops.record(tallies);
        } catch (error) {
          this.log.warn({ err: error }, "recording subscription health failed; retrying");
          for (const [id, t] of tallies) this.pending.set(id, merge(t, this.pending.get(id) ?? NO_RESULTS));
          await new Promise((r) => setTimeout(r, 500));
          continue;
        } finally {
          this.writingFailures.clear();
        }
        const now = Date.now();
        let closed = false;
        for (const c of changes) {
          this.view.set(c.subscriptionId, c.health);
          this.wakeWhenThrottleEnds(c.health);
          if (tallies.get(c.subscriptionId)?.succeeded) this.lastReset.set(c.subscriptionId, now);
          const subscription = this.ops.subscription(c.subscriptionId);
          if (c.event === "opened" && subscription) {
            this.ops.opened(subscription);
            this.log.warn({ subscription: subscription.name, failures: c.health.consecutiveFailures }, "circuit opened");
          }
          if (c.event === "closed") {
            closed = true;
            this.log.info({ subscription: subscription?.name }, "circuit closed");
          }
        }
        if (closed) this.ops.wake();
      }
    } finally {
      this.writing = false;
    }
  }

  /** Each poll interval: reload, pause what stayed open too long, take the probes that are due. */
  private async tick(): Promise<void> {
    if (this.ticking || this.stopped) return;
    this.ticking = true;
    try {
      const before = this.view;
      this.release();
      await this.refresh();
      const now = this.now();
      let freed = false;
      for (const id of this.ops.enabledIds()) {
        const h = this.view.get(id);
        if (!h) continue;
        const was = before.get(id);
        // A throttle that ended since the last look: what waited is due.
        if (was?.throttledUntil && was.throttledUntil > now - this.intervalMs && h.throttledUntil !== null && h.throttledUntil <= now) freed = true;
        const subscription = this.ops.subscription(id);
        const policy = subscription?.circuit ?? null;
        if (!subscription || policy === null) continue;
        if (pauseDue(h, policy, now) && policy.pauseAfterMs !== null) {
          if (await this.ops.pause(id, policy.pauseAfterMs))
            this.log.warn({ subscription: subscription.name }, "subscription paused: its circuit stayed open too long");
          continue;
        }
        if (probeDue(h, policy, now) && (await this.ops.takeProbe(id, policy.probeEveryMs))) await this.probe(subscription);
      }
      if (freed) this.ops.wake();
    } catch (error) {
      this.log.warn({ err: error }, "checking subscription health failed");
    } finally {
      this.ticking = false;
      this.schedule();
    }
  }

  private async probe(subscription: SubscriptionRow): Promise<void> {
    const batch = await this.ops.claimOne(subscription.id);
    if (batch.length === 0) {
      await this.ops.giveBackProbe(subscription.id);
      return;
    }
    this.log.info({ subscription: subscription.name, messageId: batch[0]!.message.id }, "sending a probe");
    for (const delivery of batch) delivery.probe = true;
    this.ops.push(batch);
  }
}
