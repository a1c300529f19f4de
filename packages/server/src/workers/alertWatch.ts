import type { Logger } from "pino";

/** What the watch runs each round (store operations, passed in). */
export interface AlertWatchOps {
  /** Resolves the alerts whose condition an operator's action cleared (re-sent, skipped, committed, resumed…). */
  resolveCleared(): Promise<number>;
  /** Raises and resolves the subscriptions' pending-age alerts. */
  checkPendingAge(): Promise<number>;
  /** Raises and resolves the outbox relays' alerts (stopped reporting, failed rows). */
  checkRelays(): Promise<number>;
}

/**
 * The alert conditions that are states rather than events: each round resolves the alerts whose
 * condition cleared, judges every subscription's oldest pending delivery and every outbox relay's
 * last heartbeat. Every node runs it;
 * the statements are guarded (one open alert per condition and subject; a resolve changes only an
 * unresolved alert), so two nodes at once raise or resolve an alert once.
 */
export class AlertWatch {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private round: Promise<void> | null = null;

  constructor(
    private readonly ops: AlertWatchOps,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {}

  start(): void {
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.round = this.check().finally(() => {
        this.round = null;
        this.schedule();
      });
    }, this.intervalMs);
    this.timer.unref();
  }

  /** One round; never throws (a failed round is logged and the next one tries again). */
  async check(): Promise<void> {
    try {
      await this.ops.resolveCleared();
      await this.ops.checkPendingAge();
      await this.ops.checkRelays();
    } catch (error) {
      this.log.warn({ err: error }, "checking alert conditions failed");
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.round;
  }
}
