import type { Logger } from "pino";
import { afterFailure } from "../domain/retrySchedule.ts";
import type { AttemptResult, LeasedDelivery } from "../store/deliveryOps.ts";
import type { SubscriptionRow } from "../store/subscriptions.ts";
import type { SendResult } from "./httpTransport.ts";
import type { ResultWriter } from "./resultWriter.ts";

export interface DispatcherOps {
  /** Takes up to `limit` due deliveries for this node. */
  claim(limit: number): Promise<LeasedDelivery[]>;
  /** Gives leases back without an attempt. */
  release(ids: readonly number[]): Promise<void>;
  subscription(id: number): SubscriptionRow | undefined;
  send(subscription: SubscriptionRow, delivery: LeasedDelivery, body: string): Promise<SendResult>;
}

export interface DispatcherOptions {
  concurrency: number;
  pollIntervalMs: number;
  /** Deliveries held in memory beyond those in flight; more would risk outliving their lease. */
  maxQueued: number;
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

/**
 * Sends leased deliveries with bounded concurrency. Work arrives two ways: pushed from memory
 * by the node that committed the message (no waiting for a poll), and claimed by the poller,
 * which is the safety net for retries, delays, paused subscriptions and crashed nodes.
 */
export class Dispatcher {
  private queue: LeasedDelivery[] = [];
  private head = 0;
  private inFlight = 0;
  private stopped = false;
  private pollTimer: NodeJS.Timeout | null = null;
  /** When the pending poll timer fires (ms since epoch). */
  private pollAt = Infinity;
  /** A wakeAt() that arrived during a poll, applied when it ends. */
  private wakeAfterPoll = Infinity;
  private polling = false;
  private pollAgain = false;
  private releases: number[] = [];
  /** The last claim came back full: more is due than fitted. */
  private moreDue = false;

  constructor(
    private readonly ops: DispatcherOps,
    private readonly results: ResultWriter,
    private readonly options: DispatcherOptions,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.wake();
  }

  /** Whether pushing more work from memory would only make it wait past its lease. */
  get saturated(): boolean {
    return this.queued >= this.options.maxQueued;
  }

  private get queued(): number {
    return this.queue.length - this.head;
  }

  push(deliveries: readonly LeasedDelivery[]): void {
    for (const d of deliveries) this.queue.push(d);
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
    this.pollAt = Infinity;
    void this.poll();
  }

  /**
   * Polls at `time` if that is sooner than the next poll: a retry due before the next tick
   * goes out on time rather than up to a poll interval late.
   */
  wakeAt(time: number): void {
    if (this.stopped || time >= this.pollAt) return;
    if (this.polling) {
      this.wakeAfterPoll = Math.min(this.wakeAfterPoll, time);
      return;
    }
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollAt = time;
    this.pollTimer = setTimeout(() => this.wake(), Math.max(0, time - Date.now()));
    this.pollTimer.unref();
  }

  private async poll(): Promise<void> {
    this.polling = true;
    let full = false;
    try {
      const room = this.options.maxQueued + this.options.concurrency - this.queued - this.inFlight;
      const limit = Math.min(room, 500);
      if (limit > 0) {
        const claimed = await this.ops.claim(limit);
        full = claimed.length === limit;
        this.push(claimed);
      }
    } catch (error) {
      this.log.warn({ err: error }, "claiming due deliveries failed");
    } finally {
      this.polling = false;
    }
    if (this.stopped) return;
    this.moreDue = full || this.pollAgain;
    this.pollAgain = false;
    // A full batch means more is due: come back as soon as there is room (pump() wakes us).
    if (this.moreDue && this.queued < this.options.maxQueued / 2) {
      setImmediate(() => this.wake());
      return;
    }
    this.pollAt = Math.min(Date.now() + this.options.pollIntervalMs, this.wakeAfterPoll);
    this.wakeAfterPoll = Infinity;
    this.pollTimer = setTimeout(() => this.wake(), Math.max(0, this.pollAt - Date.now()));
    this.pollTimer.unref();
  }

  private pump(): void {
    while (this.inFlight < this.options.concurrency && this.head < this.queue.length) {
      const delivery = this.queue[this.head++]!;
      this.inFlight++;
      void this.run(delivery).finally(() => {
        this.inFlight--;
        this.pump();
      });
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

  private async run(delivery: LeasedDelivery): Promise<void> {
    const subscription = this.ops.subscription(delivery.subscriptionId);
    if (this.stopped || !subscription || !subscription.enabled) {
      this.releaseLater(delivery.deliveryId);
      return;
    }
    const startedAt = new Date();
    const started = performance.now();
    const sent = await this.ops.send(subscription, delivery, envelope(delivery));
    const latencyMs = Math.round(performance.now() - started);
    const base: AttemptResult = {
      deliveryId: delivery.deliveryId,
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
    };
    if (sent.ok) {
      this.results.add(base);
      return;
    }
    const firstAt = delivery.firstAttemptAt ?? startedAt;
    const next = afterFailure(subscription.retry, delivery.attemptInCycle, startedAt.getTime() - firstAt.getTime(), sent.retryAfterMs);
    if (next.kind === "dead") {
      this.log.warn({ messageId: delivery.message.id, subscription: subscription.name, reason: next.reason, error: sent.error }, "delivery is dead");
      this.results.add({ ...base, outcome: "dead", deadReason: next.reason });
    } else {
      this.results.add({ ...base, outcome: "failed", nextAttemptAt: new Date(startedAt.getTime() + latencyMs + next.delayMs) });
    }
  }

  private releaseLater(id: number): void {
    this.releases.push(id);
    if (this.releases.length === 1) {
      setImmediate(() => {
        const ids = this.releases.splice(0);
        this.ops.release(ids).catch((error: unknown) => this.log.warn({ err: error }, "releasing leases failed"));
      });
    }
  }

  /** Stops taking work, waits for in-flight sends (up to the deadline), and releases the rest. */
  async stop(deadlineMs = 5000): Promise<void> {
    this.stopped = true;
    if (this.pollTimer) clearTimeout(this.pollTimer);
    const left = this.queue.slice(this.head).map((d) => d.deliveryId);
    this.queue = [];
    this.head = 0;
    const deadline = Date.now() + deadlineMs;
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await this.ops.release([...left, ...this.releases.splice(0)]).catch(() => {});
  }
}
