import type { Logger } from "pino";
import { Repeating } from "./repeating.ts";
import type { RetentionPass } from "../store/retention.ts";

/**
 * Keeps the day partitions (store/retention.ts): creates the days ahead and drops the finished
 * days past the retention, every interval, on every node (the creation is serialized by an
 * advisory lock, a drop by its table locks; a second node finds the work done). Counts the days
 * held by a message not finished, for the gauge, and says so in the log once per day held.
 */
export class DayRetention {
  private readonly repeating: Repeating;
  private readonly told = new Set<string>();
  /** Days past the retention kept at the last pass because a message of them is not finished. */
  held = 0;

  constructor(
    private readonly store: { createAhead(): Promise<number>; pass(): Promise<RetentionPass> },
    private readonly options: { intervalMs: number },
    private readonly log: Logger,
  ) {
    this.repeating = new Repeating(this.options.intervalMs, () => this.sweep());
  }

  start(): void {
    this.repeating.start();
  }

  /** One pass; returns what it did (null when it failed: logged, tried again next interval). */
  async sweep(): Promise<RetentionPass | null> {
    try {
      const made = await this.store.createAhead();
      if (made > 0) this.log.info({ tables: made }, "retention: created day partitions ahead");
      const pass = await this.store.pass();
      if (pass.dropped.length > 0) this.log.info({ days: pass.dropped }, "retention: dropped finished days");
      if (pass.busy.length > 0) this.log.debug({ days: pass.busy }, "retention: tables busy, days dropped at a later pass");
      for (const day of pass.held) {
        if (this.told.has(day)) continue;
        this.told.add(day);
        this.log.warn({ day }, "retention: day past the retention kept: a message of it is not finished (prepared, pending or dead)");
      }
      for (const day of this.told) if (!pass.held.includes(day)) this.told.delete(day);
      this.held = pass.held.length;
      return pass;
    } catch (error) {
      this.log.warn({ err: error }, "retention pass failed");
      return null;
    }
  }

  stop(): void {
    this.repeating.stop();
  }
}
