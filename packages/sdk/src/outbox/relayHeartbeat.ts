import { hostname } from "node:os";
import type { TidingsClient } from "../client/client.ts";
import type { Executor } from "../executor/executor.ts";
import { readOutboxHealth } from "./outboxQueries.ts";

/** Counts in a heartbeat stop here: "100000 or more" is all an operator needs to read, and counting stays cheap. */
export const HEARTBEAT_COUNT_CAP = 100_000;
/** A relay's name as the service takes it. */
export const RELAY_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/;

/** The default relay name: this host and process (`host:pid`), made to fit RELAY_NAME. */
export function defaultRelayName(): string {
  const name = `${hostname()}:${process.pid}`.replace(/[^A-Za-z0-9_.:@-]/g, "-").replace(/^[^A-Za-z0-9]+/, "");
  return (name || `relay:${process.pid}`).slice(0, 128);
}

export interface HeartbeatSettings {
  name: string;
  /** Only with the admin key: the app the relay ships for. */
  app: string | undefined;
  intervalMs: number;
  /** Told of each heartbeat's outcome; never throws. */
  onResult: (error: unknown | null) => void;
}

/**
 * Reports the relay's counts to the service every `intervalMs`: the outbox's waiting and failed
 * rows, the oldest waiting row's age, when this relay last shipped. Fire and forget: a heartbeat
 * runs beside the relay's work, never more than one at a time, and ends within its deadline
 * (the smaller of the interval and 5 s); a failure is only told to `onResult`.
 */
export class RelayHeartbeat {
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<void> | null = null;
  private lastSentAt: Date | null = null;
  private readonly deadlineMs: number;

  constructor(
    private readonly db: Executor,
    private readonly client: TidingsClient,
    private readonly s: HeartbeatSettings,
  ) {
    this.deadlineMs = Math.min(5000, s.intervalMs);
  }

  /** The relay shipped a batch now. */
  sent(): void {
    this.lastSentAt = new Date();
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.beat(false), this.s.intervalMs);
    // The relay's own timers keep the process alive; a heartbeat alone never does.
    this.timer.unref();
    void this.beat(false);
  }

  /**
   * Stops the timer and says the relay stops on purpose. A heartbeat still on its way is waited
   * for first (it ends by its deadline), so that it cannot land after the last one and undo it:
   * stopping waits two deadlines at most, and a few milliseconds when the service answers.
   */
  async stop(): Promise<void> {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = null;
    await this.inFlight;
    await this.beat(true);
  }

  /** One heartbeat, unless the last one is still on its way (then this one is skipped). */
  private beat(stopped: boolean): Promise<void> {
    if (this.inFlight) return this.inFlight;
    const deadline = AbortSignal.timeout(this.deadlineMs);
    this.inFlight = this.report(stopped, deadline)
      .then(
        () => this.s.onResult(null),
        (error: unknown) => this.s.onResult(error),
      )
      .finally(() => {
        this.inFlight = null;
      });
    return this.inFlight;
  }

  private async report(stopped: boolean, deadline: AbortSignal): Promise<void> {
    const started = Date.now();
    const health = await within(readOutboxHealth(this.db, HEARTBEAT_COUNT_CAP), deadline);
    await this.client.relays.heartbeat(
      {
        name: this.s.name,
        ...(this.s.app === undefined ? {} : { app: this.s.app }),
        pending: health.pending,
        failed: health.failed,
        oldestPendingSeconds: health.oldestPendingSeconds,
        lastSentAt: this.lastSentAt?.toISOString() ?? null,
        intervalMs: this.s.intervalMs,
        ...(stopped ? { stopped: true } : {}),
      },
      { timeoutMs: Math.max(1, this.deadlineMs - (Date.now() - started)) },
    );
  }
}

/** `work`, or a rejection once `signal` aborts (the work itself goes on and is ignored). */
function within<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(signal.reason);
    if (signal.aborted) abort();
    signal.addEventListener("abort", abort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", abort));
  });
}
