import { setMaxListeners } from "node:events";
import type { Logger } from "pino";
import { afterFailure } from "../domain/retrySchedule.ts";
import type { AttemptResult, ClaimBatch, Lease, LeasedDelivery } from "../domain/delivery.ts";
import type { SubscriptionRow } from "../domain/subscription.ts";
import type { SendResult } from "../transports/transport.ts";
import type { ResultWriter } from "./resultWriter.ts";
import { startAttemptSpan } from "./attemptSpan.ts";

export interface DispatcherOps {
  /**
   * Takes up to `limit` due deliveries for this node, leaving out the subscriptions in `skip`;
   * `idle` is how many could start at once (free slots less what is queued to take them).
   */
  claim(limit: number, skip: ReadonlySet<number>, idle: number): Promise<ClaimBatch>;
  /** Gives leases back without an attempt. */
  release(leases: readonly Lease[]): Promise<void>;
  subscription(id: number): SubscriptionRow | undefined;
  /**
   * Whether a delivery of the subscription may start now: not while its circuit is open (a probe
   * excepted) or a receiver's Retry-After holds it. One that may not is given back.
   */
  admit?(subscription: SubscriptionRow, delivery: LeasedDelivery): boolean;
  /**
   * Whether the subscription's deliveries go only by claims, which hold its limits across all
   * nodes: one pushed from memory (leased when it was created) is given back and claimed.
   */
  claimsOnly?(subscription: SubscriptionRow): boolean;
  /** `trace`: the attempt's W3C trace context headers, sent along. */
  send(
    subscription: SubscriptionRow,
    delivery: LeasedDelivery,
    body: string,
    signal: AbortSignal,
    trace: Readonly<Record<string, string>>,
  ): Promise<SendResult>;
  /** The lease token of a delivery leased to this node when it was created. */
  readonly nodeId: string;
}

export interface DispatcherOptions {
  concurrency: number;
  pollIntervalMs: number;
  /** Deliveries held in memory beyond those in flight; more would risk outliving their lease. */
  maxQueued: number;
  /** Each subscription's fair share of the slots, unless it sets its own `maxInFlight` (a hard limit). */
  maxInFlightPerSubscription: number;
  /** How long a lease lasts: a delivery waiting in memory is given back before it could outlive it. */
  leaseMs: number;
  /** The longest one attempt may take (the delivery timeout). */
  attemptMs: number;
}

/** A delivery in memory, with the time by which it must have started to finish within its lease. */
interface Held {
  delivery: LeasedDelivery;
  startBy: number;
}

/** Per subscription: its attempts in flight, and deliveries held back by its cap. */
interface Lane {
  inFlight: number;
  waiting: Held[];
}

/**
 * The envelope POSTed to HTTP endpoints and carried by brokers:
 * `{"id","topic","tag","key","payload","headers","createdAt"}`. Built around the payload's JSON
 * text rather than by parsing and re-serializing every payload.
 */
export function envelope(delivery: LeasedDelivery): string {
  const m = delivery.message;
  return `{"id":${JSON.stringify(m.id)},"topic":${JSON.stringify(m.topic)},"tag":${JSON.stringify(m.tag)},"key":${JSON.stringify(m.key)},"payload":${m.payloadJson},"headers":${m.headersJson},"createdAt":"${m.createdAt}"}`;
}

/** Attempts that take at most this on average (ms) let their subscription use the reserved slots. */
const FAST_ATTEMPT_MS = 100;

/**
 * Sends leased deliveries with bounded concurrency. Work arrives two ways: pushed from memory
 * by the node that committed the message (no waiting for a poll), and claimed by the poller,
 * which is the safety net for retries, delays, paused subscriptions and crashed nodes.
 */
export class Dispatcher {
  private queue: Held[] = [];
  private head = 0;
  private inFlight = 0;
  private stopped = false;
  private pollTimer: NodeJS.Timeout | null = null;
  /** When the pending poll timer fires (ms since epoch). */
  private pollAt = Infinity;
  /**
   * Poll times asked for (wakeAt) other than the one the timer is set for, soonest first: each
   * still gets its poll, so a retry due just after an earlier wake is not left to the next tick.
   */
  private wakes: number[] = [];
  private polling = false;
  private pollAgain = false;
  private releases: Lease[] = [];
  /** A delivery given back to go by a claim: claim once the release is written. */
  private claimAfterRelease = false;
  /** The claim running now, if any: stop() waits for it and gives back what it took. */
  private claiming: Promise<unknown> | null = null;
  /** The last claim came back full: more is due than fitted. */
  private moreDue = false;
  private readonly lanes = new Map<number, Lane>();
  /** Subscriptions under their cap again with deliveries waiting: served before the queue. */
  private readonly ready = new Set<number>();
  /** Subscriptions at their cap with at least a cap's worth waiting: claims leave them out. */
  private readonly full = new Set<number>();
  private waitingCount = 0;
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly aborts = new AbortController();
  private readonly running = new Set<Promise<void>>();
  /** Per subscription, a moving average of how long its attempts take (ms): who may use the reserve. */
  private readonly attemptMs = new Map<number, number>();

  constructor(
    private readonly ops: DispatcherOps,
    private readonly results: ResultWriter,
    private readonly options: DispatcherOptions,
    private readonly log: Logger,
  ) {
    // Each broker send in flight listens on the shutdown signal (HTTP sends share one listener).
    setMaxListeners(0, this.aborts.signal);
  }

  start(): void {
    this.wake();
  }

  /** Whether pushing more work from memory would only make it wait past its lease. */
  get saturated(): boolean {
    return this.queued + this.waitingCount >= this.options.maxQueued;
  }

  private get queued(): number {
    return this.queue.length - this.head;
  }

  push(deliveries: readonly LeasedDelivery[]): void {
    if (this.stopped) {
      // Claimed or committed while stopping: given back with the rest at the end of stop().
      for (const delivery of deliveries) this.releaseLater(delivery);
      return;
    }
    // Leases began at most now; held back behind a subscription's cap past startBy, an attempt
    // might not end within its lease (a lease shorter than an attempt: half the lease).
    const startBy = Date.now() + Math.max(this.options.leaseMs - this.options.attemptMs - 1000, this.options.leaseMs / 2);
    for (const delivery of deliveries) this.queue.push({ delivery, startBy });
    this.pump();
  }

  /** Polls now (after a resend, a resume, or when capacity frees up). */
  wake(): void {
    if (this.stopped) return;
    if (this.polling) {
      this.pollAgain = true;
      return;
    }
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollTimer = null;
    // A retry (or the end of a Retry-After) it was waiting for still gets its poll after this one.
    if (this.pollAt > Date.now()) this.remember(this.pollAt);
    this.pollAt = Infinity;
    void this.poll();
  }

  /**
   * Polls at `time` if that is sooner than the next poll: a retry due before the next tick
   * goes out on time rather than up to a poll interval late.
   */
  wakeAt(time: number): void {
    if (this.stopped) return;
    if (this.polling || time >= this.pollAt) {
      this.remember(time);
      return;
    }
    if (this.pollTimer) clearTimeout(this.pollTimer);
    if (this.pollAt > Date.now()) this.remember(this.pollAt);
    this.pollAt = time;
    this.pollTimer = setTimeout(() => this.wake(), Math.max(0, time - Date.now()));
    this.pollTimer.unref();
  }

  /** Keeps a poll time for later (those beyond a poll interval are covered by the regular tick). */
  private remember(time: number): void {
    if (time === Infinity || time > Date.now() + this.options.pollIntervalMs) return;
    let i = 0;
    while (i < this.wakes.length && this.wakes[i]! < time) i++;
    if (this.wakes[i] === time) return;
    this.wakes.splice(i, 0, time);
    // Bounded: the latest ones go (a poll catches everything due by then anyway).
    if (this.wakes.length > 64) this.wakes.length = 64;
  }

  private async poll(): Promise<void> {
    this.polling = true;
    let full = false;
    try {
      const room = this.options.maxQueued + this.options.concurrency - this.queued - this.waitingCount - this.inFlight;
      const limit = Math.min(room, 500);
      if (limit > 0) {
        // Those waiting in a subscription's lane wait for that subscription's own slots, not for these.
        const idle = Math.max(0, this.options.concurrency - this.inFlight - this.queued);
        const claim = this.ops.claim(limit, this.full, idle);
        this.claiming = claim;
        const claimed = await claim;
        full = claimed.length === limit || claimed.more === true;
        this.push(claimed);
      }
    } catch (error) {
      this.log.warn({ err: error }, "claiming due deliveries failed");
    } finally {
      this.polling = false;
      this.claiming = null;
    }
    if (this.stopped) return;
    this.moreDue = full || this.pollAgain;
    this.pollAgain = false;
    // A full batch means more is due: come back as soon as there is room (pump() wakes us).
    if (this.moreDue && this.queued < this.options.maxQueued / 2) {
      setImmediate(() => this.wake());
      return;
    }
    // The soonest poll time asked for, if before the regular tick; those that passed during this poll are due at once.
    const now = Date.now();
    while (this.wakes.length > 1 && this.wakes[1]! <= now) this.wakes.shift();
    const asked = this.wakes[0] ?? Infinity;
    if (asked < now + this.options.pollIntervalMs) this.wakes.shift();
    this.pollAt = Math.min(now + this.options.pollIntervalMs, asked);
    this.pollTimer = setTimeout(() => this.wake(), Math.max(0, this.pollAt - Date.now()));
    this.pollTimer.unref();
  }

  private lane(id: number): Lane {
    let lane = this.lanes.get(id);
    if (!lane) {
      lane = { inFlight: 0, waiting: [] };
      this.lanes.set(id, lane);
    }
    return lane;
  }

  private capOf(subscription: SubscriptionRow): number {
    return subscription.maxInFlight ?? this.options.maxInFlightPerSubscription;
  }

  /**
   * Whether one more attempt of the subscription may start now. Under its cap, yes. Over it: a
   * `maxInFlight` the subscription sets is a hard limit (a receiver that must not get more); the
   * service default is a fair share, and a subscription may go past it on slots nobody else is
   * using as long as a share's worth of slots stays free for the others. One slow endpoint
   * then never holds more than all slots but that reserve, and one fast subscription alone
   * still uses nearly all of them.
   */
  private canStart(subscription: SubscriptionRow, lane: Lane): boolean {
    if (subscription.maxInFlight !== null) return lane.inFlight < subscription.maxInFlight;
    const share = this.options.maxInFlightPerSubscription;
    if (lane.inFlight < share || this.options.concurrency - this.inFlight > share) return true;
    // The reserve itself goes to a subscription whose attempts end quickly: the slots it holds
    // come free within milliseconds, so a newcomer barely waits, and a lone fast subscription
    // keeps every slot (one subscription's deliver rate: 14.0k/s held to 96 slots, 17k/s with 128).
    // One whose attempts are slow, or not yet known, never takes it.
    return (this.attemptMs.get(subscription.id) ?? Infinity) <= FAST_ATTEMPT_MS;
  }

  /**
   * Starts deliveries while there are free slots: first those of subscriptions whose cap freed
   * up, then the queue. A delivery over its subscription's cap waits in the subscription's lane,
   * so other subscriptions' deliveries go on past it. Claims leave a subscription out while a
   * cap's worth waits; a lane holds at most a quarter of maxQueued (or four caps' worth), more is
   * given back to the database, so one slow subscription cannot fill the memory others need.
   */
  private pump(): void {
    const now = Date.now();
    while (this.inFlight < this.options.concurrency && !this.stopped) {
      let held: Held | undefined;
      const fromLane = this.ready.size > 0;
      if (fromLane) {
        const id = this.ready.values().next().value!;
        const lane = this.lanes.get(id);
        const subscription = this.ops.subscription(id);
        if (!lane || lane.waiting.length === 0 || (subscription && !this.canStart(subscription, lane))) {
          // At its cap again: it becomes ready when one of its attempts ends.
          this.ready.delete(id);
          if (!lane || lane.waiting.length === 0) this.full.delete(id);
          continue;
        }
        held = lane.waiting.shift()!;
        this.waitingCount--;
        if (lane.waiting.length === 0) this.ready.delete(id);
        if (this.full.has(id) && (!subscription || lane.waiting.length < this.capOf(subscription))) {
          // Running low: let the next claim take more of it before its lane runs dry.
          this.full.delete(id);
          this.moreDue = true;
        }
      } else if (this.head < this.queue.length) {
        held = this.queue[this.head++]!;
      } else break;
      this.place(held, now);
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    // The queue ran low: ask the database for more rather than wait for the next tick.
    if (this.moreDue && !this.polling && this.queued < this.options.maxQueued / 2) {
      this.moreDue = false;
      this.wake();
    }
  }

  /**
   * Starts one delivery, or holds it back behind its subscription's cap, or gives its lease back
   * (its subscription paused or gone, or it waited too long to start, in the queue or in a lane).
   */
  private place(held: Held, now: number): void {
    const { delivery } = held;
    const subscription = this.ops.subscription(delivery.subscriptionId);
    if (
      this.stopped ||
      !subscription ||
      !subscription.enabled ||
      // Waiting in the queue as in a lane: a node that took over a dead one's work claims it in
      // batches of up to 500, and on a busy machine with short leases the last of a batch started
      // after its lease had run out, while another node claimed and sent it again (seen in
      // test/multinode.test.ts: a delivery sent twice by the two survivors, 1.7 s apart, lease 2 s).
      held.startBy < now ||
      (this.ops.admit !== undefined && !this.ops.admit(subscription, delivery))
    ) {
      this.releaseLater(delivery);
      return;
    }
    if (delivery.lease === undefined && this.ops.claimsOnly?.(subscription)) {
      this.releaseLater(delivery, true);
      return;
    }
    const lane = this.lane(subscription.id);
    const cap = this.capOf(subscription);
    if (!this.canStart(subscription, lane)) {
      if (lane.waiting.length >= Math.max(cap * 4, this.options.maxQueued >> 2)) {
        this.releaseLater(delivery);
      } else {
        lane.waiting.push(held);
        this.waitingCount++;
        this.scheduleSweep();
      }
      if (lane.waiting.length >= cap) this.full.add(subscription.id);
      return;
    }
    lane.inFlight++;
    this.inFlight++;
    const started = performance.now();
    const work = this.run(subscription, delivery).finally(() => {
      const ms = performance.now() - started;
      const average = this.attemptMs.get(subscription.id);
      this.attemptMs.set(subscription.id, average === undefined ? ms : average + (ms - average) * 0.2);
      this.running.delete(work);
      this.inFlight--;
      lane.inFlight--;
      if (lane.waiting.length > 0) this.ready.add(subscription.id);
      else if (lane.inFlight === 0) this.lanes.delete(subscription.id);
      this.pump();
    });
    this.running.add(work);
  }

  /** Gives back, about once a second, leases of deliveries that waited in a lane too long to start. */
  private scheduleSweep(): void {
    if (this.sweepTimer || this.stopped) return;
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = null;
      const now = Date.now();
      for (const [id, lane] of this.lanes) {
        const keep = lane.waiting.filter((held) => {
          if (held.startBy >= now) return true;
          this.releaseLater(held.delivery);
          return false;
        });
        this.waitingCount -= lane.waiting.length - keep.length;
        lane.waiting = keep;
        if (keep.length === 0) {
          this.ready.delete(id);
          this.full.delete(id);
          if (lane.inFlight === 0) this.lanes.delete(id);
        }
      }
      if (this.waitingCount > 0) this.scheduleSweep();
    }, 1000);
    this.sweepTimer.unref();
  }

  private async run(subscription: SubscriptionRow, delivery: LeasedDelivery): Promise<void> {
    const startedAt = new Date();
    const started = performance.now();
    const span = startAttemptSpan(subscription, delivery);
    const sent = await this.ops.send(subscription, delivery, envelope(delivery), this.aborts.signal, span.headers);
    if (sent.aborted) {
      span.end("aborted", sent);
      // Shutdown cut it short: no attempt is recorded, the delivery is due again at once.
      this.releaseLater(delivery);
      return;
    }
    const latencyMs = Math.round(performance.now() - started);
    const base: AttemptResult = {
      deliveryId: delivery.deliveryId,
      messageDay: delivery.messageDay,
      lease: this.leaseOf(delivery),
      messageId: delivery.message.id,
      subscriptionId: delivery.subscriptionId,
      attempt: delivery.attempt,
      outcome: "delivered",
      startedAt,
      latencyMs,
      statusCode: sent.statusCode,
      error: sent.error,
      nextAttemptAt: null,
      deadReason: null,
      firstAttemptAt: delivery.firstAttemptAt ?? startedAt,
      // A 429's Retry-After holds the whole subscription back, not just this delivery.
      ...(sent.statusCode === 429 && sent.retryAfterMs !== undefined ? { retryAfterMs: sent.retryAfterMs } : {}),
      // Only a probe's success closes a circuit that a failure ratio opened.
      ...(delivery.probe ? { probe: true as const } : {}),
    };
    if (sent.ok) {
      span.end("delivered", sent);
      this.results.add(base);
      return;
    }
    const firstAt = delivery.firstAttemptAt ?? startedAt;
    const next = afterFailure(subscription.retry, delivery.attemptInCycle, startedAt.getTime() - firstAt.getTime(), sent.retryAfterMs);
    if (next.kind === "dead" && delivery.probe && subscription.circuit) {
      // A probe finds out whether the endpoint is back; its failure says no more than that.
      span.end("failed", sent);
      this.results.add({ ...base, outcome: "failed", nextAttemptAt: new Date(startedAt.getTime() + latencyMs + subscription.circuit.probeEveryMs) });
    } else if (next.kind === "dead") {
      span.end("dead", sent);
      this.log.warn(
        { messageId: delivery.message.id, subscription: subscription.name, reason: next.reason, error: sent.error, ...span.logFields },
        "delivery is dead",
      );
      this.results.add({ ...base, outcome: "dead", deadReason: next.reason });
    } else {
      span.end("failed", sent);
      this.log.debug(
        { messageId: delivery.message.id, subscription: subscription.name, attempt: delivery.attempt, error: sent.error, ...span.logFields },
        "delivery attempt failed",
      );
      this.results.add({ ...base, outcome: "failed", nextAttemptAt: new Date(startedAt.getTime() + latencyMs + next.delayMs) });
    }
  }

  /** The lease token a delivery is held under: its claim's, or this node's id when leased at creation. */
  private leaseOf(delivery: LeasedDelivery): string {
    return delivery.lease ?? this.ops.nodeId;
  }

  private releaseLater(delivery: LeasedDelivery, claimAfter = false): void {
    this.releases.push({ deliveryId: delivery.deliveryId, messageDay: delivery.messageDay, lease: this.leaseOf(delivery) });
    if (claimAfter) this.claimAfterRelease = true;
    if (this.releases.length === 1 && !this.stopped) {
      setImmediate(() => {
        const leases = this.releases.splice(0);
        const claim = this.claimAfterRelease;
        this.claimAfterRelease = false;
        if (leases.length > 0) {
          this.ops.release(leases).then(
            () => claim && this.wake(),
            (error: unknown) => this.log.warn({ err: error }, "releasing leases failed"),
          );
        }
      });
    }
  }

  /**
   * Stops taking work; gives the attempts in flight up to `graceMs` to finish, then aborts them
   * (their leases are given back, no attempt is recorded); releases everything still in memory.
   */
  async stop(graceMs = 2000): Promise<void> {
    this.stopped = true;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    for (const held of this.queue.slice(this.head)) this.releaseLater(held.delivery);
    for (const lane of this.lanes.values()) for (const held of lane.waiting) this.releaseLater(held.delivery);
    this.queue = [];
    this.head = 0;
    this.lanes.clear();
    this.ready.clear();
    this.full.clear();
    this.waitingCount = 0;
    // A claim still running gives what it took to push(), which gives it back (above).
    const finished = Promise.allSettled([...this.running, ...(this.claiming ? [this.claiming] : [])]);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([finished, new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    if (this.running.size > 0) {
      this.log.info({ inFlight: this.running.size }, "aborting deliveries in flight for shutdown");
      this.aborts.abort();
      // Each send answers `aborted` at once; a moment for the last ones to settle.
      await Promise.race([Promise.allSettled([...this.running]), new Promise((r) => setTimeout(r, 1000).unref())]);
    }
    await this.ops.release(this.releases.splice(0)).catch((error: unknown) => this.log.warn({ err: error }, "releasing leases at shutdown failed"));
  }
}
