import type { ReconciliationDifference } from "../client/apiTypes.ts";

/** The service keeps up to this many differences of a report; the rest are only counted. */
export const MAX_DIFFERENCES = 1000;

/**
 * What one run found and did, added to as it goes: counts of everything, and the first
 * differences by name (a run over millions keeps a bounded list, never all of them).
 */
export class ReportBuilder {
  readonly counts = { checked: 0, missing: 0, repaired: 0, failed: 0 };
  readonly differences: ReconciliationDifference[] = [];
  omitted = 0;

  constructor(private readonly maxDifferences: number) {}

  /** A difference found, and what the run did about it. */
  add(difference: ReconciliationDifference): void {
    this.counts.missing++;
    if (difference.action === "applied" || difference.action === "resent") this.counts.repaired++;
    else if (difference.action === "failed") this.counts.failed++;
    if (this.differences.length < this.maxDifferences) this.differences.push(difference);
    else this.omitted++;
  }
}
