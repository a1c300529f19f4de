import { hostname } from "node:os";
import { parseDuration } from "../domain/duration.ts";
import type { ReconciliationReport } from "../client/apiTypes.ts";
import { TidingsError } from "../errors.ts";
import type { Executor } from "../executor/executor.ts";
import { reconcileConsumer, type ConsumerSide } from "./consumerRun.ts";
import { reconcileProducer, type ProducerSide } from "./producerRun.ts";
import type { ReconcileClient } from "./reconcileClient.ts";
import { MAX_DIFFERENCES, ReportBuilder } from "./reportBuilder.ts";

export type ReconcilerEvent =
  | { type: "run"; report: ReconciliationReport }
  /** A run that stopped on an error (the service or the database unreachable); the schedule goes on. */
  | { type: "error"; error: unknown }
  /** The report could not be sent to the service; the run itself is done. */
  | { type: "report_failed"; error: unknown; report: ReconciliationReport };

interface Common {
  /** The service: a `TidingsClient` with the app's key. */
  client: ReconcileClient;
  /** The consumer's database (its inbox and business tables) or the producer's (its outbox). */
  db: Executor;
  /** Who runs it, in the reports (default `<host>:<pid>`). */
  name?: string;
  /** Messages (or outbox rows) compared per page: one query of the local database per page (default 1000). */
  pageSize?: number;
  /** Differences named in a report, at most (default and most: 1000); the counts cover all. */
  maxDifferences?: number;
  /** Send each run's report to the service (default true). */
  report?: boolean;
  onEvent?(event: ReconcilerEvent): void;
}

export type ReconcilerOptions = Common & ({ consumer: ConsumerSide; producer?: undefined } | { producer: ProducerSide; consumer?: undefined });

export interface RunWindow {
  since: Date | string;
  /** Default: now. */
  until?: Date | string;
}

export interface ScheduleOptions {
  /** How often a run starts ("15m"), counted from the end of the last one: runs never overlap. */
  every: string | number;
  /** Each run looks this far back ("2h"): windows overlap, so a message late for one run is found by the next. */
  window: string | number;
  /** Each window ends this long before now (default 0): leaves the deliveries in flight alone. */
  delay?: string | number;
}

function toDate(value: Date | string, field: string): Date {
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) throw new TidingsError("config", `${field} must be a date (ISO 8601), got "${String(value)}"`, { field });
  return date;
}

/**
 * Scheduled reconciliation. For a consumer: the service's committed messages of its subscription
 * in a window against its inbox, the missing ones applied through the inbox (exactly once);
 * for a producer: its outbox against the service, rows marked sent that the service does not
 * know put back to be sent, and the rows the relay gave up on. Streams page by page (memory is
 * one page, however many messages); each run's report is sent to the service and returned.
 */
export class Reconciler {
  readonly kind: "consumer" | "producer";
  private readonly name: string;
  private readonly pageSize: number;
  private readonly maxDifferences: number;
  /** The run in progress (or the last one): runs go one at a time. */
  private current: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private stopped = true;

  constructor(private readonly options: ReconcilerOptions) {
    if (options.consumer) {
      this.kind = "consumer";
      const c = options.consumer;
      if ((c.subscription === undefined) === (c.topic === undefined))
        throw new TidingsError("config", "a consumer reconciles either a subscription or a topic", { field: "consumer.subscription" });
    } else if (options.producer) {
      this.kind = "producer";
      if (!options.producer.topic)
        throw new TidingsError("config", "a producer reconciles the outbox rows of one topic: producer: { topic }", { field: "producer.topic" });
    } else throw new TidingsError("config", "a reconciler needs `consumer` or `producer`", { field: "consumer" });
    this.name = options.name ?? `${hostname()}:${process.pid}`;
    this.pageSize = options.pageSize ?? 1000;
    if (!Number.isInteger(this.pageSize) || this.pageSize < 1 || this.pageSize > 1000)
      throw new TidingsError("config", "pageSize must be from 1 to 1000", { field: "pageSize" });
    this.maxDifferences = Math.min(options.maxDifferences ?? MAX_DIFFERENCES, MAX_DIFFERENCES);
  }

  /**
   * One run over the window; waits for a run in progress first. Resolves to its report (also
   * sent to the service); rejects when the service or the database failed it.
   */
  async run(window: RunWindow): Promise<ReconciliationReport> {
    const since = toDate(window.since, "since");
    const until = window.until === undefined ? new Date() : toDate(window.until, "until");
    if (until < since) throw new TidingsError("config", "until must not be before since", { field: "until" });
    const inbox = this.options.consumer?.inbox;
    // A record older than the inbox keeps is deleted: its message would look missing and be applied again.
    if (inbox && since.getTime() < Date.now() - inbox.retentionMs) {
      throw new TidingsError(
        "config",
        `since is older than the inbox keeps its records (${inbox.retentionMs} ms): messages applied then would be applied again`,
        {
          field: "since",
        },
      );
    }
    const run = this.current.catch(() => undefined).then(() => this.runNow(since, until));
    this.current = run;
    return await run;
  }

  private async runNow(since: Date, until: Date): Promise<ReconciliationReport> {
    const startedAt = new Date();
    const builder = new ReportBuilder(this.maxDifferences);
    const o = this.options;
    if (o.consumer) await reconcileConsumer(o.client, o.db, o.consumer, { since, until }, this.pageSize, builder);
    else await reconcileProducer(o.client, o.db, o.producer!, { since, until }, this.pageSize, builder);
    const report: ReconciliationReport = {
      kind: this.kind,
      ...(o.consumer?.subscription !== undefined ? { subscription: o.consumer.subscription } : {}),
      ...(o.consumer?.topic !== undefined ? { topic: o.consumer.topic } : {}),
      ...(o.producer ? { topic: o.producer.topic } : {}),
      reporter: this.name,
      since: since.toISOString(),
      until: until.toISOString(),
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      counts: { ...builder.counts },
      differences: builder.differences,
      differencesOmitted: builder.omitted,
    };
    if (o.report !== false) {
      try {
        await o.client.reportReconciliation(report);
      } catch (error) {
        this.emit({ type: "report_failed", error, report });
      }
    }
    this.emit({ type: "run", report });
    return report;
  }

  /**
   * Runs now, then every `every` after each run ends, over the last `window` (ending `delay`
   * before now). A failed run is told to `onEvent` and the schedule goes on.
   */
  start(schedule: ScheduleOptions): void {
    if (!this.stopped) throw new TidingsError("config", "the reconciler is already started");
    const every = parseDuration(schedule.every, "every");
    const window = parseDuration(schedule.window, "window");
    const delay = parseDuration(schedule.delay ?? 0, "delay");
    if (every < 1) throw new TidingsError("config", "every must be more than 0", { field: "every" });
    const inbox = this.options.consumer?.inbox;
    if (inbox && window + delay > inbox.retentionMs) {
      throw new TidingsError("config", `window (with delay) must stay within the inbox's retention (${inbox.retentionMs} ms)`, { field: "window" });
    }
    this.stopped = false;
    const tick = async () => {
      this.timer = null;
      const until = Date.now() - delay;
      try {
        await this.run({ since: new Date(until - window), until: new Date(until) });
      } catch (error) {
        this.emit({ type: "error", error });
      }
      if (!this.stopped) this.timer = setTimeout(tick, every);
    };
    void tick();
  }

  /** Stops the schedule, waiting for the run in progress. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.current.catch(() => undefined);
  }

  private emit(event: ReconcilerEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch {
      // A listener's error must not stop the reconciler.
    }
  }
}
