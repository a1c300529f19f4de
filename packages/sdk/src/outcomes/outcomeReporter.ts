import { call, resolveHttpOptions, type HttpOptions, type ResolvedHttpOptions } from "../client/http.ts";
import { backoffDelayMs } from "../domain/backoff.ts";
import { TidingsError } from "../errors.ts";

/** What a consumer did with one delivered message. */
export type OutcomeKind = "applied" | "duplicate" | "failed";

/** One report, keyed as the service knows the delivery: the subscription's name and the message's full id. */
export interface OutcomeReport {
  subscription: string;
  messageId: string;
  outcome: OutcomeKind;
  /** A failed outcome's error. */
  error?: string | null;
  /** A broker consumer gave up on the message (its dead letter). */
  gaveUp?: boolean;
}

export interface OutcomeReporterOptions extends HttpOptions {
  /** Reports per call; default 500 (the service takes up to 1000). */
  maxBatch?: number;
  /** A partial batch is sent this long after its first report; default 1 s. */
  flushIntervalMs?: number;
  /** Applied, duplicate and failed reports waiting at most; past it new ones are dropped (counted); default 10,000. */
  maxQueue?: number;
  /** Give-up reports (`gaveUp`) kept until the service takes them; past it new ones are dropped (counted); default 10,000. */
  maxKept?: number;
  /**
   * After a call that failed with give-up reports in it, the wait before they are sent again;
   * it doubles with each failed call in a row, up to 30 s (at least this). Default 1 s.
   */
  retryMs?: number;
  /** One call's deadline; default 5 s. A failed call's give-up reports are kept and sent again; its other reports are dropped. */
  timeoutMs?: number;
  /** `close()`'s deadline for sending what is queued; default 5 s. */
  closeTimeoutMs?: number;
  /** Told of each call that failed, and of dropped reports (for logs); an exception thrown here is ignored. */
  onEvent?: (event: OutcomeReporterEvent) => void;
}

export type OutcomeReporterEvent =
  | { type: "sent"; count: number }
  | { type: "lost"; count: number; error: unknown }
  | { type: "retrying"; count: number; error: unknown; inMs: number }
  | { type: "dropped"; count: number };

export interface OutcomeReporterStats {
  reported: number;
  sent: number;
  /** Reports of calls that failed (service down, refused, timed out) and were not kept, or still waiting when `close()` gave up. */
  lost: number;
  /** Reports dropped because their queue was full (or the reporter closed). */
  dropped: number;
  /** Give-up reports put back after a failed call, to be sent again (counted each time). */
  retried: number;
}

/** Longest error text sent; the service keeps 1000 characters. */
const ERROR_CHARS = 1000;
/** The longest wait between two calls carrying kept reports. */
const MAX_RETRY_MS = 30_000;

/** Whether the same call may succeed later: the service was down, overloaded, or did not answer in time. */
const mayRetry = (error: unknown): boolean => !(error instanceof TidingsError) || error.retryable;

/**
 * Reports consumers' outcomes to the service (`POST /v1/outcomes`) off the hot path: `report`
 * only queues (never waits, never throws); the queue is sent in batches of up to `maxBatch`, at
 * once when a batch is full, else `flushIntervalMs` after its first report, one call at a time.
 * Each call has a deadline. A broker consumer's give-up (`gaveUp`: what makes the delivery dead
 * and shows it among the dead letters) is kept until the service takes it: a call that failed
 * (network, timeout, 5xx, 429) puts them back first in line, sent again after a backoff, in a
 * queue of their own bounded by `maxKept`. Applied, duplicate and failed reports are
 * informational: a failed call drops them, so a service that is down costs only those (the
 * handling they describe was done and answered already). Give the same reporter to a receiver
 * and to consumers (`outcomes:`); `close()` sends what is queued, once, within `closeTimeoutMs`.
 */
export class OutcomeReporter {
  readonly stats: OutcomeReporterStats = { reported: 0, sent: 0, lost: 0, dropped: 0, retried: 0 };
  private readonly http: ResolvedHttpOptions;
  private readonly maxBatch: number;
  private readonly flushIntervalMs: number;
  private readonly maxQueue: number;
  private readonly maxKept: number;
  private readonly retryMs: number;
  private readonly closeTimeoutMs: number;
  /** Applied, duplicate and failed reports. */
  private queue: OutcomeReport[] = [];
  /** Give-up reports, sent first. */
  private kept: OutcomeReport[] = [];
  private timer: NodeJS.Timeout | null = null;
  private sending: Promise<boolean> | null = null;
  /** Failed calls in a row that put reports back, and the time before which none is made. */
  private failures = 0;
  private resumeAt = 0;
  private closed = false;

  constructor(private readonly options: OutcomeReporterOptions) {
    this.http = { ...resolveHttpOptions(options), timeoutMs: options.timeoutMs ?? 5000, retries: 0 };
    this.maxBatch = Math.min(Math.max(1, options.maxBatch ?? 500), 1000);
    this.flushIntervalMs = Math.max(0, options.flushIntervalMs ?? 1000);
    this.maxQueue = Math.max(this.maxBatch, options.maxQueue ?? 10_000);
    this.maxKept = Math.max(1, options.maxKept ?? 10_000);
    this.retryMs = Math.max(1, options.retryMs ?? 1000);
    this.closeTimeoutMs = Math.max(0, options.closeTimeoutMs ?? 5000);
  }

  private emit(event: OutcomeReporterEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch {
      // a listener's exception is not the reporter's problem
    }
  }

  /** Reports waiting to be sent: give-ups kept and the others. */
  get waiting(): { kept: number; queued: number } {
    return { kept: this.kept.length, queued: this.queue.length };
  }

  /** Queues one report; never waits, never throws. */
  report(report: OutcomeReport): void {
    this.stats.reported++;
    const into = report.gaveUp ? this.kept : this.queue;
    if (this.closed || into.length >= (report.gaveUp ? this.maxKept : this.maxQueue)) {
      this.stats.dropped++;
      this.emit({ type: "dropped", count: 1 });
      return;
    }
    const error = report.error == null ? null : report.error.slice(0, ERROR_CHARS);
    into.push({
      subscription: report.subscription,
      messageId: report.messageId,
      outcome: report.outcome,
      error,
      ...(report.gaveUp ? { gaveUp: true } : {}),
    });
    this.schedule(false);
  }

  private get pending(): number {
    return this.kept.length + this.queue.length;
  }

  /**
   * Sends a batch now if one is full (or `now`) and no backoff holds, else sets the timer (a
   * partial batch's interval, or the backoff's end) unless it is set. One call at a time: the
   * end of a call schedules what is left.
   */
  private schedule(now: boolean): void {
    if (this.sending || this.closed || this.pending === 0) return;
    const holdMs = this.resumeAt - Date.now();
    if (holdMs <= 0 && (now || this.pending >= this.maxBatch)) {
      this.clearTimer();
      this.sending = this.send(this.http.timeoutMs).finally(() => {
        this.sending = null;
        this.schedule(false);
      });
      return;
    }
    if (this.timer) return;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.schedule(true);
      },
      holdMs > 0 ? holdMs : this.flushIntervalMs,
    );
    this.timer.unref(); // a consumer's process may end with reports waiting: close() sends them
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** One call with the next batch, the kept reports first; true when the service took it. */
  private async send(timeoutMs: number): Promise<boolean> {
    const batch = this.kept.splice(0, this.maxBatch);
    batch.push(...this.queue.splice(0, this.maxBatch - batch.length));
    try {
      await call<unknown>(this.http, "POST", "/v1/outcomes", { outcomes: batch }, { timeoutMs });
      this.stats.sent += batch.length;
      this.failures = 0;
      this.resumeAt = 0;
      this.emit({ type: "sent", count: batch.length });
      return true;
    } catch (error) {
      const again = mayRetry(error) && !this.closed ? batch.filter((r) => r.gaveUp) : [];
      if (again.length > 0) {
        this.kept.unshift(...again);
        const over = this.kept.length - this.maxKept;
        if (over > 0) {
          this.kept.splice(this.maxKept); // the newest go: they came in while the queue was full
          this.stats.dropped += over;
          this.emit({ type: "dropped", count: over });
        }
        this.stats.retried += again.length;
        this.failures++;
        // The relay's spacing (the retry wait, doubled per failed call in a row, capped), without
        // its jitter: one reporter makes one call at a time, so there is no burst to spread.
        const inMs = backoffDelayMs(this.failures, { baseMs: this.retryMs, maxMs: Math.max(MAX_RETRY_MS, this.retryMs) }, () => 0.5);
        this.resumeAt = Date.now() + inMs;
        this.emit({ type: "retrying", count: again.length, error, inMs });
      }
      const lost = batch.length - again.length;
      if (lost > 0) {
        this.stats.lost += lost;
        this.emit({ type: "lost", count: lost, error });
      }
      return false;
    }
  }

  /**
   * Sends everything queued now, each report in one call at most, not waiting for a backoff;
   * stops at the first call that fails (what it kept stays queued) or at `deadline` (ms since
   * the epoch). Resolves when done.
   */
  async flush(deadline = Number.POSITIVE_INFINITY): Promise<void> {
    let left = this.pending;
    while (left > 0 && this.pending > 0) {
      if (this.sending) {
        await this.sending;
        continue;
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      this.clearTimer();
      left -= Math.min(this.maxBatch, this.pending);
      this.sending = this.send(Math.min(this.http.timeoutMs, remaining));
      const ok = await this.sending.finally(() => {
        this.sending = null;
      });
      if (!ok) break;
    }
    this.schedule(false);
  }

  /**
   * Takes no more reports, and sends those queued, each once, within `closeTimeoutMs` (a call
   * already in flight ends at its own deadline); what is still waiting then (the service down or
   * slow) is counted lost.
   */
  async close(): Promise<void> {
    const deadline = Date.now() + this.closeTimeoutMs;
    this.closed = true;
    this.clearTimer();
    await this.flush(deadline);
    const left = this.pending;
    if (left > 0) {
      this.kept = [];
      this.queue = [];
      this.stats.lost += left;
      this.emit({ type: "lost", count: left, error: new Error("the reporter closed before the service took them") });
    }
  }
}

/** Text of a handler's error, for a failed outcome. */
export const errorText = (error: unknown): string =>
  error instanceof Error ? `${error.name === "Error" ? "" : `${error.name}: `}${error.message}` : String(error);
