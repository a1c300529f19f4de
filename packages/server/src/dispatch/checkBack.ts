import type { Logger } from "pino";
import type { DueCheck } from "../store/transactional.ts";
import type { CheckLog } from "../store/transactional.ts";

export type CheckAnswer = "commit" | "rollback" | "unknown";

export interface CheckCall {
  statusCode: number | null;
  answer: CheckAnswer | null;
  error: string | null;
}

export interface CheckBackOps {
  claim(limit: number): Promise<DueCheck[]>;
  /** Asks the producer app; never throws. */
  call(check: DueCheck, checkNo: number): Promise<CheckCall>;
  commit(id: string): Promise<void>;
  rollback(id: string): Promise<void>;
  /** Unknown, an error or no answer: schedule the next check or go in doubt. */
  unresolved(id: string): Promise<{ inDoubt: boolean } | null>;
  counted(id: string): Promise<void>;
  log(entry: CheckLog): Promise<void>;
}

/** Parses a check-back answer: `{"status":"commit"|"rollback"|"unknown"}`. */
export function parseCheckAnswer(text: string): CheckAnswer | null {
  try {
    const status = (JSON.parse(text) as { status?: unknown }).status;
    return status === "commit" || status === "rollback" || status === "unknown" ? status : null;
  } catch {
    return null;
  }
}

/**
 * Asks producers about prepared messages left unresolved past their check time, and applies
 * the answer. Leases on the message rows keep two nodes from checking one message at once.
 */
export class CheckBackScheduler {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private stopped = false;
  private inFlight = 0;
  private readonly checking = new Set<Promise<void>>();
  private rounding: Promise<void> | null = null;

  constructor(
    private readonly ops: CheckBackOps,
    private readonly options: { pollIntervalMs: number; concurrency: number },
    private readonly log: Logger,
  ) {}

  start(): void {
    this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.rounding = this.round().finally(() => (this.rounding = null));
    }, ms);
    this.timer.unref();
  }

  private async round(): Promise<void> {
    if (this.running || this.stopped) return;
    this.running = true;
    let full = false;
    try {
      const room = this.options.concurrency - this.inFlight;
      if (room > 0) {
        const due = await this.ops.claim(room);
        full = due.length === room;
        for (const check of due) {
          this.inFlight++;
          const work = this.check(check).finally(() => {
            this.inFlight--;
            this.checking.delete(work);
          });
          this.checking.add(work);
        }
      }
    } catch (error) {
      this.log.warn({ err: error }, "claiming check-backs failed");
    } finally {
      this.running = false;
    }
    this.schedule(full ? 10 : this.options.pollIntervalMs);
  }

  private async check(due: DueCheck): Promise<void> {
    const id = due.message.id;
    const checkNo = due.message.checks + 1;
    const startedAt = new Date();
    const started = performance.now();
    const result = await this.ops.call(due, checkNo);
    const latencyMs = Math.round(performance.now() - started);
    try {
      await this.ops.log({ messageId: id, checkNo, startedAt, latencyMs, ...result });
      if (result.answer === "commit") {
        await this.ops.counted(id);
        await this.ops.commit(id);
      } else if (result.answer === "rollback") {
        await this.ops.counted(id);
        await this.ops.rollback(id);
      } else {
        const after = await this.ops.unresolved(id);
        if (after?.inDoubt) this.log.warn({ messageId: id, checks: checkNo }, "message is in doubt: checks exhausted");
      }
    } catch (error) {
      // The lease expires and another round checks again.
      this.log.warn({ err: error, messageId: id }, "applying a check-back answer failed");
    }
  }

  /** Stops claiming, and waits for the checks in flight to finish (each is bounded by its HTTP timeout). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.rounding;
    await Promise.allSettled([...this.checking]);
  }
}
