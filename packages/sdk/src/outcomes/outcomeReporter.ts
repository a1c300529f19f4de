import { call, resolveHttpOptions, type HttpOptions, type ResolvedHttpOptions } from "../client/http.ts";

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
  /** Reports waiting at most; past it new ones are dropped (counted); default 10,000. */
  maxQueue?: number;
  /** One call's deadline; default 5 s. The call is not retried: its reports are dropped. */
  timeoutMs?: number;
  /** Told of each call that failed, and of dropped reports (for logs); an exception thrown here is ignored. */
  onEvent?: (event: OutcomeReporterEvent) => void;
}

export type OutcomeReporterEvent = { type: "sent"; count: number } | { type: "lost"; count: number; error: unknown } | { type: "dropped"; count: number };

export interface OutcomeReporterStats {
  reported: number;
  sent: number;
  /** Reports of calls that failed (service down, refused, timed out). */
  lost: number;
  /** Reports dropped because the queue was full. */
  dropped: number;
}

/** Longest error text sent; the service keeps 1000 characters. */
const ERROR_CHARS = 1000;

/**
 * Reports consumers' outcomes to the service (`POST /v1/outcomes`) off the hot path: `report`
 * only queues (never waits, never throws); the queue is sent in batches of up to `maxBatch`, at
 * once when a batch is full, else `flushIntervalMs` after its first report, one call at a time.
 * The queue is bounded, and a call has a deadline and is not retried: a service that is down
 * costs only the reports (the handling they describe was done and answered already). Give the
 * same reporter to a receiver and to consumers (`outcomes:`); `close()` sends what is queued.
 */
export class OutcomeReporter {
  readonly stats: OutcomeReporterStats = { reported: 0, sent: 0, lost: 0, dropped: 0 };
  private readonly http: ResolvedHttpOptions;
  private readonly maxBatch: number;
  private readonly flushIntervalMs: number;
  private readonly maxQueue: number;
  private queue: OutcomeReport[] = [];
  private timer: NodeJS.Timeout | null = null;
  private sending: Promise<void> | null = null;
  private closed = false;

  constructor(private readonly options: OutcomeReporterOptions) {
    this.http = { ...resolveHttpOptions(options), timeoutMs: options.timeoutMs ?? 5000, retries: 0 };
    this.maxBatch = Math.min(Math.max(1, options.maxBatch ?? 500), 1000);
    this.flushIntervalMs = Math.max(0, options.flushIntervalMs ?? 1000);
    this.maxQueue = Math.max(this.maxBatch, options.maxQueue ?? 10_000);
  }

  private emit(event: OutcomeReporterEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch {
      // a listener's exception is not the reporter's problem
    }
  }

  /** Queues one report; never waits, never throws. */
  report(report: OutcomeReport): void {
    this.stats.reported++;
    if (this.closed || this.queue.length >= this.maxQueue) {
      this.stats.dropped++;
      this.emit({ type: "dropped", count: 1 });
      return;
    }
    const error = report.error == null ? null : report.error.slice(0, ERROR_CHARS);
    this.queue.push({
      subscription: report.subscription,
      messageId: report.messageId,
      outcome: report.outcome,
      error,
      ...(report.gaveUp ? { gaveUp: true } : {}),
    });
    if (this.queue.length >= this.maxBatch) this.kick();
    else if (!this.timer && !this.sending) {
      this.timer = setTimeout(() => this.kick(), this.flushIntervalMs);
      this.timer.unref(); // a consumer's process may end with reports waiting: close() sends them
    }
  }

  /** Starts sending unless a call is in flight (its end sends what queued meanwhile). */
  private kick(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.sending || this.queue.length === 0) return;
    this.sending = this.drain().finally(() => {
      this.sending = null;
      if (this.queue.length >= this.maxBatch) this.kick();
      else if (this.queue.length > 0 && !this.timer) {
        this.timer = setTimeout(() => this.kick(), this.flushIntervalMs);
        this.timer.unref();
      }
    });
  }

  private async drain(): Promise<void> {
    const batch = this.queue.splice(0, this.maxBatch);
    try {
      await call<unknown>(this.http, "POST", "/v1/outcomes", { outcomes: batch });
      this.stats.sent += batch.length;
      this.emit({ type: "sent", count: batch.length });
    } catch (error) {
      this.stats.lost += batch.length;
      this.emit({ type: "lost", count: batch.length, error });
    }
  }

  /** Sends everything queued now (each batch once); resolves when done. */
  async flush(): Promise<void> {
    while (this.queue.length > 0 || this.sending) {
      if (this.sending) await this.sending;
      else this.kick();
    }
  }

  /** Takes no more reports, and sends those queued. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }
}

/** Text of a handler's error, for a failed outcome. */
export const errorText = (error: unknown): string =>
  error instanceof Error ? `${error.name === "Error" ? "" : `${error.name}: `}${error.message}` : String(error);
