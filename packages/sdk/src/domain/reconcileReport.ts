// What one reconciliation run found and did, built as it goes: counts of everything, and the
// first differences by name (a run over millions keeps a bounded list, never all of them).

/** One message that differed: missing from the consumer's inbox, or sent by the outbox and unknown to the service. */
export interface ReconcileDifference {
  /** The full id (`<app>/<id>`) for a consumer; the outbox's own id for a producer. */
  id: string;
  /**
   * `missing`: committed at the service, not applied by the consumer; `unknown`: marked sent in
   * the outbox, not known to the service; `failed`: an outbox row the relay gave up on.
   */
  difference: "missing" | "unknown" | "failed";
  /** Applied now (consumer), or put back to be sent (producer). */
  repaired: boolean;
  /** Why the repair failed, or why the relay gave the row up. */
  error?: string;
}

/** The report of one run, as `POST /v1/reconciliations` takes it. */
export interface ReconciliationReport {
  kind: "consumer" | "producer";
  /** The consumer's subscription. */
  subscription?: string;
  /** The topic a consumer followed instead of a subscription. */
  topic?: string;
  /** The window: messages committed (consumer) or outbox rows written (producer) from `since` up to `until`. */
  since: string;
  until: string;
  /** Messages (or outbox rows) compared. */
  checked: number;
  /** Differences found: missing or unknown ones, and failed outbox rows. */
  missing: number;
  /** Differences set right by this run. */
  repaired: number;
  /** Differences this run could not set right (the handler threw; rows the relay gave up on). */
  failed: number;
  /** The first differences, at most `maxDifferences`; the counts cover all of them. */
  differences: ReconcileDifference[];
  startedAt: string;
  finishedAt: string;
  /** Who ran it: the reconciler's name (default `<host>:<pid>`). */
  reporter: string;
}

/** Counts and a bounded list of differences, added to as a run goes. */
export class ReportBuilder {
  checked = 0;
  missing = 0;
  repaired = 0;
  failed = 0;
  readonly differences: ReconcileDifference[] = [];

  constructor(private readonly maxDifferences: number) {}

  /** A difference found; `repaired` or not, with the error when its repair failed or it was given up. */
  add(difference: ReconcileDifference): void {
    this.missing++;
    if (difference.repaired) this.repaired++;
    else if (difference.error !== undefined) this.failed++;
    if (this.differences.length < this.maxDifferences) this.differences.push(difference);
  }
}
