/** How big each workload is: the sizes, or a tiny smoke size that keeps the suite from rotting. */
export interface Sizes {
  publishSingle: { messages: number; concurrency: number };
  /** pgbench single-row INSERT limit: clients and seconds. */
  pgbenchSingle: { clients: number; seconds: number };
  publishBatch: { messages: number; batch: number; concurrency: number };
  pgbenchBatch: { clients: number; seconds: number; rows: number };
  deliver: { messages: number };
  /** Ordered deliver: the backlog for unordered, 10,000 and 100 keys; the smaller one for a single key (one at a time). */
  orderedDeliver: { messages: number; oneKey: number };
  latency: { rate: number; seconds: number; warmupSeconds: number };
  backlog: { small: number; large: number; measured: number };
  transactional: { transactions: number; concurrency: number };
  outbox: { rows: number };
  inbox: { messages: number; concurrency: number };
  /** Committed messages read through the forward feed; then a window of this many committed after them, read with `since`. */
  feed: { messages: number; window: number };
  /** Committed messages compared by one reconciliation run against a consumer's inbox; as many outbox rows marked sent, by a producer's. */
  reconcile: { messages: number };
  /** The backlog delivered by 1, 2 and 3 service processes on one database (each N its own). */
  multiNode: { messages: number };
  /**
   * Finished messages retained (with a delivery and an attempt each) over the past days, the
   * small table it is compared with, and the messages published (then delivered) on each.
   */
  partitions: { retained: number; small: number; publish: number };
  /** Give up waiting for a phase after this long. */
  phaseTimeoutMs: number;
}

export const FULL: Sizes = {
  publishSingle: { messages: 20_000, concurrency: 64 },
  pgbenchSingle: { clients: 32, seconds: 10 },
  publishBatch: { messages: 200_000, batch: 1_000, concurrency: 4 },
  pgbenchBatch: { clients: 8, seconds: 10, rows: 100 },
  deliver: { messages: 100_000 },
  orderedDeliver: { messages: 50_000, oneKey: 2_000 },
  latency: { rate: 500, seconds: 20, warmupSeconds: 2 },
  backlog: { small: 10_000, large: 1_000_000, measured: 100_000 },
  transactional: { transactions: 10_000, concurrency: 32 },
  outbox: { rows: 100_000 },
  inbox: { messages: 10_000, concurrency: 32 },
  feed: { messages: 1_000_000, window: 1_000 },
  reconcile: { messages: 1_000_000 },
  multiNode: { messages: 50_000 },
  partitions: { retained: 10_000_000, small: 10_000, publish: 50_000 },
  phaseTimeoutMs: 300_000,
};

export const SMOKE: Sizes = {
  publishSingle: { messages: 200, concurrency: 16 },
  pgbenchSingle: { clients: 4, seconds: 1 },
  publishBatch: { messages: 400, batch: 100, concurrency: 2 },
  pgbenchBatch: { clients: 2, seconds: 1, rows: 100 },
  deliver: { messages: 200 },
  orderedDeliver: { messages: 400, oneKey: 50 },
  latency: { rate: 100, seconds: 1, warmupSeconds: 0.2 },
  backlog: { small: 100, large: 400, measured: 200 },
  transactional: { transactions: 200, concurrency: 8 },
  outbox: { rows: 200 },
  inbox: { messages: 200, concurrency: 8 },
  feed: { messages: 300, window: 20 },
  reconcile: { messages: 300 },
  multiNode: { messages: 200 },
  partitions: { retained: 2_000, small: 200, publish: 200 },
  phaseTimeoutMs: 30_000,
};
