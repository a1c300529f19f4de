import type { Logger } from "pino";
import { uuidv7 } from "../domain/ids.ts";
import type { Db } from "../store/db.ts";
import { resetHealth } from "../store/subscriptionHealth.ts";
import {
  adoptStaleJobs,
  createRecoverJob,
  createResendDeadJob,
  failJob,
  releaseJobs,
  runJobBatch,
  type JobKind,
  type JobRecord,
  type RecoverWindow,
} from "../store/resendJobs.ts";

export interface ResendDeadJobOptions {
  /** A running job whose heartbeat is older than this is taken over by another node. */
  staleMs: number;
  /** How often to look for such jobs. */
  sweepMs: number;
  /** Consecutive failed batches after which the job is marked failed. */
  maxErrors: number;
}

const DEFAULTS: ResendDeadJobOptions = { staleMs: 30_000, sweepMs: 10_000, maxErrors: 5 };

/**
 * Runs re-send jobs in the background (a subscription's dead deliveries; or its dead and failed
 * deliveries of a window of messages, a recovery), batch after batch, each batch one statement
 * that also records the progress. A job belongs to the node that accepted it; if that node
 * dies, the job's heartbeat goes stale and any node adopts it and carries on where the
 * recorded progress says (the batches are idempotent: they take whatever is still dead).
 */
export class ResendDeadJobs {
  private readonly running = new Map<string, Promise<void>>();
  private readonly options: ResendDeadJobOptions;
  private timer: NodeJS.Timeout | null = null;
  private sweeping: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly db: Db,
    /** The node id: the owner recorded on the jobs this node runs. */
    private readonly owner: string,
    /** Called after a batch re-sent something: the dispatcher should poll now. */
    private readonly resent: () => void,
    private readonly log: Logger,
    options: Partial<ResendDeadJobOptions> = {},
  ) {
    this.options = { ...DEFAULTS, ...options };
  }

  start(): void {
    this.schedule(0);
  }

  /**
   * Creates a job for a subscription's dead deliveries and starts it here. Re-sending the dead
   * says the endpoint is fixed: an open circuit closes first, or what is re-sent would only wait
   * for its next probe.
   */
  async create(subscriptionId: number, limit: number, batchSize: number): Promise<JobRecord> {
    await resetHealth(this.db, subscriptionId, "dead deliveries re-sent");
    const job = await createResendDeadJob(this.db, uuidv7(), subscriptionId, limit, batchSize, this.owner);
    if (job.state === "running") this.run(job.id, job.kind);
    return job;
  }

  /**
   * Creates a recovery job for a subscription's window and starts it here; or answers the job
   * already asked for the same window (`created: false`), running here or elsewhere, or done.
   * Like a re-send of the dead, a new recovery closes an open circuit first.
   */
  async recover(subscriptionId: number, window: RecoverWindow, batchSize: number): Promise<{ job: JobRecord; created: boolean }> {
    const made = await createRecoverJob(this.db, uuidv7(), subscriptionId, window, batchSize, this.owner);
    if (made.created) await resetHealth(this.db, subscriptionId, "dead and failed deliveries recovered");
    if (made.created && made.job.state === "running") this.run(made.job.id, made.job.kind);
    return made;
  }

  /**
   * Resolves when this node has stopped working on the job (it finished or failed, another node
   * took it over, or this node is stopping), or after `ms`, whichever comes first. What the job
   * did is then in its record.
   */
  async settled(id: string, ms: number): Promise<void> {
    const work = this.running.get(id);
    if (!work || ms <= 0) return;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
    try {
      await Promise.race([work.catch(() => {}), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.sweeping = this.sweep().finally(() => (this.sweeping = null));
    }, ms);
    this.timer.unref();
  }

  private async sweep(): Promise<void> {
    try {
      const ids = await adoptStaleJobs(this.db, this.owner, this.options.staleMs, 10);
      for (const { id, kind } of ids) {
        this.log.info({ jobId: id, kind }, "adopted a re-send job left by another node");
        this.run(id, kind);
      }
    } catch (error) {
      this.log.warn({ err: error }, "looking for abandoned jobs failed");
    }
    this.schedule(this.options.sweepMs);
  }

  private run(id: string, kind: JobKind): void {
    if (this.running.has(id) || this.stopped) return;
    const work = this.work(id, kind).finally(() => this.running.delete(id));
    this.running.set(id, work);
  }

  private async work(id: string, kind: JobKind): Promise<void> {
    let errors = 0;
    while (!this.stopped) {
      try {
        const outcome = await runJobBatch(this.db, id, kind, this.owner);
        errors = 0;
        if (outcome === null) return; // another node owns it now
        if (outcome.resent > 0) this.resent();
        if (outcome.state !== "running") return;
      } catch (error) {
        errors++;
        this.log.warn({ err: error, jobId: id, errors }, "a re-send batch failed");
        if (errors >= this.options.maxErrors) {
          await failJob(this.db, id, this.owner, String((error as Error).message ?? error)).catch(() => {});
          return;
        }
        await new Promise((r) => setTimeout(r, 200 * 2 ** errors));
      }
    }
  }

  /** Stops between batches and hands unfinished jobs back for another node to adopt. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.sweeping;
    const ids = [...this.running.keys()];
    await Promise.allSettled(this.running.values());
    await releaseJobs(this.db, this.owner, ids).catch(() => {});
  }
}
